"""S3 faults at the level of whole uploads: the lifecycle's moves through the fault proxy.

The store is built exactly as a task builds it (ObjectStoreHook from the
``aws_default`` connection, boto3 standard retries); only the endpoint is the
proxy in front of moto.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from include.video_pipeline.config import load_settings
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.pipeline.lifecycle import VideoLifecycle
from include.video_pipeline.storage.base import MoveNotVerified, move_object
from tests.conftest import ROOT
from tests.fakes.s3_fault_proxy import FaultRule
from tests.reliability.conftest import aws_connection, keys


@pytest.fixture
def lifecycle_env(fault_proxy, bucket, results_db_dsn, monkeypatch, tmp_path):
    env = {
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(fault_proxy.endpoint),
        "VIDEO_PIPELINE_STORAGE": "s3",
        "VIDEO_PIPELINE_BUCKET": bucket,
        "VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _lifecycle(results_db):
    settings = load_settings()
    return VideoLifecycle(settings, ObjectStoreHook(settings=settings).get_store(), results_db)


def test_transient_errors_on_every_operation_are_retried(
    lifecycle_env, results_db, fault_proxy, s3_client, bucket, record
):
    for n in range(4):
        s3_client.put_object(Bucket=bucket, Key=f"pending/clip {n}.mp4", Body=b"x" * (1000 + n))
    # Two failures in a row of each kind on each operation: under boto3's 8 attempts.
    for op in ("LIST", "HEAD", "COPY", "DELETE", "PUT", "GET"):
        for fault in ("500", "503", "slowdown", "drop", "drop_after"):
            fault_proxy.add_rule(FaultRule(op=op, fault=fault, count=1))
    lifecycle = _lifecycle(results_db)
    claimed = lifecycle.claim_batch("run-1", limit=10)
    for video in claimed:
        results_db.set_outcome(video.video_id, "succeeded")
    report = lifecycle.reconcile("run-1")
    injected = fault_proxy.faults_injected()
    record(
        area="S3",
        case="500/503/SlowDown/dropped connection (before and after S3 acted) on LIST, HEAD, COPY, DELETE, PUT",
        expected="retried; every move completes",
        videos=4,
        observed=f"{sum(injected.values())} faults injected; {len(report.completed)} of 4 completed",
        lost=4 - len(report.completed),
    )
    assert sum(injected.values()) >= 20, injected
    assert len(claimed) == 4 and len(report.completed) == 4 and not report.errors
    assert keys(s3_client, bucket, "completed/") == [f"completed/clip {n}.mp4" for n in range(4)]
    assert keys(s3_client, bucket, "pending/") == keys(s3_client, bucket, "processing/") == []


def test_a_move_killed_between_copy_and_delete_converges_on_reconcile(
    lifecycle_env, results_db, fault_proxy, s3_client, bucket, results_db_dsn, record
):
    s3_client.put_object(Bucket=bucket, Key="pending/talk.mp4", Body=b"v" * 5000)
    lifecycle = _lifecycle(results_db)
    (video,) = lifecycle.claim_batch("run-1")
    results_db.set_outcome(video.video_id, "succeeded")

    # The settling process copies processing/ -> completed/, then hangs on the DELETE and is SIGKILLed.
    fault_proxy.add_rule(FaultRule(op="DELETE", fault="hang", key_contains="processing/talk.mp4"))
    settle = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability._lifecycle_cli", "settle", video.video_id],
        cwd=ROOT,
        env={**os.environ, **lifecycle_env, "AIRFLOW_CONN_POSTGRES_DEFAULT": results_db_dsn},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert fault_proxy.wait_for_hang(60), "the settle never reached its DELETE"
    os.killpg(settle.pid, signal.SIGKILL)
    settle.wait()
    fault_proxy.clear_rules()
    fault_proxy.release()
    both = [k for k in keys(s3_client, bucket) if k.endswith("talk.mp4")]
    assert both == ["completed/talk.mp4", "processing/talk.mp4"]  # the interrupted state, for real
    assert results_db.get_video(video.video_id)["state"] == "processing"

    report = lifecycle.reconcile("run-1")
    after = [k for k in keys(s3_client, bucket) if k.endswith("talk.mp4")]
    row = results_db.get_video(video.video_id)
    record(
        area="S3",
        case="move processing/ -> completed/ SIGKILLed after COPY, before DELETE",
        expected="next reconcile finishes the move; one copy",
        videos=1,
        observed=f"before: {', '.join(both)}; after reconcile: {', '.join(after)}, ledger {row['state']}",
        lost=int(not after),
        duplicated=int(len(after) > 1),
    )
    assert after == ["completed/talk.mp4"] and row["state"] == "completed" and report.completed == [video.video_id]


@pytest.mark.parametrize("fault", ["404", "403"])
def test_nothing_is_deleted_before_its_copy_is_verified(lifecycle_env, fault_proxy, s3_client, bucket, fault, record):
    s3_client.put_object(Bucket=bucket, Key="processing/a.mp4", Body=b"a" * 4096)
    # The HEAD that verifies the copy fails for good (404: copy not visible yet; 403: denied).
    fault_proxy.add_rule(FaultRule(op="HEAD", fault=fault, key_contains="completed/a.mp4"))
    store = ObjectStoreHook(settings=load_settings()).get_store()
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        move_object(store, "processing/a.mp4", "completed/a.mp4")
    deletes = [e for e in fault_proxy.log if e.op == "DELETE"]
    source = s3_client.get_object(Bucket=bucket, Key="processing/a.mp4")["Body"].read()
    record(
        area="S3",
        case=f"copy not verifiable (HEAD of the copy answers {fault} every time)",
        expected="source kept, no DELETE sent",
        videos=1,
        observed=f"{type(raised.value).__name__} after {time.monotonic() - started:.0f}s; "
        f"{len(deletes)} DELETE; source intact: {source == b'a' * 4096}",
        lost=int(source != b"a" * 4096),
    )
    if fault == "404":
        assert isinstance(raised.value, MoveNotVerified)
    assert deletes == [] and source == b"a" * 4096
    # And in every successful move of the suite, each DELETE came after a COPY and a verifying HEAD.
    fault_proxy.clear_rules()
    move_object(store, "processing/a.mp4", "completed/a.mp4")
    ops = [(e.op, e.key, e.status) for e in fault_proxy.log]
    delete_at = ops.index(("DELETE", "processing/a.mp4", 204))
    assert ("HEAD", "completed/a.mp4", 200) in ops[:delete_at]


def test_keys_that_cannot_delete_leave_no_duplicate(lifecycle_env, results_db, fault_proxy, s3_client, bucket, record):
    """Credentials that may copy but not delete (a common bucket-policy mistake) during a claim."""
    for name in ("a.mp4", "b.mp4"):
        s3_client.put_object(Bucket=bucket, Key=f"pending/{name}", Body=b"z" * 100)
    fault_proxy.add_rule(FaultRule(op="DELETE", fault="403", key_contains="pending/a.mp4"))
    lifecycle = _lifecycle(results_db)
    claimed = lifecycle.claim_batch("run-1")
    fault_proxy.clear_rules()
    for video in claimed:
        results_db.set_outcome(video.video_id, "succeeded")
    lifecycle.reconcile("run-1")
    a_places = [k for k in keys(s3_client, bucket) if k.endswith("/a.mp4")]
    record(
        area="S3",
        case="AccessDenied on DELETE while claiming (copy to processing/ made, source kept)",
        expected="claim released, the copy returned, a.mp4 waits in pending/ once; b.mp4 processed",
        observed=f"claimed {[v.rel_key for v in claimed]}; a.mp4 in {a_places}",
        videos=2,
        duplicated=int(len(a_places) > 1),
        lost=int(not a_places),
    )
    assert [v.rel_key for v in claimed] == ["b.mp4"]
    assert a_places == ["pending/a.mp4"]
    assert keys(s3_client, bucket, "completed/") == ["completed/b.mp4"]
