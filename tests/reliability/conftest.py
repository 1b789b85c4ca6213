"""Fixtures for the fault-injection suite: real services, real processes, real signals.

Every test records one row per fault or input it tried (``record``); at the end
of the session ``tools/reliability_report.py`` renders them as a markdown table
(``docs/reliability.md`` when ``RELIABILITY_REPORT`` names it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ROOT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY, create_database
from tests.e2e.conftest import airflow_home, results_dsn, whisper_tiny_env  # noqa: F401  (fixtures)
from tests.fakes.s3_fault_proxy import S3FaultProxy

ROWS_FILE = Path(os.environ.get("RELIABILITY_ROWS", ROOT / ".data" / "reliability" / "rows.jsonl"))


# -- the report ------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.reliability_passed = report.passed


@pytest.fixture(scope="session", autouse=True)
def _reliability_rows() -> Iterator[Path]:
    ROWS_FILE.parent.mkdir(parents=True, exist_ok=True)
    ROWS_FILE.write_text("")
    yield ROWS_FILE
    from tools.reliability_report import render

    target = Path(os.environ.get("RELIABILITY_REPORT") or ROWS_FILE.with_name("reliability.md"))
    target.write_text(render(ROWS_FILE))


@dataclass
class Recorder:
    test: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        *,
        area: str,
        case: str,
        expected: str,
        observed: str,
        videos: int = 0,
        lost: int = 0,
        duplicated: int = 0,
        kind: str = "fault",
    ) -> None:
        """One fault (``kind="fault"``) or hostile input (``kind="input"``) and what really happened."""
        self.rows.append(
            {
                "test": self.test,
                "area": area,
                "case": case,
                "kind": kind,
                "expected": expected,
                "observed": observed,
                "videos": videos,
                "lost": lost,
                "duplicated": duplicated,
            }
        )


@pytest.fixture
def record(request) -> Iterator[Recorder]:
    recorder = Recorder(request.node.name)
    yield recorder
    passed = getattr(request.node, "reliability_passed", False)
    with ROWS_FILE.open("a") as handle:
        for row in recorder.rows:
            handle.write(json.dumps({**row, "passed": passed}, ensure_ascii=False) + "\n")


# -- S3 behind the fault proxy -----------------------------------------------------------


@pytest.fixture
def fault_proxy(s3_endpoint: str) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_endpoint) as proxy:
        yield proxy


def aws_connection(endpoint: str, secret: str = S3_TEST_SECRET_KEY) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": S3_TEST_ACCESS_KEY,
            "password": secret,
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


@pytest.fixture
def bucket(s3_client) -> str:
    return new_bucket(s3_client)


def keys(s3_client, bucket: str, prefix: str = "") -> list[str]:
    paginator = s3_client.get_paginator("list_objects_v2")
    return sorted(
        o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])
    )


# -- whole DAG runs as real processes ------------------------------------------------------


@dataclass
class RunResult:
    returncode: int
    output: str
    log: str
    run_id: str | None
    state: str | None
    home: Path


class PipelineProcess:
    """tools/run_pipeline.py (what `make run` runs) as a process of its own session, so it can be killed."""

    def __init__(self, env: dict[str, str], home: Path, args: tuple[str, ...] = ()):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self._out = open(home / "runner.out", "w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "run_pipeline.py"), "--skip-prepare", *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def dag_process(self, timeout: float = 60) -> psutil.Process:
        """The child running dag.test(): the process that executes the tasks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                try:
                    if "--inside" in child.cmdline():
                        return child
                except psutil.NoSuchProcess:
                    continue
            time.sleep(0.05)
        raise TimeoutError("the DAG-run process did not start")

    def kill_dag_process(self) -> None:
        """SIGKILL the DAG-run process and what it started (ffmpeg): a worker that dies with its machine."""
        dag = self.dag_process()
        victims = [dag, *dag.children(recursive=True)]
        for proc in victims:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass

    def wait(self, timeout: float = 600) -> RunResult:
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self._out.close()
        log_file, result_file = self.home / "last_run.log", self.home / "last_run.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        return RunResult(
            self.process.returncode,
            (self.home / "runner.out").read_text(),
            log_file.read_text() if log_file.exists() else "",
            result.get("run_id"),
            result.get("state"),
            self.home,
        )


class Launcher:
    """Starts runs of the real DAG over one results DB; each run gets its own AIRFLOW_HOME under ``base``."""

    def __init__(self, postgres, dsn: str, base: Path, whisper_env: dict[str, str]):  # type: ignore[no-untyped-def]
        self.postgres = postgres
        self.dsn = dsn
        self.base = base
        self.work_dir = base / "work"
        self.whisper_env = whisper_env
        self.count = 0

    def env(self, overrides: dict[str, str]) -> dict[str, str]:
        return {
            **os.environ,
            **self.whisper_env,
            "VIDEO_PIPELINE_DATA_DIR": str(self.postgres.data_dir.parent),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:{self.postgres.port}/airflow",
            "AIRFLOW_CONN_POSTGRES_DEFAULT": self.dsn,
            "VIDEO_PIPELINE_WORK_DIR": str(self.work_dir),
            "VIDEO_PIPELINE_STORAGE": "s3",
            "VIDEO_PIPELINE_ANALYZER": "offline",
            "VIDEO_PIPELINE_FFMPEG_THREADS": "1",
            "VIDEO_PIPELINE_WHISPER_CPU_THREADS": "1",
            **overrides,
        }

    def start(self, overrides: dict[str, str], *args: str) -> PipelineProcess:
        # Each run has its own AIRFLOW_HOME (its log files) over the session's metadata DB.
        self.count += 1
        home = self.base / f"airflow-home-{self.count}"
        return PipelineProcess(self.env({"AIRFLOW_HOME": str(home), **overrides}), home, args)

    def run(self, overrides: dict[str, str], *args: str, timeout: float = 600) -> RunResult:
        return self.start(overrides, *args).wait(timeout)


def tiny_whisper_env() -> dict[str, str]:
    from tests.fixtures.models import faster_whisper_tiny_en

    return {"VIDEO_PIPELINE_WHISPER_MODEL": str(faster_whisper_tiny_en()), "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def pipeline(postgres, airflow_home, results_dsn, whisper_tiny_env, tmp_path):  # noqa: F811
    """Start runs of the real DAG: ``pipeline.start(env)`` -> PipelineProcess; ``pipeline.run(env)`` waits."""
    return Launcher(postgres, results_dsn, tmp_path, whisper_tiny_env)


@pytest.fixture(scope="module")
def module_launcher(postgres, airflow_home, tmp_path_factory):  # noqa: F811
    """A Launcher with its own results DB for a module whose tests share the same runs."""

    def make(name: str, dsn: str | None = None) -> Launcher:
        dsn = dsn or postgres.dsn(create_database(postgres, "rel"))
        return Launcher(postgres, dsn, tmp_path_factory.mktemp(name), tiny_whisper_env())

    return make


def clone_metadata_db(postgres) -> str:  # type: ignore[no-untyped-def]
    """A copy of the session's migrated Airflow metadata DB, as a SQLAlchemy URL.

    Two ``run_pipeline`` processes cannot share one metadata DB: ``dag.test(logical_date=None)``
    first clears *every* task instance of the DAG, those of the other run included.
    """
    import psycopg2

    name = f"airflow_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(postgres.dsn("postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for attempt in range(50):  # the template must have no other session for a moment
                try:
                    cur.execute(f'CREATE DATABASE "{name}" TEMPLATE airflow')
                    break
                except psycopg2.errors.ObjectInUse:
                    if attempt == 49:
                        raise
                    time.sleep(0.2)
    finally:
        conn.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:{postgres.port}/{name}"


def s3_client_for(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_TEST_ACCESS_KEY,
        aws_secret_access_key=S3_TEST_SECRET_KEY,
        region_name="us-east-1",
    )


def new_bucket(client) -> str:  # type: ignore[no-untyped-def]
    name = f"rel-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return name


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(what)


# -- accounting: where every upload ended ---------------------------------------------------

STATES = ("pending", "processing", "completed", "failed")


@dataclass
class Audit:
    where: dict[str, list[str]]
    lost: list[str]
    duplicated: list[str]
    half_written_outputs: list[str]
    rows: dict[str, list[dict[str, Any]]]


def audit(s3_client, bucket: str, dsn: str, names: list[str]) -> Audit:
    """Every upload in exactly one state prefix; no version published twice; no output without a manifest."""
    import psycopg2

    present = {state: set(keys(s3_client, bucket, f"{state}/")) for state in STATES}
    where = {name: [s for s in STATES if f"{s}/{name}" in present[s]] for name in names}
    lost = [n for n, places in where.items() if not places]
    duplicated = [n for n, places in where.items() if len(places) > 1]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('videos') IS NOT NULL")
        has_tables = cur.fetchone()[0]
        rows: dict[str, list[dict[str, Any]]] = {}
        if has_tables:
            cur.execute("SELECT video_id, source_key, state, claims, error FROM videos ORDER BY video_id")
            for vid, key, state, claims, error in cur.fetchall():
                rows.setdefault(key, []).append({"video_id": vid, "state": state, "claims": claims, "error": error})
            cur.execute(
                "SELECT video_id, count(*) FROM stage_runs WHERE stage = 'publish' AND status = 'success'"
                " GROUP BY video_id HAVING count(*) > 1"
            )
            duplicated += [f"published twice: {vid}" for vid, _ in cur.fetchall()]
    outputs: dict[str, set[str]] = {}
    for key in keys(s3_client, bucket, "outputs/"):
        vid, _, name = key[len("outputs/") :].partition("/")
        if vid == "_runs":  # run summaries, not a video's outputs
            continue
        outputs.setdefault(vid, set()).add(name)
    half = [vid for vid, files in outputs.items() if "manifest.json" not in files]
    return Audit(where, lost, duplicated, half, rows)
