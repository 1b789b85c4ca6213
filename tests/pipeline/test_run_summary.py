"""run_summary: a real run's ledger (PostgreSQL) and bucket (a local folder) summarised and written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.video_pipeline.config import load_settings
from include.video_pipeline.core.errors import FailureReport
from include.video_pipeline.core.states import run_key_name, run_summary_key
from include.video_pipeline.pipeline.lifecycle import ReconcileReport, VideoLifecycle
from include.video_pipeline.pipeline.run_summary import (
    build_run_summary,
    format_run_summary,
    summarize_stages,
    write_run_summary,
)
from include.video_pipeline.storage.local import LocalFolderStore

RUN_ID = "manual__2025-05-01T10:00:00+00:00"


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(
        {
            "VIDEO_PIPELINE_STORAGE": "local",
            "VIDEO_PIPELINE_LOCAL_ROOT": str(tmp_path / "bucket"),
            "VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"),
        }
    )


def test_a_run_is_summarised_from_the_ledger_and_written_as_json(settings, results_db, caplog) -> None:
    store = LocalFolderStore(settings.local_root)
    for name in ("Отчёт за май.mp4", "broken.mp4", "later.mp4"):
        store.put_bytes(f"pending/{name}", b"x" * 100)
    lifecycle = VideoLifecycle(settings, store, results_db)
    claimed = {video.name: video for video in lifecycle.claim_batch(RUN_ID)}
    started = datetime.now(UTC)
    for name, stage, status, seconds in [
        ("Отчёт за май.mp4", "transcode", "failed", 1.0),
        ("Отчёт за май.mp4", "transcode", "success", 3.0),
        ("Отчёт за май.mp4", "transcribe", "success", 5.0),
        ("Отчёт за май.mp4", "publish", "success", 0.5),
        ("broken.mp4", "transcode", "rejected", 0.25),
        ("later.mp4", "analyze", "requeued", 2.0),
    ]:
        results_db.record_stage(
            video_id=claimed[name].video_id,
            stage=stage,
            run_id=RUN_ID,
            try_number=1,
            status=status,
            started_at=started,
            seconds=seconds,
        )
    results_db.record_stage(
        video_id=claimed["later.mp4"].video_id,
        stage="transcode",
        run_id="another-run",
        try_number=1,
        status="success",
        started_at=started,
        seconds=99.0,
    )
    results_db.set_outcome(claimed["Отчёт за май.mp4"].video_id, "succeeded")
    results_db.set_outcome(
        claimed["broken.mp4"].video_id,
        "failed",
        FailureReport(
            stage="transcode",
            error_class="InputRejected",
            message="moov atom not found",
            attempt=1,
            reason="corrupt",
            retryable=False,
        ),
    )
    results_db.set_outcome(claimed["later.mp4"].video_id, "requeue")
    report = lifecycle.reconcile(RUN_ID)

    summary = build_run_summary(report, results_db)

    assert summary["status"] == "succeeded"  # a rejected upload is not the run's fault
    assert summary["counts"]["completed"] == 1 and summary["counts"]["failed"] == 1
    assert summary["counts"]["requeued"] == 1 and summary["counts"]["errors"] == 0
    transcode = summary["stages"]["transcode"]
    assert transcode["attempts"] == 3 and transcode["statuses"] == {"failed": 1, "success": 1, "rejected": 1}
    assert transcode["total_seconds"] == 4.25 and transcode["max_seconds"] == 3.0  # not the other run's 99 s
    assert list(summary["stages"]) == ["transcode", "transcribe", "analyze", "publish"]
    videos = {v["source_key"]: v for v in summary["videos"]}
    assert videos["Отчёт за май.mp4"]["state"] == "completed"
    assert videos["Отчёт за май.mp4"]["stage_seconds"] == {"transcode": 4.0, "transcribe": 5.0, "publish": 0.5}
    assert videos["Отчёт за май.mp4"]["seconds"] >= 0
    assert videos["broken.mp4"]["reason"] == "corrupt"
    assert videos["later.mp4"]["state"] == "pending"
    assert summary["failures"] == [
        {
            "video_id": claimed["broken.mp4"].video_id,
            "source_key": "broken.mp4",
            "stage": "transcode",
            "reason": "corrupt",
            "message": "moov atom not found",
            "retryable": False,
        }
    ]

    with caplog.at_level("INFO"):
        key = write_run_summary(store, settings, summary)
    assert key == run_summary_key(settings.output_prefix, RUN_ID)
    assert key.startswith("outputs/_runs/manual__2025-05-01T10_00_00_00_00-") and key.endswith(".json")
    written = json.loads(store.get_bytes(key))
    assert written["run_id"] == RUN_ID and written["counts"] == summary["counts"]
    assert "Отчёт за май.mp4" in caplog.text and "moov atom not found" in caplog.text
    assert "transcode" in caplog.text and key in caplog.text


def test_ledger_trouble_still_gives_a_summary(settings) -> None:
    class BrokenLedger:
        def videos_for_run(self, run_id: str) -> list:
            raise ConnectionError("database is down")

        def stage_runs_for_run(self, run_id: str) -> list:
            raise AssertionError("not reached")

    report = ReconcileReport(run_id="r", completed=["a"], errors=["b: OSError: disk"])
    summary = build_run_summary(report, BrokenLedger())
    assert summary["status"] == "failed" and summary["counts"]["completed"] == 1
    assert summary["ledger_error"] == "ConnectionError: database is down"
    assert "no timings" in format_run_summary(summary) and "not settled: b: OSError: disk" in format_run_summary(
        summary
    )


def test_a_store_that_refuses_the_write_does_not_raise(settings, tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "bucket")
    (tmp_path / "bucket" / "outputs").write_text("a file where the outputs folder should be")
    assert write_run_summary(store, settings, {"run_id": "r", "counts": {}}) is None


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        ("scheduled__2025-05-01", "scheduled__2025-05-01"),
        ("manual__2025-05-01T10:00:00+00:00", "manual__2025-05-01T10_00_00_00_00-"),
        ("../../etc/passwd", "etc_passwd-"),
        ("запуск/1", "1-"),
        ("///", "run-"),
    ],
)
def test_run_ids_become_safe_object_names(run_id: str, expected: str) -> None:
    name = run_key_name(run_id)
    assert name.startswith(expected)
    assert "/" not in name and ".." not in name and name.isascii()
    if name != run_id:
        assert len(name) == len(expected) + 8 if expected.endswith("-") else True


def test_different_run_ids_never_share_a_file() -> None:
    assert run_key_name("a:b") != run_key_name("a+b")


def test_stage_statistics() -> None:
    stats = summarize_stages(
        [
            {"stage": "publish", "status": "success", "seconds": 1.0},
            {"stage": "custom", "status": "success", "seconds": 2.0},
            {"stage": "transcode", "status": "success", "seconds": 2.0},
            {"stage": "transcode", "status": "failed", "seconds": 4.0},
        ]
    )
    assert list(stats) == ["transcode", "publish", "custom"]
    assert stats["transcode"]["mean_seconds"] == 3.0 and stats["transcode"]["max_seconds"] == 4.0
