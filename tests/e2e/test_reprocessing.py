"""Reprocessing and reuse: duplicate uploads hit the stage cache, failed and single videos
can be reprocessed from the trigger form, and backfill runs select by arrival window."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest

from tests.fixtures import clips

SPEECH = "Our new studio opens in March. Tickets go on sale next week."


def _rows(dsn: str, sql: str, *params):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture
def local_env(tmp_path) -> dict[str, str]:
    return {
        "VIDEO_PIPELINE_LOCAL_ROOT": str(tmp_path / "storage"),
        "VIDEO_PIPELINE_ANALYZER": "offline",
    }


def test_duplicates_reuse_results_and_finished_videos_can_be_reprocessed(
    run_pipeline, results_dsn, local_env, tmp_path
):
    storage = Path(local_env["VIDEO_PIPELINE_LOCAL_ROOT"])
    pending = storage / "pending"
    clips.make_speech_video(pending / "studio.mp4", SPEECH)
    clips.make_non_video(pending / "bad.mp4")
    first = run_pipeline(local_env, "--no-samples")
    assert first.returncode == 0, first.output + first.log[-3000:]
    (original_id,) = _rows(results_dsn, "SELECT video_id FROM videos WHERE source_key = 'studio.mp4'")[0]

    # A duplicate upload (same bytes, another name) reuses every stage's stored result.
    shutil.copyfile(storage / "completed" / "studio.mp4", pending / "studio (copy).mp4")
    second = run_pipeline(local_env, "--no-samples")
    assert second.returncode == 0, second.output + second.log[-3000:]
    (copy_id,) = _rows(results_dsn, "SELECT video_id FROM videos WHERE source_key = 'studio (copy).mp4'")[0]
    reused = dict(
        _rows(
            results_dsn,
            "SELECT stage, details->>'reused_from' FROM stage_runs WHERE video_id = %s AND status = 'success'",
            copy_id,
        )
    )
    assert reused == {"transcode": original_id, "transcribe": original_id, "analyze": original_id, "publish": None}
    original_manifest = json.loads((storage / "outputs" / original_id / "manifest.json").read_text())
    copy_manifest = json.loads((storage / "outputs" / copy_id / "manifest.json").read_text())
    assert copy_manifest["source"]["key"] == "studio (copy).mp4"
    # Stage outputs are the same bytes; per-video files (the report names the upload) are not.
    by_name = {f["name"]: f["sha256"] for f in original_manifest["files"] if f["name"] != "report.html"}
    assert {f["name"]: f["sha256"] for f in copy_manifest["files"] if f["name"] in by_name} == by_name
    for item in copy_manifest["files"]:
        assert (storage / item["key"]).stat().st_size == item["size"]

    # Reprocess every failed video from the trigger form: it is retried (and fails again, honestly).
    third = run_pipeline(local_env, "--no-samples", "--conf", json.dumps({"reprocess": "failed"}))
    assert third.returncode == 0, third.output + third.log[-3000:]
    assert _rows(results_dsn, "SELECT state, claims FROM videos WHERE source_key = 'bad.mp4'") == [("failed", 2)]
    assert (storage / "failed" / "bad.mp4.error.json").is_file()
    assert "bad.mp4" in third.output and "studio.mp4" not in third.output

    # Reprocess one video with another model setting: a new transcript version becomes
    # current and the earlier one is kept.
    fourth = run_pipeline(
        {**local_env, "VIDEO_PIPELINE_WHISPER_BEAM_SIZE": "1"},
        "--no-samples",
        "--conf",
        json.dumps({"reprocess": "video", "video_id": original_id}),
    )
    assert fourth.returncode == 0, fourth.output + fourth.log[-3000:]
    versions = _rows(results_dsn, "SELECT is_current FROM transcripts WHERE video_id = %s ORDER BY id", original_id)
    assert versions == [(False,), (True,)]
    assert (storage / "completed" / "studio.mp4").is_file()
    assert not list((storage / "processing").glob("*")) if (storage / "processing").exists() else True


def test_backfill_runs_select_completed_videos_by_arrival_window(results_db, tmp_path, monkeypatch):
    """What claim_uploads does in a run created by `airflow backfill create`."""
    from include.video_pipeline.config import load_settings
    from include.video_pipeline.operators import run_tasks as tasks

    storage = tmp_path / "storage"
    monkeypatch.setenv("VIDEO_PIPELINE_LOCAL_ROOT", str(storage))
    settings = load_settings()
    (storage / "completed").mkdir(parents=True)
    for name in ("monday.mp4", "tuesday.mp4"):
        (storage / "completed" / name).write_bytes(b"finished video bytes")
    with results_db.cursor() as cur:
        cur.execute(
            "INSERT INTO videos (video_id, bucket, source_key, etag, size_bytes, state, uploaded_at) VALUES"
            " ('mon', %s, 'monday.mp4', 'e1', 20, 'completed', '2026-11-02 10:15+00'),"
            " ('tue', %s, 'tuesday.mp4', 'e2', 20, 'completed', '2026-11-03 10:15+00')",
            (str(storage), str(storage)),
        )

    from datetime import datetime

    start = datetime(2026, 11, 2, 10, tzinfo=UTC)
    context = {
        "run_id": "backfill__2026-11-02T10:00:00+00:00",
        "dag_run": SimpleNamespace(run_type="backfill"),
        "params": {"batch_size": 100, "reprocess": "none"},
        "data_interval_start": start,
        "data_interval_end": start + timedelta(hours=1),
    }
    claimed = tasks.claim_uploads(context)
    assert [v["rel_key"] for v in claimed] == ["monday.mp4"]
    assert (storage / "processing" / "monday.mp4").is_file()
    assert (storage / "completed" / "tuesday.mp4").is_file()
    assert results_db.get_video("mon")["state"] == "processing"
    assert results_db.get_video("tue")["state"] == "completed"

    # A window in which nothing arrived reprocesses nothing.
    empty = {
        **context,
        "data_interval_start": start + timedelta(days=5),
        "data_interval_end": start + timedelta(days=6),
    }
    assert tasks.claim_uploads(empty) == []
    assert settings.prefixes.processing == "processing/"
