"""One DAG run over 100 uploads with batch size 5, while its results PostgreSQL is restarted.

The results database is a dedicated LocalPostgres (tools/local_postgres.py), not the
session's server: the Airflow metadata database stays up, only the ledger goes away
and comes back on the same port. Two tests report from the same run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from tests.fixtures import clips
from tests.reliability.conftest import Audit, RunResult, audit, aws_connection, new_bucket, s3_client_for, wait_for
from tools import local_postgres

REAL = ("a-clip-0.mp4", "a-clip-1.mp4", "a-clip-2.mp4")  # uploaded first: the oldest, claimed first
JUNK = tuple(f"junk-{n:02d}.mp4" for n in range(97))
BATCH = 5


@dataclass
class RestartRun:
    run: RunResult
    restarted_in: float
    restarted_during: str
    result: Audit
    before: dict[str, tuple[str, str]]
    after: dict[str, tuple[str, str]]
    ledger: list[tuple[str, str, int]]
    retried_stages: list[tuple[str, str, int]]
    reconnects: int


def _listing(s3, bucket: str) -> dict[str, tuple[str, str]]:
    paginator = s3.get_paginator("list_objects_v2")
    return {
        o["Key"]: (o["ETag"], o["LastModified"].isoformat())
        for page in paginator.paginate(Bucket=bucket, Prefix="pending/")
        for o in page.get("Contents", [])
    }


@pytest.fixture(scope="module")
def restarted(module_launcher, s3_endpoint, tmp_path_factory) -> Iterator[RestartRun]:
    data_dir = tmp_path_factory.mktemp("dedicated-pg") / "postgres"
    server = local_postgres.start(data_dir)
    try:
        pipeline = module_launcher("restart", dsn=server.dsn("video_pipeline"))
        s3 = s3_client_for(s3_endpoint)
        bucket = new_bucket(s3)
        made = tmp_path_factory.mktemp("restart-clips")
        # MPEG-4 Part 2 is not web-ready: transcode re-encodes for a moment, so the restart lands mid-task.
        clip = clips.make_video(
            made / "clip.mp4", duration=2.0, width=160, height=120, video_codec="mpeg4", audio_codec=None
        )
        for name in REAL:
            s3.put_object(Bucket=bucket, Key=f"pending/{name}", Body=Path(clip).read_bytes() + name.encode())
        time.sleep(0.01)
        for n, name in enumerate(JUNK):
            s3.put_object(Bucket=bucket, Key=f"pending/{name}", Body=b"" if n % 2 else b"<html>not a video</html>")
        before = _listing(s3, bucket)
        process = pipeline.start(
            {
                "VIDEO_PIPELINE_BUCKET": bucket,
                "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint),
                "VIDEO_PIPELINE_BATCH_SIZE": str(BATCH),
            }
        )
        wait_for(lambda: any(pipeline.work_dir.glob("*/transcode-*")), 240, "transcode never started")
        during = "transcode of " + ", ".join(p.parent.name for p in pipeline.work_dir.glob("*/transcode-*"))
        started = time.monotonic()
        local_postgres.stop(data_dir)  # fast shutdown: every session is terminated
        local_postgres.start(data_dir, port=server.port)
        restarted_in = time.monotonic() - started
        run = process.wait()
        result = audit(s3, bucket, pipeline.dsn, [*REAL, *JUNK])
        with psycopg2.connect(pipeline.dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT source_key, state, claims FROM videos ORDER BY source_key")
            ledger = cur.fetchall()
            cur.execute("SELECT video_id, stage, try_number FROM stage_runs WHERE try_number > 1 ORDER BY video_id")
            retried = cur.fetchall()
        reconnects = run.log.count("closed this task's connection")
        yield RestartRun(run, restarted_in, during, result, before, _listing(s3, bucket), ledger, retried, reconnects)
    finally:
        local_postgres.stop(data_dir)


def test_a_results_db_restart_mid_run_leaves_a_consistent_ledger(restarted, record):
    run, result = restarted.run, restarted.result
    claimed = {key: state for key, state, _ in restarted.ledger}
    mismatched = [k for k, state in claimed.items() if result.where.get(k) != [state]]
    record(
        area="PostgreSQL",
        case=f"results DB (dedicated server) restarted during {restarted.restarted_during} "
        f"(down {restarted.restarted_in:.1f}s)",
        expected="tasks reconnect or retry; ledger agrees with the bucket; every video in exactly one place",
        observed=f"run {run.state}; ledger {sorted(set(claimed.values()))} for {len(claimed)} claims; "
        f"{len(mismatched)} ledger/bucket mismatches; {restarted.reconnects} connection(s) found closed and reopened; "
        f"retried stage attempts {len(restarted.retried_stages)}",
        videos=len(REAL) + len(JUNK),
        lost=len(result.lost),
        duplicated=len(result.duplicated),
    )
    assert run.returncode == 0, run.output[-3000:] + run.log[-6000:]
    assert mismatched == [] and not result.lost and not result.duplicated
    assert not result.half_written_outputs
    assert all(claims == 1 for _, _, claims in restarted.ledger)
    # Tasks that held a connection across the restart reconnect: no attempt is lost to it.
    assert restarted.retried_stages == [] and restarted.reconnects >= 1
    assert [claimed[name] for name in REAL] == ["completed"] * len(REAL)


def test_a_run_claims_its_batch_and_leaves_the_rest_untouched(restarted, record):
    claimed = [key for key, _, _ in restarted.ledger]
    waiting = {k: v for k, v in restarted.after.items()}
    untouched = [k for k, v in waiting.items() if restarted.before.get(k) == v]
    record(
        area="Concurrency",
        kind="input",
        case=f"{len(REAL) + len(JUNK)} uploads at once, VIDEO_PIPELINE_BATCH_SIZE={BATCH} "
        "(3 real clips, 97 empty/HTML)",
        expected=f"the run claims exactly {BATCH} (oldest first); the rest wait in pending/ untouched",
        observed=f"claimed {len(claimed)}: {claimed}; {len(waiting)} still in pending/, {len(untouched)} of them "
        "byte-for-byte and timestamp unchanged",
        videos=len(REAL) + len(JUNK),
        lost=len(restarted.result.lost),
        duplicated=len(restarted.result.duplicated),
    )
    assert len(claimed) == BATCH and set(REAL) <= set(claimed)
    assert len(waiting) == len(REAL) + len(JUNK) - BATCH and len(untouched) == len(waiting)
