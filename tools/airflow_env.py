"""The environment for running this project's Airflow on one machine (make run / make up / tests).

Airflow's metadata and the results live in a local PostgreSQL
(``tools/local_postgres.py``); ``AIRFLOW_HOME`` is a git-ignored folder of the
project. Values already set in the environment (e.g. from ``.env``) win.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from include.video_pipeline.core.pools import ANALYSIS, TRANSCODE, TRANSCRIBE, pools_import_document

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
POLICY_DIR = ROOT / "deploy" / "airflow"  # airflow_local_settings.py

# Sized for a laptop or this 2-core machine: two transcodes overlap the other stages' waits.
DEFAULT_POOL_SLOTS = {TRANSCODE: 2, TRANSCRIBE: 1, ANALYSIS: 4}


def legacy_connections(env: Mapping[str, str]) -> dict[str, str]:
    """Airflow connections built from the old Node.js pipeline's variables, when no connection is set.

    ``S3_INPUT_ACCESS_KEY_ID``/``S3_INPUT_SECRET_ACCESS_KEY``/``S3_INPUT_ENDPOINT``
    become ``aws_default``; ``GOOGLE_API_KEY`` (or ``GEMINI_API_KEY``) becomes
    ``gemini_default``. The result is a set of ``AIRFLOW_CONN_*`` variables.
    """
    result: dict[str, str] = {}
    key_id = env.get("S3_INPUT_ACCESS_KEY_ID") or env.get("VIDEO_PIPELINE_S3_ACCESS_KEY_ID")
    secret = env.get("S3_INPUT_SECRET_ACCESS_KEY") or env.get("VIDEO_PIPELINE_S3_SECRET_ACCESS_KEY")
    if key_id and secret and "AIRFLOW_CONN_AWS_DEFAULT" not in env:
        extra: dict[str, str] = {}
        endpoint = env.get("VIDEO_PIPELINE_S3_ENDPOINT_URL") or env.get("S3_INPUT_ENDPOINT")
        region = env.get("VIDEO_PIPELINE_S3_REGION") or env.get("S3_INPUT_REGION")
        if endpoint:
            extra["endpoint_url"] = endpoint if "://" in endpoint else f"https://{endpoint}"
        if region:
            extra["region_name"] = region
        result["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {"conn_type": "aws", "login": key_id, "password": secret, "extra": extra}
        )
    gemini_key = env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY")
    if gemini_key and "AIRFLOW_CONN_GEMINI_DEFAULT" not in env:
        result["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps({"conn_type": "generic", "password": gemini_key})
    return result


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (comments, blanks and empty values skipped)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key.strip() and value:
            values[key.strip()] = value
    return values


def airflow_environment(
    postgres_port: int, airflow_home: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for Airflow processes: ``base`` (default: this process's), then ``.env``, then defaults."""
    env = dict(os.environ if base is None else base)
    # .env (copied from .env.example) fills what the environment does not set.
    for key, value in read_dotenv(Path(env.get("VIDEO_PIPELINE_ENV_FILE", ROOT / ".env"))).items():
        env.setdefault(key, value)
    metadata = f"postgresql+psycopg2://postgres@127.0.0.1:{postgres_port}/airflow"
    defaults = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_POSTGRES_DEFAULT": f"postgresql://postgres@127.0.0.1:{postgres_port}/video_pipeline",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    # The project (DAGs and plugins import include.*) and the cluster policy
    # (deploy/airflow/airflow_local_settings.py, which the image puts in Airflow's config folder).
    env["PYTHONPATH"] = os.pathsep.join(
        dict.fromkeys(p for p in (str(ROOT), str(POLICY_DIR), *env.get("PYTHONPATH", "").split(os.pathsep)) if p)
    )
    env["PATH"] = os.pathsep.join((str(VENV_BIN), env.get("PATH", "")))
    env.update(legacy_connections(env))
    return env


def airflow(args: list[str], env: Mapping[str, str], *, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "airflow"), *args],
        env=dict(env),
        check=True,
        text=True,
        capture_output=quiet,
    )


def prepare_metadata(env: Mapping[str, str]) -> None:
    """Migrate Airflow's metadata database and create the pools the DAG uses (idempotent)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    try:
        airflow(["db", "migrate"], env)
        slots = {
            spec: int((spec.slots_setting(env) or (spec.slots_variable, str(default)))[1])
            for spec, default in DEFAULT_POOL_SLOTS.items()
        }
        with tempfile.TemporaryDirectory(prefix="vp-pools-") as tmp:
            document = Path(tmp) / "pools.json"
            document.write_text(pools_import_document(slots))
            airflow(["pools", "import", str(document)], env)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stdout or "")
        sys.stderr.write(exc.stderr or "")
        raise
