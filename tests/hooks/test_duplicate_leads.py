"""Duplicates processed at the same time compute once: stage leads in a real PostgreSQL, the copy of a
leader's result from wherever it is now, and the operator deferring while another copy computes.

The whole-run proof (three identical uploads in one batch, each stage computed once) is
``tests/e2e/test_real_uploads_bucket.py``; ``dag.test()`` runs tasks one at a time, so the
waiting path is proven here, against the real database and a real store.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from include.video_pipeline.config import Settings
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.operators.base import StageContext, VideoStageOperator
from include.video_pipeline.pipeline.cache import DuplicateInProgress, restore_cached_result, stage_cache_key
from include.video_pipeline.pipeline.lifecycle import ClaimedVideo
from include.video_pipeline.pipeline.run_summary import busy_seconds
from include.video_pipeline.storage.local import LocalFolderStore


def _lead(db: ResultsDbHook, video_id: str, lease: int = 3600) -> dict[str, Any] | None:
    return db.take_stage_lead(cache_key="k1", stage="transcode", video_id=video_id, run_id="run-1", lease_seconds=lease)


def test_one_lead_per_key_until_released_or_expired(results_db: ResultsDbHook):
    assert _lead(results_db, "copy-a") is None  # copy-a computes
    held = _lead(results_db, "copy-b")
    assert held is not None and held["video_id"] == "copy-a"  # copy-b must wait
    assert _lead(results_db, "copy-a") is None  # a retry of the leader keeps its lead
    results_db.release_stage_lead("k1", "copy-b")  # only the holder releases
    assert _lead(results_db, "copy-b")["video_id"] == "copy-a"
    results_db.release_stage_lead("k1", "copy-a")
    assert _lead(results_db, "copy-b", lease=0) is None  # released: the next one leads
    time.sleep(0.05)
    assert _lead(results_db, "copy-c") is None  # copy-b's lease ran out (its worker died): taken over


def test_a_result_is_copied_from_staging_or_from_outputs_once_published(tmp_path):
    settings = dataclasses.replace(Settings(), local_root=tmp_path)
    store = LocalFolderStore(tmp_path)
    hit = {"video_id": "lead", "state": "processing", "outputs_prefix": None, "details": {"result": {"files": []}}}
    hit["details"]["result"]["files"] = [{"name": "video.mp4"}, {"name": "poster.jpg"}]
    store.put_bytes("staging/lead/video.mp4", b"mp4")  # not published yet
    store.put_bytes("outputs/lead/poster.jpg", b"jpg")  # publish already moved this one
    restore_cached_result(store, settings, "copy", hit)
    assert store.get_bytes("staging/copy/video.mp4") == b"mp4" and store.get_bytes("staging/copy/poster.jpg") == b"jpg"
    store.delete("outputs/lead/poster.jpg")
    with pytest.raises(FileNotFoundError):  # gone everywhere (the leader failed): the copy computes instead
        restore_cached_result(store, settings, "copy", hit)


class _Stage(VideoStageOperator):
    """A stage whose input is the same for every video (as for byte-identical uploads)."""

    stage = "transcode"
    runs: ClassVar[list[str]] = []

    def cache_input(self, ctx: StageContext) -> tuple[str, dict[str, Any]]:
        return "same-bytes-sha256", {"preset": "veryfast"}

    def run_stage(self, ctx: StageContext) -> dict[str, Any]:
        _Stage.runs.append(ctx.video.video_id)
        return {"files": []}


def _video(db: ResultsDbHook, vid: str) -> dict[str, Any]:
    assert db.claim(
        video_id=vid, bucket="b", source_key=f"{vid}.mp4", etag=vid, size_bytes=1, run_id="run-1", lease_seconds=600
    )
    return ClaimedVideo(video_id=vid, rel_key=f"{vid}.mp4", name=f"{vid}.mp4", size=1, etag=vid).to_xcom()


def _context() -> dict[str, Any]:
    return {"ti": SimpleNamespace(try_number=1), "run_id": "run-1", "params": {}}


def test_a_copy_defers_while_another_computes_then_reuses(results_db: ResultsDbHook, monkeypatch, tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    monkeypatch.setenv("VIDEO_PIPELINE_LOCAL_ROOT", str(tmp_path))
    _Stage.runs = []
    first, second = _video(results_db, "copy-a"), _video(results_db, "copy-b")
    # copy-a's stage is computing (it holds the lead) when copy-b's starts.
    stage = _Stage(task_id="transcode", video=second)
    ctx = StageContext(Settings(), ClaimedVideo.from_xcom(second), "run-1", 1, {})
    key = stage_cache_key("transcode", *stage.cache_input(ctx))
    assert (
        results_db.take_stage_lead(
            cache_key=key, stage="transcode", video_id="copy-a", run_id="run-1", lease_seconds=600
        )
        is None
    )
    with pytest.raises(DuplicateInProgress):
        stage._run_or_reuse(ctx)
    with pytest.raises(TaskDeferred) as deferred:  # frees the worker and pool slot instead of blocking them
        stage.execute(_context())
    assert deferred.value.method_name == "resume_after_duplicate" and _Stage.runs == []

    # copy-a finishes: its result is recorded and its lead released; copy-b resumes and reuses it.
    assert _Stage(task_id="transcode", video=first).execute(_context()) == {"files": []}
    assert _Stage.runs == ["copy-a"]  # the leader held the lead, so it computed
    assert stage.resume_after_duplicate(_context(), event=None) == {"files": []}
    assert _Stage.runs == ["copy-a"]  # computed once
    with results_db.cursor() as cur:
        cur.execute("SELECT video_id, details->>'reused_from' FROM stage_runs ORDER BY id")
        assert cur.fetchall() == [("copy-a", None), ("copy-b", "copy-a")]
        cur.execute("SELECT count(*) FROM stage_leads")
        assert cur.fetchone()[0] == 0


def test_working_time_counts_overlapping_stages_once():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"started_at": t0, "seconds": 10.0},  # transcode
        {"started_at": t0 + timedelta(seconds=2), "seconds": 4.0},  # transcribe, beside it
        {"started_at": t0 + timedelta(seconds=30), "seconds": 5.0},  # analyze, after a wait in the queue
    ]
    assert busy_seconds(rows) == 15.0
    assert busy_seconds([]) == 0.0
