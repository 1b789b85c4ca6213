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
from typing import cast

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


PREPARED_STAMP = ".video-pipeline-prepared.json"


def _metadata_state(url: str) -> dict[str, object] | None:
    """The Alembic revision and the pools of a PostgreSQL metadata DB, read without importing Airflow."""
    if not url.startswith("postgresql"):
        return None
    import psycopg2

    try:
        with psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://", 1), connect_timeout=5) as conn:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT to_regclass('alembic_version') IS NOT NULL AND to_regclass('slot_pool') IS NOT NULL"
                )
                if not cur.fetchone()[0]:
                    return None
                cur.execute("SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version")
                revision = cur.fetchone()[0]
                cur.execute("SELECT pool, slots, description, include_deferred FROM slot_pool")
                pools = {name: [slots, description, deferred] for name, slots, description, deferred in cur}
    except psycopg2.Error:
        return None
    return {"revision": revision, "pools": pools}


def _is_prepared(env: Mapping[str, str], stamp: Path, pools_document: str) -> bool:
    """The same Airflow migrated this DB to the revision it is at, and the DAG's pools are as configured."""
    from importlib.metadata import version

    state = _metadata_state(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    if state is None or not state["revision"]:
        return False
    try:
        stamped = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    wanted = {
        name: [pool["slots"], pool["description"], pool["include_deferred"]]
        for name, pool in json.loads(pools_document).items()
    }
    present = cast("dict[str, list[object]]", state["pools"])
    return stamped == {"airflow": version("apache-airflow-core"), "revision": state["revision"]} and all(
        present.get(name) == pool for name, pool in wanted.items()
    )


def _stamp(env: Mapping[str, str], stamp: Path) -> None:
    from importlib.metadata import version

    state = _metadata_state(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    if state is not None:
        stamp.write_text(json.dumps({"airflow": version("apache-airflow-core"), "revision": state["revision"]}))


def prepare_metadata(env: Mapping[str, str]) -> bool:
    """Migrate Airflow's metadata database and create the pools the DAG uses (idempotent).

    Skipped (returns False) when a stamp in AIRFLOW_HOME says the same Airflow
    already migrated this database to the revision it is at, and the DAG's pools
    are there as configured: each ``airflow`` call costs seconds, and ``make run``
    is run often. A changed pool size, a new Airflow or a new database prepares again.
    """
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    slots = {
        spec: int((spec.slots_setting(env) or (spec.slots_variable, str(default)))[1])
        for spec, default in DEFAULT_POOL_SLOTS.items()
    }
    document = pools_import_document(slots)
    stamp = home / PREPARED_STAMP
    if _is_prepared(env, stamp, document):
        return False
    try:
        airflow(["db", "migrate"], env)
        with tempfile.TemporaryDirectory(prefix="vp-pools-") as tmp:
            pools = Path(tmp) / "pools.json"
            pools.write_text(document)
            airflow(["pools", "import", str(pools)], env)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stdout or "")
        sys.stderr.write(exc.stderr or "")
        raise
    _stamp(env, stamp)
    return True
