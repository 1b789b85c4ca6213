"""The Gemini Batch API path: the real google-genai SDK against the loopback Gemini server's batches,
the batch kept in a real results database, and the trigger that waits for it."""

from __future__ import annotations

import asyncio
import time

import pytest

from include.video_pipeline.config import AnalysisSettings
from include.video_pipeline.core.analysis import estimate_cost_usd, schema_errors
from include.video_pipeline.core.errors import InputRejected, RejectReason
from include.video_pipeline.hooks.analyzers import build_batch_analyzer
from include.video_pipeline.hooks.gemini_batch import BATCH_FLAG, BatchPending, GeminiBatchAnalyzer
from include.video_pipeline.hooks.llm_base import BatchUnavailable, BudgetExceeded
from include.video_pipeline.hooks.provider_state import ProviderState
from include.video_pipeline.operators.gemini_batch_trigger import GeminiBatchTrigger
from tests.fakes import FakeGeminiServer, Reply
from tests.fakes.gemini_server import transcript_lines
from tests.hooks.test_gemini_hook import API_KEY, Waits, make_transcript

MODEL = "gemini-3.1-flash-lite"
# Round prices, so the half-price arithmetic is exact: $1 per million input, $2 per million output.
PRICES = ((MODEL, 1.0, 2.0, 0.1),)


@pytest.fixture
def server(monkeypatch):
    for name in ("GOOGLE_API_KEY", "AIRFLOW_CONN_GEMINI_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with FakeGeminiServer(api_key=API_KEY, batch_delay_seconds=0.6) as fake:
        yield fake


def batch_analyzer(server, results_db, *, video_id="clip-1", run_id="run-1", max_retries=2, **state_options):
    settings = AnalysisSettings(
        analyzer="gemini", gemini_base_url=server.base_url, max_retries=max_retries, prices=PRICES
    )
    state = ProviderState(results_db, scope="gemini:test", run_id=run_id, video_id=video_id, **state_options)
    analyzer = build_batch_analyzer(
        settings,
        batches=results_db,
        video_id=video_id,
        run_id=run_id,
        state=state,
        backoff_base_seconds=0.01,
        sleep=Waits(),
    )
    assert isinstance(analyzer, GeminiBatchAnalyzer)
    return analyzer


def wait_until_done(server, analyzer, transcript, timeout=5.0, **kwargs):
    """Run the analysis as the resumed task would, until the batch has ended."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return analyzer.analyze(transcript, title="standup.mp4", **kwargs)
        except BatchPending:
            assert time.monotonic() < deadline, "the batch never finished"
            time.sleep(0.1)


def batch_rows(results_db):
    with results_db.cursor() as cur:
        cur.execute("SELECT * FROM gemini_batches ORDER BY id")
        return results_db._rows(cur)


def spend_rows(results_db):
    with results_db.cursor() as cur:
        cur.execute("SELECT kind, usd::float, input_tokens, output_tokens FROM analysis_spend ORDER BY id")
        return cur.fetchall()


def test_a_batch_is_submitted_once_waited_for_and_collected_at_half_price(server, results_db):
    transcript = make_transcript()
    with pytest.raises(BatchPending) as pending:
        batch_analyzer(server, results_db).analyze(transcript, title="standup.mp4")
    assert pending.value.state == "pending" and pending.value.batch_name.startswith("batches/")
    # Still running: a second execution (the task resumed early, or retried) waits on the same batch.
    with pytest.raises(BatchPending):
        batch_analyzer(server, results_db).analyze(transcript, title="standup.mp4")
    assert server.batches.submissions == 1

    result = wait_until_done(server, batch_analyzer(server, results_db), transcript)
    assert server.batches.submissions == 1 and server.generate_requests == []  # not one online call
    assert BATCH_FLAG in result.flags and not schema_errors(result.data)
    assert result.model == MODEL and result.usage.calls == 1 and result.data["summary"]
    # Priced at the Batch API's rate: half of (input x $1 + output x $2) per million tokens.
    usage = result.usage
    online = estimate_cost_usd(
        MODEL, usage.input_tokens, usage.output_tokens, prices=dict((p[0], p[1:]) for p in PRICES)
    )
    assert online and usage.cost_usd == pytest.approx(online / 2, abs=2e-6)
    assert spend_rows(results_db) == [
        ("spent", pytest.approx(usage.cost_usd, abs=1e-6), usage.input_tokens, usage.output_tokens)
    ]
    # The inline request is what an online call sends: system instruction, JSON schema, the transcript.
    [sent] = server.batch_requests
    assert sent.generation_config["responseJsonSchema"] and "language code: ru" in sent.system_text
    assert "[0.0-4.2]" in sent.prompt_text
    [row] = batch_rows(results_db)
    assert (
        row["state"] == "succeeded"
        and row["collected_at"] is not None
        and row["batch_name"] == pending.value.batch_name
    )
    assert API_KEY not in repr(row)

    # A retry after the answers were used reads them again: the same analysis, no second spend or batch.
    again = batch_analyzer(server, results_db).analyze(transcript, title="standup.mp4")
    assert again.data == result.data and len(spend_rows(results_db)) == 1 and server.batches.submissions == 1


def test_a_submission_whose_name_was_never_recorded_is_found_by_its_display_name(server, results_db, monkeypatch):
    transcript = make_transcript()
    analyzer = batch_analyzer(server, results_db)

    def worker_dies(*args, **kwargs):
        raise ConnectionError("the worker lost the results database right after Google accepted the batch")

    with monkeypatch.context() as patched, pytest.raises(ConnectionError):
        patched.setattr(results_db, "gemini_batch_submitted", worker_dies)
        analyzer.analyze(transcript, title="standup.mp4")
    [row] = batch_rows(results_db)
    assert row["batch_name"] is None and row["state"] == "submitting" and server.batches.submissions == 1

    # The retry finds Google's batch by the row's display name instead of paying for another.
    result = wait_until_done(server, batch_analyzer(server, results_db), transcript)
    assert server.batches.submissions == 1 and BATCH_FLAG in result.flags
    [row] = batch_rows(results_db)
    assert row["batch_name"] == next(iter(server.batches.batches)) and row["state"] == "succeeded"
    assert any(r.action == "batchList" for r in server.requests)


def test_a_submission_google_never_received_is_sent_by_the_retry(server, results_db):
    transcript = make_transcript()
    # A 503 on the create with no retries left: Google may or may not have the batch, so
    # the row stays as it is and the next attempt looks for it before submitting.
    server.enqueue_batch_create(Reply.server_error(503))
    with pytest.raises(Exception, match="503"):
        batch_analyzer(server, results_db, max_retries=0).analyze(transcript, title="standup.mp4")
    [row] = batch_rows(results_db)
    assert row["state"] == "submitting" and row["batch_name"] is None and server.batches.submissions == 0

    result = wait_until_done(server, batch_analyzer(server, results_db), transcript)
    assert server.batches.submissions == 1 and BATCH_FLAG in result.flags
    [row] = batch_rows(results_db)
    assert row["state"] == "succeeded"


def test_a_refused_submission_holds_nothing(server, results_db):
    # 400: Google created nothing; the row is marked failed and no longer holds budget or looks in flight.
    server.enqueue_batch_create(
        Reply(status=400, body={"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}})
    )
    with pytest.raises(Exception, match="refused the request"):
        batch_analyzer(server, results_db).analyze(make_transcript(), title="standup.mp4")
    [row] = batch_rows(results_db)
    assert row["state"] == "failed" and "not submitted" in row["message"]


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("BATCH_STATE_FAILED", "batch_failed"),
        ("BATCH_STATE_EXPIRED", "batch_expired"),
        ("cancel", "batch_cancelled"),
    ],
)
def test_a_batch_that_ends_without_answers_ends_the_analysis_with_its_reason(server, results_db, outcome, reason):
    transcript = make_transcript()
    if outcome != "cancel":
        server.batches.outcome = lambda requests: outcome
    with pytest.raises(BatchPending) as pending:
        batch_analyzer(server, results_db).analyze(transcript, title="standup.mp4")
    if outcome == "cancel":
        assert server.batches.cancel(pending.value.batch_name)  # someone cancelled it in AI Studio
    with pytest.raises(BatchUnavailable) as ended:
        wait_until_done(server, batch_analyzer(server, results_db), transcript)
    assert ended.value.reason == reason and "reprocess=failed" in str(ended.value)
    [row] = batch_rows(results_db)
    assert row["state"] == reason.removeprefix("batch_") and row["collected_at"] is not None
    assert spend_rows(results_db) == []  # nothing answered, nothing spent

    # A retry in the same run ends the same way: never a second batch for it.
    with pytest.raises(BatchUnavailable):
        batch_analyzer(server, results_db).analyze(transcript, title="standup.mp4")
    assert server.batches.submissions == 1
    # A later run (reprocess=failed) submits a new one.
    server.batches.outcome = None
    result = wait_until_done(server, batch_analyzer(server, results_db, run_id="run-2"), transcript)
    assert server.batches.submissions == 2 and BATCH_FLAG in result.flags


def test_an_invalid_batch_answer_is_asked_for_again_online(server, results_db):
    server.enqueue(Reply.text("not JSON at all"))  # the batch's one answer
    result = wait_until_done(server, batch_analyzer(server, results_db), make_transcript())
    assert len(server.generate_requests) == 1  # the repair went online
    assert result.usage.calls == 2 and BATCH_FLAG in result.flags and result.data["summary"]
    kinds = [kind for kind, *_ in spend_rows(results_db)]
    assert kinds == ["spent", "spent"]  # the batch answer was billed too


def test_a_blocked_answer_rejects_the_video_as_online(server, results_db):
    server.enqueue(Reply.safety_stop())
    with pytest.raises(InputRejected) as rejected:
        wait_until_done(server, batch_analyzer(server, results_db), make_transcript())
    assert rejected.value.reason is RejectReason.CONTENT_BLOCKED


def test_a_failed_request_inside_a_finished_batch(server, results_db):
    server.enqueue(Reply.server_error(500))
    with pytest.raises(BatchUnavailable) as failed:
        wait_until_done(server, batch_analyzer(server, results_db), make_transcript())
    assert failed.value.reason == "batch_request_failed" and "500" in str(failed.value)


def test_a_long_transcript_is_one_batch_with_a_request_per_chunk(server, results_db, monkeypatch):
    lines = [(i * 6.0, i * 6.0 + 5.0, f"Часть {i}: бюджет, сроки и реклама проекта номер {i}.") for i in range(30)]
    transcript = make_transcript(lines)
    analyzer = batch_analyzer(server, results_db)
    analyzer.max_chunk_tokens = 200  # a few chunks
    result = wait_until_done(server, analyzer, transcript)
    assert server.batches.submissions == 1 and len(server.batch_requests) >= 3
    assert "chunked" in result.flags and result.usage.calls == len(server.batch_requests)
    # One request per chunk, in transcript order, and every line in exactly one of them.
    starts = [transcript_lines(r.prompt_text)[0][0] for r in server.batch_requests]
    assert starts == sorted(starts)
    assert sum(len(transcript_lines(r.prompt_text)) for r in server.batch_requests) == len(lines)


def test_budgets_hold_the_batch_estimate_until_its_answers_are_spent(server, results_db):
    transcript = make_transcript()
    with pytest.raises(BatchPending):
        batch_analyzer(server, results_db, budget_usd_per_day=1.0).analyze(transcript, title="standup.mp4")
    [row] = batch_rows(results_db)
    held = float(row["estimate_usd"])
    # The estimate is at the batch price: half what the same analysis is estimated at online.
    hook = batch_analyzer(server, results_db).hook
    tokens = sum(hook.count_tokens(f"{p.system}\n{p.user}") or 0 for p in _prompts(hook, transcript))
    online = estimate_cost_usd(MODEL, tokens, 4_000, prices=dict((p[0], p[1:]) for p in PRICES))
    assert held == pytest.approx(online / 2, abs=2e-6)
    # While it runs, its estimate counts against the day: another video that would cross the cap waits.
    cap = held * 1.5
    with pytest.raises(BudgetExceeded, match="daily analysis budget"):
        batch_analyzer(server, results_db, video_id="clip-2", budget_usd_per_day=cap).analyze(
            make_transcript(), title="other.mp4"
        )
    assert server.batches.submissions == 1
    # Once collected, the spend is what the answers cost, and the hold is gone.
    wait_until_done(server, batch_analyzer(server, results_db, budget_usd_per_day=cap), transcript)
    [(kind, usd, *_)] = spend_rows(results_db)
    assert kind == "spent" and float(usd) < held
    with pytest.raises(BatchPending):
        batch_analyzer(server, results_db, video_id="clip-2", budget_usd_per_day=cap).analyze(
            make_transcript(), title="other.mp4"
        )


def _prompts(hook, transcript):
    analyzer = GeminiBatchAnalyzer(hook, batches=None, video_id="x", run_id="x")  # type: ignore[arg-type]
    return analyzer.plan(transcript, title="standup.mp4", language="ru").prompts


# -- the trigger ---------------------------------------------------------------------------


def first_event(trigger):
    async def run():
        async for event in trigger.run():
            return event.payload
        return None

    return asyncio.run(run())


def make_trigger(server, name, **options):
    values = {"poll_seconds": 0.05, "resume_after_seconds": 30.0, "max_failures": 2, **options}
    return GeminiBatchTrigger(name, gemini_conn_id="gemini_default", base_url=server.base_url, **values)


def submitted(server, results_db):
    with pytest.raises(BatchPending) as pending:
        batch_analyzer(server, results_db).analyze(make_transcript(), title="standup.mp4")
    return pending.value.batch_name


def test_the_trigger_fires_when_the_batch_ends(server, results_db):
    name = submitted(server, results_db)
    polls = server.batches.polls
    trigger = make_trigger(server, name)
    # What the triggerer stores and rebuilds: names and numbers only, never the key.
    path, kwargs = trigger.serialize()
    assert path == "include.video_pipeline.operators.gemini_batch_trigger.GeminiBatchTrigger"
    assert API_KEY not in repr(kwargs)
    event = first_event(GeminiBatchTrigger(**kwargs))
    assert event == {"batch": name, "why": "ended", "state": "succeeded"}
    assert server.batches.polls - polls >= 3  # it waited through pending and running


def test_the_trigger_rides_out_a_failed_poll_and_hands_persistent_failures_to_the_task(server, results_db):
    name = submitted(server, results_db)
    server.enqueue_batch_poll(Reply.server_error(503))
    assert first_event(make_trigger(server, name))["why"] == "ended"
    server.enqueue_batch_poll(*[Reply.server_error(503)] * 3)
    event = first_event(make_trigger(server, name, max_failures=2))
    assert event["why"] == "polling failed" and "503" in event["error"] and API_KEY not in event["error"]


def test_the_trigger_comes_back_while_a_long_batch_still_runs(server, results_db):
    server.batches.delay_seconds = 60
    name = submitted(server, results_db)
    event = first_event(make_trigger(server, name, resume_after_seconds=0.3))
    assert event["why"] == "still running" and event["state"] in ("pending", "running")


# -- the analyze task: which analyzer, and how it waits ----------------------------------------


def _analyze_task(monkeypatch, server, **env):
    from include.video_pipeline.operators.analyze import VideoAnalyzeOperator

    for name, value in {"VIDEO_PIPELINE_GEMINI_BASE_URL": server.base_url, **env}.items():
        monkeypatch.setenv(name, value)
    video = {"video_id": "clip-1", "rel_key": "clip.mp4", "name": "clip.mp4", "size": 1, "etag": "e"}
    return VideoAnalyzeOperator(task_id="analyze", video=video, transcript={"files": []})


@pytest.mark.parametrize(
    ("env", "run_type", "params", "batched"),
    [
        ({"VIDEO_PIPELINE_GEMINI_BATCH": "reprocess"}, "backfill", {}, True),
        ({"VIDEO_PIPELINE_GEMINI_BATCH": "reprocess"}, "manual", {"reprocess": "failed"}, True),
        ({"VIDEO_PIPELINE_GEMINI_BATCH": "reprocess"}, "scheduled", {}, False),  # new uploads: online
        ({"VIDEO_PIPELINE_GEMINI_BATCH": "reprocess"}, "backfill", {"gemini_batch": "online"}, False),
        ({}, "manual", {"reprocess": "video", "gemini_batch": "batch"}, True),
        ({}, "backfill", {}, False),  # the default: never
    ],
)
def test_the_analyze_task_batches_the_runs_the_setting_and_param_say(
    server, results_db, monkeypatch, tmp_path, env, run_type, params, batched
):
    from include.video_pipeline.config import load_settings
    from include.video_pipeline.pipeline.lifecycle import ClaimedVideo
    from include.video_pipeline.pipeline.stage_runner import StageContext

    task = _analyze_task(monkeypatch, server, VIDEO_PIPELINE_ANALYZER="gemini", **env)
    ctx = StageContext(load_settings(), ClaimedVideo.from_xcom(task.video), "run-1", 1, params, run_type=run_type)
    analyzer = task.analyzer_for(ctx, task.analysis_settings(ctx), None)
    assert isinstance(analyzer, GeminiBatchAnalyzer) is batched
    assert analyzer.name == "gemini"


def test_the_analyze_task_defers_on_its_batch_and_comes_back_to_collect_it(server, results_db, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    from include.video_pipeline.pipeline.stage_runner import Outcome, StageOutcome

    task = _analyze_task(monkeypatch, server, VIDEO_PIPELINE_GEMINI_BATCH_POLL_SECONDS="7")
    pending = BatchPending("batches/abc", "running")
    with pytest.raises(TaskDeferred) as deferred:
        task.await_provider(StageOutcome(Outcome.AWAITING_PROVIDER, "clip.mp4: waiting", error=pending))
    trigger = deferred.value.trigger
    assert isinstance(trigger, GeminiBatchTrigger) and deferred.value.method_name == "resume_after_batch"
    assert (trigger.batch_name, trigger.poll_seconds, trigger.base_url) == ("batches/abc", 7.0, server.base_url)
    # Back every half hour at most: the video's lease (6 h) and the lead on its result (1 h) stay alive.
    assert trigger.resume_after_seconds == 1800 and deferred.value.timeout.total_seconds() > 1800
    calls = []
    monkeypatch.setattr(task, "execute", lambda context: calls.append(context) or {"files": []})
    event = {"batch": "batches/abc", "why": "ended", "state": "succeeded"}
    assert task.resume_after_batch({"run_id": "run-1"}, event=event) == {"files": []} and len(calls) == 1
