"""Whole DAG runs: the real DAG through dag.test(), in a child process like `make run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, create_database
from tools.airflow_env import airflow_environment, prepare_metadata


@dataclass
class PipelineRun:
    returncode: int
    output: str
    log: str
    run_id: str | None
    state: str | None


@pytest.fixture(scope="session")
def airflow_home(postgres, tmp_path_factory) -> Path:
    """Airflow's metadata database, migrated once for the session, with the DAG's pools."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = airflow_environment(postgres.port, home, base={**os.environ, "PATH": os.environ.get("PATH", "")})
    prepare_metadata(env)
    return home


@pytest.fixture
def results_dsn(postgres) -> str:
    return postgres.dsn(create_database(postgres, "e2e"))


@pytest.fixture
def whisper_tiny_env() -> dict[str, str]:
    from tests.fixtures.models import faster_whisper_tiny_en

    return {"VIDEO_PIPELINE_WHISPER_MODEL": str(faster_whisper_tiny_en()), "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def run_pipeline(postgres, airflow_home, results_dsn, whisper_tiny_env, tmp_path):
    """Run tools/run_pipeline.py (what `make run` runs) with extra environment; returns a PipelineRun."""

    def run(env_overrides: dict[str, str], *args: str, timeout: float = 600) -> PipelineRun:
        env = {
            **os.environ,
            **whisper_tiny_env,
            "VIDEO_PIPELINE_DATA_DIR": str(postgres.data_dir.parent),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW_CONN_POSTGRES_DEFAULT": results_dsn,
            "VIDEO_PIPELINE_WORK_DIR": str(tmp_path / "work"),
            **env_overrides,
        }
        process = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "run_pipeline.py"), "--skip-prepare", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        log = (airflow_home / "last_run.log").read_text() if (airflow_home / "last_run.log").exists() else ""
        result_file = airflow_home / "last_run.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        return PipelineRun(
            process.returncode, process.stdout + process.stderr, log, result.get("run_id"), result.get("state")
        )

    return run
