"""When an infrastructure error outlasts every retry, the video goes to failed/ with the error
and the run turns red — unlike a bad upload, which fails alone and leaves the run green."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2

from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fixtures import clips

GEMINI_KEY = "fake-gemini-key-for-the-outage-test"


def test_an_outage_that_outlasts_retries_fails_the_video_and_the_run(run_pipeline, results_dsn, tmp_path):
    storage = tmp_path / "storage"
    clips.make_speech_video(storage / "pending" / "briefing.mp4", "The launch moves to Friday at noon.")
    clips.make_empty_file(storage / "pending" / "empty.mp4")

    with FakeGeminiServer(api_key=GEMINI_KEY) as gemini:
        # Every call fails: more 500s than the SDK retries times the task attempts.
        gemini.enqueue(*[Reply.server_error(500) for _ in range(20)])
        run = run_pipeline(
            {
                "VIDEO_PIPELINE_LOCAL_ROOT": str(storage),
                "VIDEO_PIPELINE_ANALYZER": "gemini",
                "GEMINI_API_KEY": GEMINI_KEY,
                "VIDEO_PIPELINE_GEMINI_BASE_URL": gemini.base_url,
                "VIDEO_PIPELINE_GEMINI_MAX_RETRIES": "1",
                "VIDEO_PIPELINE_ANALYSIS_BACKOFF_BASE_SECONDS": "0.1",
                "VIDEO_PIPELINE_ANALYSIS_BACKOFF_MAX_SECONDS": "0.2",
                "VIDEO_PIPELINE_TASK_RETRIES": "1",
                "VIDEO_PIPELINE_RETRY_DELAY_SECONDS": "1",
            },
            "--no-samples",
        )
        calls = len(gemini.generate_requests)

    assert run.returncode == 1, run.output  # make run reports a failed run with a non-zero exit
    assert run.state == "failed"
    assert calls == 4  # (1 call + 1 SDK retry) x (1 attempt + 1 task retry)

    report = json.loads((storage / "failed" / "briefing.mp4.error.json").read_text())
    assert report["stage"] == "analyze" and report["retryable"] is True and report["attempt"] == 2
    assert "500" in report["message"] or "INTERNAL" in report["message"]
    assert (storage / "failed" / "briefing.mp4").is_file()
    # The bad upload failed on its own, for its own reason.
    assert json.loads((storage / "failed" / "empty.mp4.error.json").read_text())["reason"] == "empty_file"
    # Nothing stuck, nothing half-published, and the ledger agrees.
    assert not any(Path(storage, "processing").glob("**/*.mp4"))
    assert (
        not any(p for p in (storage / "outputs").glob("briefing*/manifest.json"))
        if (storage / "outputs").exists()
        else True
    )
    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_key, state FROM videos ORDER BY source_key")
        assert cur.fetchall() == [("briefing.mp4", "failed"), ("empty.mp4", "failed")]
    assert "✗ failed     briefing.mp4" in run.output
