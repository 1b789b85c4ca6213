"""Whole DAG runs (tools/run_pipeline.py -> dag.test() in a child process) under real faults."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg2

from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.s3_fault_proxy import FaultRule
from tests.fixtures import clips
from tests.reliability.conftest import audit, aws_connection, keys

S3_SECRET = "S3SECRET-reliability-7f3a9c0e"
GEMINI_KEY = "AIzaRELIABILITY-GEMINI-5d2e81"
DB_PASSWORD = "PGPW-reliability-91b4c2"
SECRETS = (S3_SECRET, GEMINI_KEY, DB_PASSWORD)


def _put(s3_client, bucket: str, key: str, path: Path) -> None:
    s3_client.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes())


def _dsn_with_password(dsn: str) -> str:
    # The local server trusts loopback, so any password connects: it only has to travel everywhere a real one would.
    return dsn.replace("postgresql://postgres@", f"postgresql://postgres:{DB_PASSWORD}@")


def _secrets_found(home: Path, s3_client, bucket: str, dsn: str, metadata_dsn: str) -> list[str]:
    found = []
    for path in home.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            found += [f"{path.relative_to(home)} has {s}" for s in SECRETS if s in text]
    for key in keys(s3_client, bucket):
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", "replace")
        found += [f"s3://{bucket}/{key} has {s}" for s in SECRETS if s in body]
    for where, url in (("results DB", dsn), ("Airflow metadata DB", metadata_dsn)):
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for (table,) in cur.fetchall():
                cur.execute(f'SELECT t::text FROM "{table}" t')
                for (row,) in cur.fetchall():
                    found += [f"{where} table {table} has {s}" for s in SECRETS if s in row]
    return found


def test_a_run_survives_s3_and_gemini_storms_and_leaks_no_secret(
    pipeline, fault_proxy, bucket, s3_client, postgres, tmp_path, record
):
    uploads = {
        "talk.mp4": (
            clips.make_speech_video(tmp_path / "talk.mp4", "The budget meeting moved to Friday."),
            "completed",
        ),
        "screen.mp4": (clips.make_silent_video(tmp_path / "screen.mp4", duration=1.0), "completed"),
        "page.mp4": (clips.make_non_video(tmp_path / "page.mp4"), "failed"),
    }
    for name, (path, _) in uploads.items():
        _put(s3_client, bucket, f"pending/{name}", path)
    for fault in ("500", "503", "slowdown", "drop", "drop_after"):
        fault_proxy.add_rule(FaultRule(op="*", fault=fault, probability=0.05, count=3))
    dsn = _dsn_with_password(pipeline.dsn)
    with FakeGeminiServer(api_key=GEMINI_KEY) as gemini:
        gemini.enqueue(Reply.rate_limited(retry_after=1), Reply.server_error(500), Reply.server_error(503))
        run = pipeline.run(
            {
                "VIDEO_PIPELINE_BUCKET": bucket,
                "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(fault_proxy.endpoint, secret=S3_SECRET),
                "AIRFLOW_CONN_POSTGRES_DEFAULT": dsn,
                "VIDEO_PIPELINE_ANALYZER": "gemini",
                "VIDEO_PIPELINE_GEMINI_BASE_URL": gemini.base_url,
                "GEMINI_API_KEY": GEMINI_KEY,
            }
        )
        gemini_calls = len(gemini.generate_requests)
    injected = fault_proxy.faults_injected()
    result = audit(s3_client, bucket, pipeline.dsn, list(uploads))
    ends = {name: places for name, places in result.where.items()}
    record(
        area="S3",
        case=f"a whole run with {sum(injected.values())} random S3 faults ({', '.join(sorted(injected))})",
        expected="run completes; every upload where it belongs",
        observed=f"run {run.state}; {ends}",
        videos=len(uploads),
        lost=len(result.lost),
        duplicated=len(result.duplicated),
    )
    record(
        area="Gemini",
        case="429 (Retry-After 1s), 500, 503 in a row",
        expected="backoff, then the analysis",
        observed=f"{gemini_calls} generateContent calls; talk.mp4 in {ends['talk.mp4']}",
        videos=1,
        lost=int(not ends["talk.mp4"]),
    )
    assert run.returncode == 0, run.output[-3000:] + run.log[-5000:]
    assert sum(injected.values()) > 0
    assert {n: p for n, p in ends.items()} == {n: [where] for n, (_, where) in uploads.items()}
    assert not result.half_written_outputs and not result.duplicated
    assert gemini_calls >= 4

    metadata = f"postgresql://postgres@127.0.0.1:{postgres.port}/airflow"
    leaks = _secrets_found(run.home, s3_client, bucket, pipeline.dsn, metadata)
    record(
        area="Secrets",
        case="S3 secret key, Gemini key, DB password in connections",
        expected="in no log, XCom, object, error report, manifest or DB row",
        observed=f"searched {sum(1 for p in run.home.rglob('*') if p.is_file())} files of AIRFLOW_HOME, "
        f"{len(keys(s3_client, bucket))} objects, every table of both DBs: {len(leaks)} leaks "
        f"{leaks[:3]}",
    )
    assert leaks == []


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def test_a_worker_killed_mid_transcode_is_swept_back_and_completes(
    pipeline, s3_endpoint, bucket, s3_client, tmp_path, record
):
    path = clips.make_silent_video(tmp_path / "long.mp4", duration=8.0, width=640, height=480, fps=25)
    _put(s3_client, bucket, "pending/long.mp4", path)
    env = {
        "VIDEO_PIPELINE_BUCKET": bucket,
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection(s3_endpoint),
        "VIDEO_PIPELINE_X264_PRESET": "veryslow",
        "VIDEO_PIPELINE_PROCESSING_LEASE_SECONDS": "60",
    }
    first = pipeline.start(env)
    _wait_for(lambda: any(pipeline.work_dir.glob("*/transcode-*")), 240, "transcode never started")
    first.kill_dag_process()
    killed = first.wait(60)
    after_kill = audit(s3_client, bucket, pipeline.dsn, ["long.mp4"])
    assert killed.returncode != 0 and after_kill.where["long.mp4"] == ["processing"]
    assert not after_kill.half_written_outputs and keys(s3_client, bucket, "outputs/") == []

    # The lease (60 s, the configured minimum) runs out: moved forward in the ledger rather than waited for.
    with psycopg2.connect(pipeline.dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE videos SET lease_expires_at = now() - interval '1 second' WHERE state = 'processing'")
    sweep = pipeline.run(env)
    after_sweep = audit(s3_client, bucket, pipeline.dsn, ["long.mp4"])
    final = pipeline.run({**env, "VIDEO_PIPELINE_X264_PRESET": "ultrafast"})
    result = audit(s3_client, bucket, pipeline.dsn, ["long.mp4"])
    record(
        area="Worker",
        case="DAG-run process SIGKILLed during transcode (ffmpeg running)",
        expected="left in processing/ with no partial outputs; next run sweeps it after the lease; it completes",
        observed=f"after kill: {after_kill.where['long.mp4']}; after sweep run ({sweep.state}): "
        f"{after_sweep.where['long.mp4']}; after next run ({final.state}): {result.where['long.mp4']}",
        videos=1,
        lost=len(result.lost),
        duplicated=len(result.duplicated),
    )
    assert sweep.returncode == 0 and after_sweep.where["long.mp4"] == ["pending"], sweep.log[-4000:]
    assert final.returncode == 0 and result.where["long.mp4"] == ["completed"], final.log[-4000:]
    assert not result.half_written_outputs and not result.duplicated
