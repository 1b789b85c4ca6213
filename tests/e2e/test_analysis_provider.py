"""Analysis with today's Gemini, through whole DAG runs over a local S3 bucket.

The real google-genai SDK talks to the loopback Gemini server, which behaves
like today's API: the 2.5 family answers 404 NOT_FOUND, usage carries
thinking tokens, and it can refuse a key or a country.

* a provider that cannot work (bad key, unsupported country, only retired
  models) stops the run at the preflight with one message, and every upload
  stays in pending/;
* one run where the first configured model is retired (skipped with one
  warning), the key is refused for one call mid-run (that video completes with
  its media and transcript and the analysis marked unavailable), and a daily
  budget stops the batch at the third video analysed (it waits in pending/);
  spend is in the database and the run summary;
* then ``reprocess=failed`` adds the missing analysis.
"""

from __future__ import annotations

import json

import psycopg2
import pytest

from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fixtures import clips

GEMINI_KEY = "fake-gemini-key-for-the-provider-tests"

SPEECH = {
    "standup.mp4": "Good morning. The release moves to Thursday after the review.",
    "budget.mp4": "The marketing budget grows by ten percent next quarter.",
    "hiring.mp4": "We are hiring two engineers for the platform team.",
    "office.mp4": "The office is closed on Monday for maintenance.",
}


def _keys(s3_client, bucket: str, prefix: str) -> set[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _upload(s3_client, bucket: str, tmp_path, names) -> None:
    for name in names:
        path = clips.make_speech_video(tmp_path / "src" / name, SPEECH[name], width=160, height=120)
        s3_client.put_object(Bucket=bucket, Key=f"pending/{name}", Body=path.read_bytes())


def _env(bucket: str, gemini: FakeGeminiServer, **extra: str) -> dict[str, str]:
    return {
        "VIDEO_PIPELINE_STORAGE": "s3",
        "VIDEO_PIPELINE_BUCKET": bucket,
        "VIDEO_PIPELINE_GEMINI_BASE_URL": gemini.base_url,
        "GEMINI_API_KEY": GEMINI_KEY,
        "VIDEO_PIPELINE_ANALYSIS_BACKOFF_BASE_SECONDS": "0.1",
        "VIDEO_PIPELINE_ANALYSIS_BACKOFF_MAX_SECONDS": "0.2",
        **extra,
    }


# One whole run for the preflight (each costs a DAG run); a bad key and only retired models
# fail the same check, with their own messages: tests/hooks/test_gemini_hook.py.
@pytest.mark.parametrize(
    ("case", "server_options", "env", "expected"),
    [
        (
            "unsupported country",
            {"location_unsupported": True},
            {},
            "(location_unsupported)",
        ),
    ],
)
def test_a_provider_that_cannot_work_stops_the_run_before_any_upload_moves(
    case, server_options, env, expected, run_pipeline, s3_bucket, s3_client, results_dsn, tmp_path
):
    _upload(s3_client, s3_bucket, tmp_path, ["standup.mp4", "budget.mp4"])
    with FakeGeminiServer(api_key=GEMINI_KEY, **server_options) as gemini:
        run = run_pipeline(_env(s3_bucket, gemini, **env))
        generate_calls = len(gemini.generate_requests)

    assert run.state == "failed", run.output + run.log[-3000:]
    # One specific message, in the failed preflight task's log (what the UI shows).
    assert "Analysis provider check failed" in run.log and expected in run.log, run.log[-3000:]
    assert "User location is not supported for the API use." in run.log
    assert "Vertex AI in an EU region" in run.log and "OpenAI-compatible" in run.log
    # Nothing was claimed: every upload is where the user put it, and no paid call was made.
    assert _keys(s3_client, s3_bucket, "pending/") == {"pending/standup.mp4", "pending/budget.mp4"}
    assert _keys(s3_client, s3_bucket, "processing/") | _keys(s3_client, s3_bucket, "failed/") == set()
    assert generate_calls == 0
    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM videos")
        assert cur.fetchone()[0] == 0
    assert "fake-gemini-key" not in run.log


def test_retired_model_mid_run_outage_and_budget_in_one_run_then_reprocess(
    run_pipeline, s3_bucket, s3_client, results_dsn, tmp_path
):
    names = list(SPEECH)
    _upload(s3_client, s3_bucket, tmp_path, names)
    # Prices that make the arithmetic exact: input free, $0.001 per output token. Each call
    # thinks 1000 tokens, so an analysis costs a little over $1.00 and is estimated at $4.00
    # (4000 expected output tokens); a $5.60 daily cap admits two analyses, not a third.
    env = {
        "VIDEO_PIPELINE_GEMINI_MODEL": "gemini-2.5-flash,gemini-3.1-flash-lite",
        "VIDEO_PIPELINE_PRICES_JSON": '{"gemini-3.1-flash-lite": [0, 1000, 0]}',
        "VIDEO_PIPELINE_BUDGET_USD_PER_DAY": "5.60",
        "VIDEO_PIPELINE_GEMINI_RPM": "2",
        "VIDEO_PIPELINE_GEMINI_RATE_WINDOW_SECONDS": "3",
    }
    with FakeGeminiServer(api_key=GEMINI_KEY, thoughts_tokens=1000, rpm_limit=2, rpm_window_seconds=3) as gemini:
        # The first analysis call that reaches a current model is refused as a bad key:
        # a provider-wide failure in the middle of the run.
        gemini.enqueue(Reply.invalid_key())
        run = run_pipeline(_env(s3_bucket, gemini, **env))
        first_requests = gemini.requests
        refused_for_rate = gemini.rate_limited

        with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT source_key, state, last_error FROM videos ORDER BY source_key")
            ledger = {key: (state, error) for key, state, error in cur.fetchall()}
            cur.execute(
                "SELECT v.source_key, a.model, a.flags, a.usage, a.cost_usd FROM analyses a"
                " JOIN videos v USING (video_id) WHERE a.is_current"
            )
            analyses = {row[0]: row[1:] for row in cur.fetchall()}
            cur.execute("SELECT kind, count(*), sum(usd) FROM analysis_spend GROUP BY kind")
            spend = {kind: (count, float(usd)) for kind, count, usd in cur.fetchall()}

        assert run.state == "success", run.output + run.log[-4000:]
        states = sorted(state for state, _ in ledger.values())
        assert states == ["completed"] * 3 + ["pending"], ledger

        # The retired model was asked once (by the preflight), warned about once, never again.
        retired = [r for r in first_requests if r.model == "gemini-2.5-flash"]
        assert [r.action for r in retired] == ["get"]
        assert run.log.count("gemini-2.5-flash is retired or unknown") == 1
        assert {r.model for r in first_requests if r.action == "generateContent"} == {"gemini-3.1-flash-lite"}

        # The mid-run outage cost no video: it completed with media, transcript and the reason.
        unavailable = [key for key, (_, flags, _, _) in analyses.items() if "analysis_unavailable" in flags]
        assert len(unavailable) == 1
        [victim] = unavailable
        outputs = _keys(s3_client, s3_bucket, "outputs/")
        assert any(k.endswith("/video.mp4") and victim.split(".")[0] in k for k in outputs)
        victim_prefix = next(k for k in outputs if k.endswith("/analysis.json") and victim.split(".")[0] in k)
        stored = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=victim_prefix)["Body"].read())
        assert stored["unavailable"]["reason"] == "provider_auth"
        assert f"completed/{victim}" in _keys(s3_client, s3_bucket, "completed/")

        # The budget stopped the batch at the third video analysed: it waits in pending/, and says why.
        [(waiting, (_, error))] = [(k, v) for k, v in ledger.items() if v[0] == "pending"]
        assert f"pending/{waiting}" in _keys(s3_client, s3_bucket, "pending/")
        assert error["reason"] == "budget_exceeded" and "daily analysis budget" in error["message"]
        assert "VIDEO_PIPELINE_BUDGET_USD_PER_DAY" in run.log
        analysed = [k for k, (_, flags, _, _) in analyses.items() if "analysis_unavailable" not in flags]
        assert len(analysed) == 2
        for key in analysed:
            model, _, usage, cost = analyses[key]
            assert model == "gemini-3.1-flash-lite" and usage["thinking_tokens"] == 1000
            # Thinking is billed: 1000 thinking + the answer's tokens, at $0.001 each.
            assert float(cost) == pytest.approx((usage["output_tokens"] + 1000) / 1000, abs=1e-6)
        assert spend["spent"][0] == 2 and "reserved" not in spend  # holds are released
        assert spend["spent"][1] <= 5.60
        assert refused_for_rate == 0  # the shared limiter kept every call inside the server's limit

        # The run summary has the spend per video, for the run and for the day.
        [summary_key] = _keys(s3_client, s3_bucket, "outputs/_runs/")
        summary = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=summary_key)["Body"].read())
        assert summary["analysis_spend"]["run_usd"] == pytest.approx(spend["spent"][1], abs=1e-6)
        assert summary["analysis_spend"]["day_usd"] == pytest.approx(spend["spent"][1], abs=1e-6)
        assert sorted(v["source_key"] for v in summary["analysis_spend"]["videos"]) == sorted(analysed)
        assert "analysis spend: $" in run.log

        # Once the provider works again, reprocess=failed adds the missing analysis.
        again = run_pipeline(
            _env(s3_bucket, gemini, **{**env, "VIDEO_PIPELINE_BUDGET_USD_PER_DAY": "0"}),
            "--conf",
            json.dumps({"reprocess": "failed"}),
        )
    assert again.state == "success", again.output + again.log[-4000:]
    with psycopg2.connect(results_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT a.flags, a.data FROM analyses a JOIN videos v USING (video_id)"
            " WHERE a.is_current AND v.source_key = %s",
            (victim,),
        )
        flags, data = cur.fetchone()
    assert "analysis_unavailable" not in flags and data["summary"]
    assert f"completed/{victim}" in _keys(s3_client, s3_bucket, "completed/")
    assert GEMINI_KEY not in run.log + again.log
