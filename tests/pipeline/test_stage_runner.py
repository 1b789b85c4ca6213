"""pipeline.stage_runner: one stage for one video, against a real PostgreSQL ledger; and how the operator
maps each outcome to Airflow.

Duplicates (reuse and waiting for a lead) are ``tests/hooks/test_duplicate_leads.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from include.video_pipeline.config import Settings
from include.video_pipeline.core.errors import (
    InputRejected,
    PermanentError,
    QuotaExhausted,
    RejectReason,
    WorkPending,
)
from include.video_pipeline.core.stage_outputs import AnalysisOutput
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.operators.base import StageContext, VideoStageOperator
from include.video_pipeline.pipeline.lifecycle import ClaimedVideo
from include.video_pipeline.pipeline.stage_runner import Outcome, StageRunner


def _claimed(db: ResultsDbHook, vid: str, run_id: str = "run-1") -> ClaimedVideo:
    assert db.claim(
        video_id=vid, bucket="b", source_key=f"{vid}.mp4", etag=vid, size_bytes=1, run_id=run_id, lease_seconds=600
    )
    return ClaimedVideo(video_id=vid, rel_key=f"{vid}.mp4", name=f"{vid}.mp4", size=1, etag=vid)


def _ctx(video: ClaimedVideo, tmp_path: Path, run_id: str = "run-1") -> StageContext:
    return StageContext(dataclasses.replace(Settings(), local_root=tmp_path), video, run_id, 2, {})


def _stage_runs(db: ResultsDbHook) -> list[tuple[Any, ...]]:
    with db.cursor() as cur:
        cur.execute("SELECT video_id, stage, try_number, status, details, cache_key FROM stage_runs ORDER BY id")
        return list(cur.fetchall())


def _raising(exc: BaseException) -> Callable[[StageContext], Any]:
    def compute(ctx: StageContext) -> Any:
        raise exc

    return compute


def test_a_typed_result_is_recorded_and_returned_as_its_dict(results_db: ResultsDbHook, tmp_path):
    video = _claimed(results_db, "v1")
    result = AnalysisOutput(files=[], analyzer="offline", flags=["no_audio"])
    outcome = StageRunner("analyze", compute=lambda ctx: result).run(_ctx(video, tmp_path))
    assert outcome.kind is Outcome.DONE and outcome.result == result.to_dict() and outcome.reused_from is None
    [(vid, stage, attempt, status, details, cache_key)] = _stage_runs(results_db)
    assert (vid, stage, attempt, status, cache_key) == ("v1", "analyze", 2, "success", None)
    assert details == {"result": result.to_dict(), "reused_from": None}


def test_an_uncacheable_result_is_recorded_without_its_key(results_db: ResultsDbHook, tmp_path):
    video = _claimed(results_db, "v1")
    runner = StageRunner(
        "analyze",
        compute=lambda ctx: AnalysisOutput(cacheable=False),  # the provider could not make it
        cache_input=lambda ctx: ("transcript-sha", {"model": "m"}),
    )
    assert runner.run(_ctx(video, tmp_path)).kind is Outcome.DONE
    assert _stage_runs(results_db)[0][5] is None
    with results_db.cursor() as cur:
        cur.execute("SELECT count(*) FROM stage_leads")
        assert cur.fetchone()[0] == 0  # the lead is released all the same


def test_a_video_this_run_no_longer_owns_is_skipped_untouched(results_db: ResultsDbHook, tmp_path):
    video = _claimed(results_db, "v1", run_id="other-run")
    calls: list[str] = []
    outcome = StageRunner("transcode", compute=lambda ctx: calls.append("ran") or {}).run(_ctx(video, tmp_path))
    assert outcome.kind is Outcome.SKIPPED and "no longer claimed by this run" in outcome.message
    assert calls == [] and _stage_runs(results_db) == []


def test_a_video_another_stage_failed_is_skipped(results_db: ResultsDbHook, tmp_path):
    video = _claimed(results_db, "v1")
    results_db.set_outcome("v1", "requeue")
    outcome = StageRunner("analyze", compute=lambda ctx: {}).run(_ctx(video, tmp_path))
    assert outcome.kind is Outcome.SKIPPED and outcome.message == "v1.mp4: already requeue in another stage"


@pytest.mark.parametrize(
    ("error", "kind", "status", "decided"),
    [
        (InputRejected(RejectReason.CORRUPT, "damaged at 0:03"), Outcome.REJECTED, "rejected", "failed"),
        (QuotaExhausted("daily quota"), Outcome.REQUEUED, "requeued", "requeue"),
        (PermanentError("invalid API key"), Outcome.FAILED_PERMANENT, "failed", None),
        (OSError("connection reset"), Outcome.FAILED_TRANSIENT, "failed", None),
    ],
)
def test_each_kind_of_failure_is_recorded_with_its_report(
    results_db: ResultsDbHook, tmp_path, error, kind, status, decided
):
    video = _claimed(results_db, "v1")
    outcome = StageRunner("transcode", compute=_raising(error)).run(_ctx(video, tmp_path))
    assert outcome.kind is kind and outcome.error is error
    assert outcome.report is not None and outcome.report.video_id == "v1" and outcome.report.source_key == "v1.mp4"
    assert (outcome.report.stage, outcome.report.attempt) == ("transcode", 2)
    row = results_db.get_video("v1")
    assert row["outcome"] == decided  # only a rejection or a requeue decides the video's fate here
    assert row["last_error"]["error_class"] == type(error).__name__
    assert [r[3] for r in _stage_runs(results_db)] == [status]


# -- the operator: outcomes as Airflow sees them ------------------------------------------


class _Stage(VideoStageOperator):
    stage = "transcode"
    error: BaseException | None = None

    def run_stage(self, ctx: StageContext) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"files": [], "duration": 1.0}


def _execute(db: ResultsDbHook, vid: str, error: BaseException | None = None) -> Any:
    stage = _Stage(task_id="transcode", video=_claimed(db, vid).to_xcom())
    stage.error = error
    return stage.execute({"ti": SimpleNamespace(try_number=1), "run_id": "run-1", "params": {}})


def test_work_handed_to_a_provider_is_awaited_with_nothing_recorded_and_the_lead_kept(
    results_db: ResultsDbHook, tmp_path
):
    video = _claimed(results_db, "v1")
    pending = WorkPending("batches/123", "Gemini batch batches/123 is running")
    runner = StageRunner("analyze", compute=_raising(pending), cache_input=lambda ctx: ("sha", {"model": "m"}))
    outcome = runner.run(_ctx(video, tmp_path))
    assert outcome.kind is Outcome.AWAITING_PROVIDER and outcome.error is pending and "batches/123" in outcome.message
    assert _stage_runs(results_db) == []  # not a failure: no retry spent, no error recorded
    assert (results_db.get_video("v1") or {}).get("last_error") is None
    with results_db.cursor() as cur:
        cur.execute("SELECT video_id FROM stage_leads")
        assert cur.fetchall() == [("v1",)]  # duplicates keep waiting for this video's result
    # A stage without a provider job of its own cannot wait for one: that is a bug, said loudly.
    with pytest.raises(RuntimeError, match="has no provider job to wait for"):
        _execute(results_db, "v2", pending)


def test_the_operator_maps_outcomes_to_airflow(results_db: ResultsDbHook, monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    monkeypatch.setenv("VIDEO_PIPELINE_LOCAL_ROOT", str(tmp_path))
    assert _execute(results_db, "done") == {"files": [], "duration": 1.0}
    with pytest.raises(AirflowSkipException, match=r"rejected \(corrupt\): damaged"):
        _execute(results_db, "bad", InputRejected(RejectReason.CORRUPT, "damaged"))
    with pytest.raises(AirflowSkipException, match="back to pending/ for the next run"):
        _execute(results_db, "quota", QuotaExhausted("daily quota"))
    with pytest.raises(AirflowFailException, match="invalid API key"):
        _execute(results_db, "key", PermanentError("invalid API key"))
    transient = OSError("connection reset")
    with pytest.raises(OSError) as raised:  # the error itself, so that Airflow retries it
        _execute(results_db, "flaky", transient)
    assert raised.value is transient


def test_connection_ids_are_template_fields_defaulting_to_the_settings(monkeypatch):
    from include.video_pipeline.operators.analyze import VideoAnalyzeOperator

    monkeypatch.setenv("VIDEO_PIPELINE_AWS_CONN_ID", "bucket")
    monkeypatch.setenv("VIDEO_PIPELINE_RESULTS_CONN_ID", "ledger")
    monkeypatch.setenv("VIDEO_PIPELINE_ANALYZER", "openai-compatible")
    monkeypatch.setenv("VIDEO_PIPELINE_OPENAI_CONN_ID", "ollama")
    monkeypatch.setenv("VIDEO_PIPELINE_OPENAI_MODEL", "llama3")
    task = VideoAnalyzeOperator(task_id="analyze", video={}, transcript={})
    assert {"aws_conn_id", "gcp_conn_id", "postgres_conn_id", "analysis_conn_id"} <= set(task.template_fields)
    assert (task.aws_conn_id, task.gcp_conn_id, task.postgres_conn_id) == ("bucket", "google_cloud_default", "ledger")
    assert task.analysis_conn_id == "ollama"
    given = VideoAnalyzeOperator(
        task_id="analyze", video={}, transcript={}, postgres_conn_id="results", analysis_conn_id="local_llm"
    )
    settings = given.stage_settings()
    assert (settings.results_conn_id, settings.aws_conn_id) == ("results", "bucket")
    ctx = SimpleNamespace(settings=settings)
    assert given.analysis_settings(ctx).openai_conn_id == "local_llm"  # type: ignore[arg-type]
