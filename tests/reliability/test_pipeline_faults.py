"""One whole DAG run (tools/run_pipeline.py -> dag.test() in a child process) under S3 and Gemini storms.

The run happens once per module; each test reports its own row from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.s3_fault_proxy import FaultRule, S3FaultProxy
from tests.fixtures import clips
from tests.reliability.conftest import Audit, RunResult, audit, aws_connection, keys, new_bucket, s3_client_for

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


@dataclass
class StormRun:
    uploads: dict[str, tuple[Path, str]]
    run: RunResult
    injected: dict[str, int]
    gemini_calls: int
    result: Audit
    leaks: list[str]
    files_searched: int
    objects_searched: int


@pytest.fixture(scope="module")
def storm(module_launcher, s3_endpoint, postgres, tmp_path_factory) -> Iterator[StormRun]:
    """One whole run under random S3 faults and a Gemini 429/500/503 storm, with secrets in every connection."""
    pipeline = module_launcher("storm")
    s3_client = s3_client_for(s3_endpoint)
    bucket = new_bucket(s3_client)
    clips_dir = tmp_path_factory.mktemp("storm-clips")
    uploads = {
        "talk.mp4": (
            clips.make_speech_video(
                clips_dir / "talk.mp4", "The budget meeting moved to Friday.", width=160, height=120
            ),
            "completed",
        ),
        "screen.mp4": (
            clips.make_silent_video(clips_dir / "screen.mp4", duration=1.0, width=160, height=120),
            "completed",
        ),
        "page.mp4": (clips.make_non_video(clips_dir / "page.mp4"), "failed"),
    }
    for name, (path, _) in uploads.items():
        _put(s3_client, bucket, f"pending/{name}", path)
    dsn = _dsn_with_password(pipeline.dsn)
    with S3FaultProxy(s3_endpoint) as fault_proxy, FakeGeminiServer(api_key=GEMINI_KEY) as gemini:
        for fault in ("500", "503", "slowdown", "drop", "drop_after"):
            fault_proxy.add_rule(FaultRule(op="*", fault=fault, probability=0.05, count=3))
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
    metadata = f"postgresql://postgres@127.0.0.1:{postgres.port}/airflow"
    leaks = _secrets_found(run.home, s3_client, bucket, pipeline.dsn, metadata)
    yield StormRun(
        uploads,
        run,
        injected,
        gemini_calls,
        result,
        leaks,
        sum(1 for p in run.home.rglob("*") if p.is_file()),
        len(keys(s3_client, bucket)),
    )


def test_a_run_survives_an_s3_storm(storm, record):
    run, result = storm.run, storm.result
    record(
        area="S3",
        case=f"a whole run with {sum(storm.injected.values())} random S3 faults ({', '.join(sorted(storm.injected))})",
        expected="run completes; every upload where it belongs",
        observed=f"run {run.state}; {result.where}",
        videos=len(storm.uploads),
        lost=len(result.lost),
        duplicated=len(result.duplicated),
    )
    assert run.returncode == 0, run.output[-3000:] + run.log[-5000:]
    assert sum(storm.injected.values()) > 0
    assert result.where == {n: [where] for n, (_, where) in storm.uploads.items()}
    assert not result.half_written_outputs and not result.duplicated


def test_gemini_429_500_503_are_backed_off_then_analysed(storm, record):
    talk = storm.result.where["talk.mp4"]
    record(
        area="Gemini",
        case="429 (Retry-After 1s), 500, 503 in a row",
        expected="backoff, then the analysis",
        observed=f"{storm.gemini_calls} generateContent calls; talk.mp4 in {talk}",
        videos=1,
        lost=int(not talk),
        duplicated=int(len(talk) > 1),
    )
    assert storm.gemini_calls >= 4 and talk == ["completed"]


def test_no_secret_reaches_logs_objects_or_tables(storm, record):
    record(
        area="Secrets",
        case="S3 secret key, Gemini key, DB password in connections",
        expected="in no log, XCom, object, error report, manifest or DB row",
        observed=f"searched {storm.files_searched} files of AIRFLOW_HOME, {storm.objects_searched} objects, "
        f"every table of both DBs: {len(storm.leaks)} leaks {storm.leaks[:3]}",
    )
    assert storm.files_searched > 0 and storm.objects_searched > 0
    assert storm.leaks == []
