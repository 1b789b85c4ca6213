"""Real local services for the whole test session.

* PostgreSQL: a throwaway cluster (``tools/local_postgres.py``) on a free port;
  each test that needs the results database gets a fresh database in it.
* S3: a moto server process speaking S3 over HTTP on 127.0.0.1, reached through
  the same boto3/Airflow-connection code path as AWS, Beget, GCS or MinIO.

Model hubs are unreachable on test machines, so HF_HUB_OFFLINE is set for all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ["HF_HUB_OFFLINE"] = "1"
# A developer's own .env (cloud bucket, real keys) must never leak into test runs.
os.environ["VIDEO_PIPELINE_ENV_FILE"] = os.devnull
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.fixtures.net import free_port  # noqa: E402
from tools import local_postgres  # noqa: E402

# Whole-DAG runs, fault runs and real Airflow stacks take minutes a file; unit files take
# seconds. `make test` gives whole files to two workers in collection order
# (--no-loadscope-reorder: xdist would otherwise put files with many tests first, which left
# the one-test, five-minute files for the end with one worker idle): the long ones go first
# and the short ones fill the gaps at the end.
_LONG_FOLDERS = {"e2e", "reliability"}


def _runs_long(path: Path, marked_slow: bool) -> bool:
    return marked_slow or path.relative_to(ROOT / "tests").parts[0] in _LONG_FOLDERS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    long_files = {item.path for item in items if _runs_long(item.path, item.get_closest_marker("slow") is not None)}
    items.sort(key=lambda item: item.path not in long_files)  # stable: each file's tests keep their order


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service exited early with code {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_postgres.LocalPostgres]:
    """A real PostgreSQL server for the session."""
    # Named like make run's layout (<data dir>/postgres) so tools/run_pipeline.py
    # started with VIDEO_PIPELINE_DATA_DIR=<data dir> reuses this server.
    data_dir = tmp_path_factory.mktemp("vp-data") / "postgres"
    server = local_postgres.start(data_dir)
    try:
        yield server
    finally:
        local_postgres.stop(data_dir)


def create_database(server: local_postgres.LocalPostgres, prefix: str = "test") -> str:
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(server.dsn("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name


@pytest.fixture
def results_db_dsn(postgres: local_postgres.LocalPostgres, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty results database, wired as the ``postgres_default`` connection."""
    dsn = postgres.dsn(create_database(postgres, "results"))
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", dsn)
    return dsn


@pytest.fixture
def results_db(results_db_dsn: str) -> Iterator:
    from include.video_pipeline.hooks.results_db import ResultsDbHook

    hook = ResultsDbHook(postgres_conn_id="postgres_default")
    hook.migrate()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server process on loopback; yields its endpoint URL."""
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if moto is None:
        raise RuntimeError("moto_server not found: install test requirements with `make test`")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_port(port, 30, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        log.close()


S3_TEST_ACCESS_KEY = "test-access-key"
S3_TEST_SECRET_KEY = "test-secret-key-not-real"


def aws_connection_json(endpoint: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": S3_TEST_ACCESS_KEY,
            "password": S3_TEST_SECRET_KEY,
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the local S3 endpoint, wired as the ``aws_default`` connection."""
    import boto3

    name = f"videos-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_TEST_ACCESS_KEY,
        aws_secret_access_key=S3_TEST_SECRET_KEY,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json(s3_endpoint))
    return name


@pytest.fixture
def s3_client(s3_endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_TEST_ACCESS_KEY,
        aws_secret_access_key=S3_TEST_SECRET_KEY,
        region_name="us-east-1",
    )
