"""`make run`'s path: local-folder storage, the shipped samples, the offline analyzer, run twice."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.labels import LabelWatch
from tests.fixtures import clips

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(p.name for p in (ROOT / "samples").iterdir() if p.is_file())


def test_samples_run_through_the_dag_on_local_storage_twice(run_pipeline, tmp_path, postgres):
    storage = tmp_path / "storage"
    env = {"VIDEO_PIPELINE_LOCAL_ROOT": str(storage), "VIDEO_PIPELINE_ANALYZER": "auto"}
    env.update({"GEMINI_API_KEY": "", "GOOGLE_API_KEY": "", "AIRFLOW_CONN_GEMINI_DEFAULT": ""})

    rejected = LabelWatch(postgres.dsn("airflow"), "not-a-video.mp4")
    rejected.start()
    first = run_pipeline(env)
    labels = rejected.finish()
    assert first.returncode == 0, first.output + first.log[-4000:]
    assert "added 4 sample clip(s)" in first.output
    assert first.state == "success"

    completed = sorted(p.name for p in (storage / "completed").iterdir())
    assert completed == sorted(n for n in SAMPLES if n != "not-a-video.mp4")
    assert sorted(p.name for p in (storage / "failed").iterdir()) == ["not-a-video.mp4", "not-a-video.mp4.error.json"]
    report = json.loads((storage / "failed" / "not-a-video.mp4.error.json").read_text())
    assert report["reason"] == "not_media" and "not-a-video.mp4" in report["message"]
    assert not list((storage / "pending").iterdir())
    assert not (storage / "processing").exists() or not list((storage / "processing").iterdir())
    # The rejected upload's tasks showed its name as soon as they were skipped, while the run
    # still went: not their map index number until the run-end listener named them.
    group = ("video.transcode", "video.transcribe", "video.analyze", "video.publish")
    assert labels == dict.fromkeys(group, "not-a-video.mp4"), labels

    # One summary line per video: state, name, language, first words, where the outputs are.
    lines = {line.split()[2]: line for line in first.output.splitlines() if line.strip().startswith(("✓", "✗"))}
    assert len(lines) == 4
    welcome = lines["welcome.mp4"]
    assert "completed" in welcome and " en " in welcome and '"Welcome to the video pipeline' in welcome
    outputs = Path(welcome.split("→ ")[1].strip())
    assert (outputs / "video.mp4").is_file() and (outputs / "manifest.json").is_file()
    analysis = json.loads((outputs / "analysis.json").read_text())
    assert analysis["analyzer"] == "offline" and analysis["data"]["summary"]

    # A second run with the user's own file: samples are not added again, the file is processed.
    clips.make_speech_video(storage / "pending" / "my talk.mp4", "Thank you all for coming to this talk.")
    second = run_pipeline(env)
    assert second.returncode == 0, second.output + second.log[-4000:]
    assert "sample clip" not in second.output
    assert (storage / "completed" / "my talk.mp4").is_file()
    assert "my talk.mp4" in second.output

    # One run never clears another's task instances (a scheduler's runs share this metadata DB).
    import psycopg2

    with psycopg2.connect(postgres.dsn("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), bool_and(state IN ('success', 'skipped')) FROM task_instance WHERE run_id = %s",
            (first.run_id,),
        )
        count, all_finished = cur.fetchone()
    assert count >= 4 * 4 + 3 and all_finished

    # With nothing pending (and samples declined) a one-shot run ends green at once: the sensor skips.
    third = run_pipeline(env, "--no-samples")
    assert third.returncode == 0 and third.state == "success", third.output
    assert "nothing was pending" in third.output, third.output
    assert "skipped" in third.log and "nothing pending" in third.log
