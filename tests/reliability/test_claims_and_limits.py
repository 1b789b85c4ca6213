"""Concurrent claimers on one ledger, and the limits checked before a download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from include.video_pipeline.config import load_settings
from include.video_pipeline.core.errors import InputRejected
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.pipeline.lifecycle import VideoLifecycle
from include.video_pipeline.pipeline.staging import fetch_source
from include.video_pipeline.storage.local import LocalFolderStore
from tests.conftest import ROOT
from tests.reliability.conftest import aws_connection, keys


def test_claimers_hammering_one_ledger_never_claim_an_upload_twice(
    s3_endpoint, bucket, s3_client, results_db, results_db_dsn, monkeypatch, tmp_path, record
):
    env = {
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint),
        "VIDEO_PIPELINE_STORAGE": "s3",
        "VIDEO_PIPELINE_BUCKET": bucket,
        "VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    names = [f"upload {n:02d}.mp4" for n in range(40)]
    for name in names:
        s3_client.put_object(Bucket=bucket, Key=f"pending/{name}", Body=name.encode())

    # Three processes and four threads claim at once, each with its own connection.
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._lifecycle_cli", "claim", f"proc-{n}", "40"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for n in range(3)
    ]
    claims: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claimer(n: int) -> None:
        settings = load_settings()
        db = ResultsDbHook(postgres_conn_id="postgres_default")
        lifecycle = VideoLifecycle(settings, ObjectStoreHook(settings=settings).get_store(), db)
        barrier.wait()
        claims[f"thread-{n}"] = [v.video_id for v in lifecycle.claim_batch(f"thread-{n}", limit=40)]
        db.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, process in enumerate(processes):
        out, _ = process.communicate(timeout=120)
        claims[f"proc-{n}"] = json.loads(out.strip().splitlines()[-1])
    every = [vid for ids in claims.values() for vid in ids]
    twice = len(every) - len(set(every))
    in_processing = keys(s3_client, bucket, "processing/")
    record(
        area="Concurrency",
        case="7 claimers (3 processes, 4 threads) on 40 uploads at once",
        expected="each upload claimed once; all 40 in processing/",
        observed=f"claims per claimer {sorted(len(v) for v in claims.values())}; {len(set(every))} distinct; "
        f"{twice} claimed twice",
        videos=40,
        duplicated=twice,
        lost=40 - len(in_processing),
    )
    assert twice == 0 and len(every) == 40
    assert in_processing == [f"processing/{n}" for n in names] and keys(s3_client, bucket, "pending/") == []
    with results_db.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT claim_run_id), max(claims) FROM videos WHERE state = 'processing'")
        assert cur.fetchone()[0::2] == (40, 1)


@pytest.fixture
def sparse_upload(tmp_path) -> tuple[LocalFolderStore, str]:
    """A 100 GiB upload that takes no disk: a sparse file in a local store's processing/."""
    store = LocalFolderStore(tmp_path / "bucket")
    path = tmp_path / "bucket" / "processing" / "huge.mp4"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        handle.truncate(100 * 1024**3)
    return store, "huge.mp4"


def test_an_upload_over_the_size_limit_is_refused_before_download(sparse_upload, tmp_path, record):
    store, rel = sparse_upload
    settings = load_settings({"VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work")})  # limit: 10 GiB
    with pytest.raises(Exception) as raised:
        fetch_source(store, settings, "huge-1", rel)
    downloaded = sum(p.stat().st_blocks * 512 for p in (tmp_path / "work").rglob("*") if p.is_file())
    record(
        area="Input",
        kind="input",
        case="100 GiB upload (sparse file) over the 10 GiB limit",
        expected="refused as too_large before any byte is downloaded",
        observed=f"{type(raised.value).__name__}: {getattr(raised.value, 'reason', '')} {raised.value}"[:160]
        + f"; {downloaded} bytes on disk",
        videos=1,
    )
    assert isinstance(raised.value, InputRejected) and raised.value.reason.value == "too_large"
    assert downloaded == 0


def test_temp_space_is_checked_before_download(sparse_upload, tmp_path, record):
    store, rel = sparse_upload
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    # Sized from this disk's free space (a sparse file takes none), so the upload is
    # too big for the work dir on any machine: the check wants 2x the upload free.
    size = max(100 * 1024**3, free // 2 + 1024**3)
    with open(tmp_path / "bucket" / "processing" / rel, "r+b") as handle:
        handle.truncate(size)
    settings = load_settings(
        {"VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"), "VIDEO_PIPELINE_MAX_UPLOAD_BYTES": str(size)}
    )
    with pytest.raises(OSError, match="not enough temp space") as raised:
        fetch_source(store, settings, "huge-1", rel)
    leftovers = [p.name for p in (tmp_path / "work").rglob("*") if p.is_file() and p.name != ".source.lock"]
    record(
        area="Input",
        kind="input",
        case=f"{size // 1024**3} GiB upload, {free // 1024**3} GiB free in the work dir",
        expected="refused before download (not enough temp space)",
        observed=f"{raised.value}; files: {leftovers}",
        videos=1,
    )
    assert leftovers == []


def test_a_large_upload_is_streamed_to_disk_not_memory(s3_endpoint, bucket, s3_client, tmp_path, record):
    """A 256 MiB upload downloaded by the task code path in a fresh process: its peak RSS stays small."""
    size = 256 * 1024**2
    source = tmp_path / "big.mp4"
    with open(source, "wb") as handle:  # a real clip repeated would compress no better for S3; bytes are bytes
        block = os.urandom(1024**2)
        for _ in range(size // len(block)):
            handle.write(block)
    s3_client.upload_file(str(source), bucket, "processing/big.mp4")
    source.unlink()
    script = (
        "import json,resource,sys;"
        "from include.video_pipeline.config import load_settings;"
        "from include.video_pipeline.hooks.object_store import ObjectStoreHook;"
        "from include.video_pipeline.pipeline.staging import fetch_source;"
        "s=load_settings();store=ObjectStoreHook(settings=s).get_store();"
        "base=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "p=fetch_source(store,s,'big-1','big.mp4');"
        "print(json.dumps({'base':base*1024,'peak':resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024,"
        "'size':p.stat().st_size}))"
    )
    env = {
        **os.environ,
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint),
        "VIDEO_PIPELINE_STORAGE": "s3",
        "VIDEO_PIPELINE_BUCKET": bucket,
        "VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True
    ).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    grown = stats["peak"] - stats["base"]
    record(
        area="Input",
        kind="input",
        case="256 MiB upload downloaded by fetch_source",
        expected="streamed to disk: peak RSS grows far less than the file",
        observed=f"{stats['size'] // 1024**2} MiB on disk; RSS {stats['base'] // 1024**2} -> "
        f"{stats['peak'] // 1024**2} MiB (+{grown // 1024**2} MiB)",
        videos=1,
    )
    assert stats["size"] == size
    assert grown < size / 4
    Path(tmp_path / "work").exists()


@pytest.fixture
def lifecycle(s3_endpoint, bucket, results_db, monkeypatch, tmp_path) -> VideoLifecycle:
    for name, value in {
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint),
        "VIDEO_PIPELINE_STORAGE": "s3",
        "VIDEO_PIPELINE_BUCKET": bucket,
        "VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"),
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    return VideoLifecycle(settings, ObjectStoreHook(settings=settings).get_store(), results_db)


def _pending(s3_client, bucket: str) -> dict[str, tuple[str, str]]:
    paginator = s3_client.get_paginator("list_objects_v2")
    return {
        o["Key"]: (o["ETag"], o["LastModified"].isoformat())
        for page in paginator.paginate(Bucket=bucket, Prefix="pending/")
        for o in page.get("Contents", [])
    }


def test_a_claim_takes_its_batch_oldest_first_and_leaves_the_rest_untouched(
    lifecycle, s3_client, bucket, results_db, record
):
    names = [f"upload-{n:03d}.mp4" for n in range(100)]
    for n, name in enumerate(names):
        s3_client.put_object(Bucket=bucket, Key=f"pending/{name}", Body=b"" if n % 3 else b"<html></html>")
    before = _pending(s3_client, bucket)
    first = [v.rel_key for v in lifecycle.claim_batch("run-1", limit=5)]
    after_first = _pending(s3_client, bucket)
    second = [v.rel_key for v in lifecycle.claim_batch("run-2", limit=5)]
    untouched = [k for k, v in after_first.items() if before.get(k) == v]
    with results_db.cursor() as cur:
        cur.execute("SELECT count(*) FROM videos")
        (rows,) = cur.fetchone()
    record(
        area="Concurrency",
        kind="input",
        case="100 uploads at once; claim_batch(limit=5), then again for the next run",
        expected="exactly 5 claimed (oldest first); 95 left in pending/ untouched; the next claim takes the next 5",
        observed=f"first claim {len(first)} ({first[0]}..{first[-1]}), {len(after_first)} left, {len(untouched)} "
        f"untouched; second claim {len(second)} ({second[0]}..{second[-1]}); {rows} ledger rows",
        videos=100,
        duplicated=len(set(first) & set(second)),
        lost=100 - len(_pending(s3_client, bucket)) - len(keys(s3_client, bucket, "processing/")),
    )
    assert first == names[:5] and second == names[5:10]
    assert len(after_first) == 95 and len(untouched) == 95 and rows == 10


def test_a_key_over_the_length_limit_goes_to_failed_with_its_reason(lifecycle, s3_client, bucket, results_db, record):
    from include.video_pipeline.core.states import MAX_RELATIVE_KEY_BYTES

    over = "Ж" * ((1024 - len("pending/") - 4) // 2) + ".mp4"  # the longest key S3 takes in pending/
    assert len(over.encode()) > MAX_RELATIVE_KEY_BYTES and len(f"pending/{over}".encode()) <= 1024
    s3_client.put_object(Bucket=bucket, Key=f"pending/{over}", Body=b"anything")
    s3_client.put_object(Bucket=bucket, Key="pending/fine.mp4", Body=b"x")
    claimed = [v.rel_key for v in lifecycle.claim_batch("run-1")]
    again = [v.rel_key for v in lifecycle.claim_batch("run-2")]
    everywhere = keys(s3_client, bucket)
    reports = [k for k in everywhere if k.endswith(".error.json")]
    report = json.loads(s3_client.get_object(Bucket=bucket, Key=reports[0])["Body"].read()) if reports else {}
    with results_db.cursor() as cur:
        cur.execute("SELECT state, error->>'reason', claims FROM videos WHERE source_key = %s", (over,))
        row = cur.fetchone()
    record(
        area="Input",
        kind="input",
        case=f"key of {len(over.encode())} bytes in pending/ (limit {MAX_RELATIVE_KEY_BYTES}; error report name "
        "would not fit S3's 1024)",
        expected="failed/ with reason invalid_key, a ledger row and an error report holding the full key; "
        "never claimed again",
        observed=f"claimed {claimed}; ledger {row}; in failed/: {f'failed/{over}' in everywhere}; report "
        f"{len(reports[0].encode()) if reports else 0}-byte key, source_key intact: {report.get('source_key') == over}",
        videos=2,
        lost=int(f"failed/{over}" not in everywhere and f"pending/{over}" not in everywhere),
    )
    assert claimed == ["fine.mp4"] and again == []
    assert row == ("failed", "invalid_key", 1)
    assert f"failed/{over}" in everywhere and f"pending/{over}" not in everywhere
    assert report["source_key"] == over and report["reason"] == "invalid_key"
