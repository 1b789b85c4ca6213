"""Reprocessing through the Gemini Batch API, in whole DAG runs over a local S3 bucket.

The real google-genai SDK talks to the loopback Gemini server, whose batches stay
pending and running for a few seconds before they end, so each video's analyze task
submits its batch, defers (the trigger polls it, inline in ``dag.test()`` as the
triggerer would) and runs again to collect it:

* new uploads stay online with ``VIDEO_PIPELINE_GEMINI_BATCH=reprocess`` (here the key
  is refused for their analyses, so they complete without one);
* ``reprocess=failed`` then analyses them through the Batch API: one batch per video,
  the analysis made by the batch at the batch price, spend recorded once;
* the first video's task fails while it waits (two polls answer 503, no retries
  left), Airflow retries it, and the retry finds its batch instead of submitting again;
* one video's batch fails: that video completes with media and transcript and its
  analysis marked unavailable (``batch_failed``).
"""

from __future__ import annotations

import html
import json

import psycopg2
import pytest

from tests.e2e.test_analysis_provider import GEMINI_KEY, _env, _keys, _upload
from tests.fakes.gemini_server import FakeGeminiServer, Reply

NAMES = ["standup.mp4", "budget.mp4", "office.mp4"]
# The video whose batch Google fails (matched by its title, which its prompt carries).
DOOMED = "office.mp4"
# Input free, $1000 per million output tokens online, so the batch price is exactly $0.0005 a token.
PRICES = '{"gemini-3.1-flash-lite": [0, 1000, 0]}'


def _fails_the_doomed_video(requests: list[dict]) -> str:
    return "BATCH_STATE_FAILED" if DOOMED in json.dumps(requests) else "BATCH_STATE_SUCCEEDED"


def _rows(dsn: str, sql: str, *params):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_reprocessing_through_the_batch_api_publishes_every_video_once_paid(
    run_pipeline, s3_bucket, s3_client, results_dsn, tmp_path
):
    _upload(s3_client, s3_bucket, tmp_path, NAMES)
    env = {
        "VIDEO_PIPELINE_GEMINI_MODEL": "gemini-3.1-flash-lite",
        "VIDEO_PIPELINE_PRICES_JSON": PRICES,
        "VIDEO_PIPELINE_GEMINI_BATCH": "reprocess",
        "VIDEO_PIPELINE_GEMINI_BATCH_POLL_SECONDS": "1",
        "VIDEO_PIPELINE_GEMINI_MAX_RETRIES": "0",
        "VIDEO_PIPELINE_RETRY_DELAY_SECONDS": "1",
    }
    with FakeGeminiServer(api_key=GEMINI_KEY, batch_delay_seconds=3, batch_outcome=_fails_the_doomed_video) as gemini:
        # New uploads: online, even with batches on for reprocessing. The key is refused for
        # each analysis, so all three complete without one (what reprocess=failed picks up).
        gemini.enqueue(*[Reply.invalid_key()] * len(NAMES))
        first = run_pipeline(_env(s3_bucket, gemini, **env))
        assert first.state == "success", first.output + first.log[-4000:]
        assert len(gemini.generate_requests) == len(NAMES) and gemini.batches.submissions == 0

        # The first poll (in the trigger) and the task's own look after it answer 503: that
        # attempt fails and Airflow retries the task.
        gemini.enqueue_batch_poll(Reply.server_error(503), Reply.server_error(503))
        again = run_pipeline(_env(s3_bucket, gemini, **env), "--conf", json.dumps({"reprocess": "failed"}))
        submissions = gemini.batches.submissions
        polls = gemini.batches.polls
        online_calls = len(gemini.generate_requests) - len(NAMES)
        batch_requests = list(gemini.batch_requests)
    run_id = again.run_id
    assert again.state == "success", again.output + again.log[-6000:]

    # One batch per video, each submitted once: the retried task found its batch.
    assert submissions == len(NAMES) and online_calls == 0
    batches = _rows(
        results_dsn,
        "SELECT v.source_key, b.state, b.run_id, b.collected_at IS NOT NULL, b.batch_name"
        " FROM gemini_batches b JOIN videos v USING (video_id) ORDER BY v.source_key",
    )
    assert [(key, state, run, collected) for key, state, run, collected, _ in batches] == [
        ("budget.mp4", "succeeded", run_id, True),
        ("office.mp4", "failed", run_id, True),
        ("standup.mp4", "succeeded", run_id, True),
    ]
    attempts = _rows(
        results_dsn,
        "SELECT v.source_key, s.try_number, s.status FROM stage_runs s JOIN videos v USING (video_id)"
        " WHERE s.stage = 'analyze' AND s.run_id = %s ORDER BY v.source_key, s.try_number",
        run_id,
    )
    failed_tries = [(key, n) for key, n, status in attempts if status == "failed"]
    assert len(failed_tries) == 1, attempts
    [(retried, _)] = failed_tries
    assert (retried, 2, "success") in attempts
    assert sorted(key for key, _, status in attempts if status == "success") == sorted(NAMES)

    # The task deferred while its batch ran and resumed when it had ended.
    assert again.log.count("waiting for it in the triggerer (no worker slot held)") >= len(NAMES)
    assert "[DAG TEST] running trigger in line" in again.log
    assert "ended (succeeded)" in again.log and "polling failed" in again.log
    assert polls > 2 * len(NAMES)  # each batch was seen pending or running before it ended

    # The videos with an answer: analysis made by the batch, at the batch price, spent once.
    analyses = {
        key: (model, flags, usage, float(cost) if cost is not None else None)
        for key, model, flags, usage, cost in _rows(
            results_dsn,
            "SELECT v.source_key, a.model, a.flags, a.usage, a.cost_usd FROM analyses a"
            " JOIN videos v USING (video_id) WHERE a.is_current",
        )
    }
    spend = dict(
        _rows(
            results_dsn,
            "SELECT v.source_key, sum(s.usd)::float FROM analysis_spend s JOIN videos v USING (video_id)"
            " WHERE s.run_id = %s AND s.kind = 'spent' GROUP BY v.source_key",
            run_id,
        )
    )
    assert set(spend) == {"budget.mp4", "standup.mp4"}
    for key in ("budget.mp4", "standup.mp4"):
        model, flags, usage, cost = analyses[key]
        assert model == "gemini-3.1-flash-lite" and "gemini_batch" in flags and "analysis_unavailable" not in flags
        assert usage["calls"] == 1 and cost == pytest.approx(usage["output_tokens"] * 0.0005, abs=1e-6)
        assert spend[key] == pytest.approx(cost, abs=1e-6)
        outputs = _keys(s3_client, s3_bucket, "outputs/")
        stored_key = next(k for k in outputs if k.endswith("/analysis.json") and key.split(".")[0] in k)
        stored = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=stored_key)["Body"].read())
        assert stored["data"]["summary"] and stored["usage"]["cost_usd"] == pytest.approx(cost, abs=1e-6)
        # The report a person opens says what the analysis cost.
        report_key = stored_key.removesuffix("analysis.json") + "report.html"
        report = s3_client.get_object(Bucket=s3_bucket, Key=report_key)["Body"].read().decode()
        assert "Analysis cost" in report and "(estimate) · 1 call," in html.unescape(report)
    assert all(r.generation_config.get("responseJsonSchema") for r in batch_requests)

    # The failed batch ends clearly: media and transcript published, analysis unavailable with the reason.
    _, flags, _, cost = analyses[DOOMED]
    assert "analysis_unavailable" in flags and cost is None
    outputs = _keys(s3_client, s3_bucket, "outputs/")
    doomed = [k for k in outputs if "/office-" in k]
    assert any(k.endswith("/video.mp4") for k in doomed) and any(k.endswith("/transcript.json") for k in doomed)
    doomed_analysis = next(k for k in doomed if k.endswith("/analysis.json"))
    stored = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=doomed_analysis)["Body"].read())
    assert stored["unavailable"]["reason"] == "batch_failed" and "reprocess=failed" in stored["unavailable"]["message"]
    assert _rows(results_dsn, "SELECT state FROM videos ORDER BY source_key") == [("completed",)] * len(NAMES)
    assert _keys(s3_client, s3_bucket, "completed/") == {f"completed/{name}" for name in NAMES}

    # The key is nowhere: not in the logs, not in the batch table.
    assert GEMINI_KEY not in first.log + again.log + again.output
    assert GEMINI_KEY not in json.dumps(_rows(results_dsn, "SELECT row_to_json(b)::text FROM gemini_batches b"))
