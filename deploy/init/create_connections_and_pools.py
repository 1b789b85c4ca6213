"""Create the Airflow connections, pools and admin user the pipeline needs, from the environment.

Run by the ``airflow-init`` compose service after ``airflow db migrate`` (and by hand on a
Helm install: ``kubectl exec ... -- python deploy/init/create_connections_and_pools.py``).
It is idempotent: ``.env`` is the source of truth, so each run replaces the connections it
manages with what the environment says and resets pool sizes. Connections it does not manage
(anything else you add in the UI) are left alone.

Secrets never go on a command line: connections are written to a 0600 temp file and loaded with
``airflow connections import --overwrite``, then the file is removed.

What it manages (ids follow ``VIDEO_PIPELINE_*_CONN_ID`` from ``include/video_pipeline/config/``):

* ``aws_default``      the bucket; keys from ``S3_INPUT_ACCESS_KEY_ID`` / ``S3_INPUT_SECRET_ACCESS_KEY``,
                       endpoint and region from ``VIDEO_PIPELINE_S3_ENDPOINT_URL`` / ``..._S3_REGION``
                       (or the old ``S3_INPUT_ENDPOINT`` / ``S3_INPUT_REGION``).
* ``postgres_default`` the results database ``RESULTS_DB_NAME`` (default ``video_pipeline``).
* ``gemini_default``   only when ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY`` is set; without a key the
                       pipeline uses the offline analyzer, and a connection with an empty password
                       would only hide that.
* ``google_cloud_default`` only when ``GOOGLE_CLOUD_PROJECT`` is set (Gemini through Vertex AI).
* pools ``video_transcode``, ``video_transcribe``, ``video_analysis`` sized by
  ``VIDEO_PIPELINE_{TRANSCODE,TRANSCRIBE,GEMINI}_POOL_SLOTS``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The project root (two levels up) holds the ``include`` package; in the image it is also on
# PYTHONPATH, but running the script from a checkout should work the same way.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from include.video_pipeline.config import Settings, load_settings
from include.video_pipeline.core.pools import ANALYSIS, TRANSCODE, TRANSCRIBE, PoolSpec, pools_import_document

# Sized for one 4-vCPU VM: ffmpeg and Whisper each use every core they get, so one of each at a
# time; analysis calls are network-bound and limited by the API quota instead.
DEFAULT_POOL_SLOTS = {TRANSCODE: 1, TRANSCRIBE: 1, ANALYSIS: 4}

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class InitError(RuntimeError):
    """The environment cannot produce a working setup; the message says which variable."""


@dataclass(frozen=True)
class Pool:
    spec: PoolSpec
    slots: int

    @property
    def name(self) -> str:
        return self.spec.name


def _env(env: Mapping[str, str], *names: str, default: str = "") -> str:
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return value
    return default


def build_connections(env: Mapping[str, str], settings: Settings) -> dict[str, dict[str, object]]:
    """Connection id -> the JSON ``airflow connections import`` accepts."""
    aws_extra: dict[str, object] = {}
    if settings.s3_endpoint_url:
        aws_extra["endpoint_url"] = settings.s3_endpoint_url
    if settings.s3_region:
        aws_extra["region_name"] = settings.s3_region
    addressing_style = _env(env, "S3_ADDRESSING_STYLE").lower()
    if addressing_style:
        if addressing_style not in {"path", "virtual", "auto"}:
            raise InitError(f"S3_ADDRESSING_STYLE must be path, virtual or auto; got {addressing_style!r}")
        aws_extra["config_kwargs"] = {"s3": {"addressing_style": addressing_style}}
    connections: dict[str, dict[str, object]] = {
        settings.aws_conn_id: {
            "conn_type": "aws",
            "description": f"video-pipeline bucket s3://{settings.bucket}",
            # Empty keys leave boto3 on its default chain (instance role, ~/.aws, AWS_* env).
            "login": _env(env, "S3_INPUT_ACCESS_KEY_ID"),
            "password": _env(env, "S3_INPUT_SECRET_ACCESS_KEY"),
            "extra": aws_extra,
        },
        settings.results_conn_id: {
            "conn_type": "postgres",
            "description": "video-pipeline results database",
            "host": _env(env, "RESULTS_DB_HOST", default="postgres"),
            "port": int(_env(env, "RESULTS_DB_PORT", default="5432")),
            "schema": _env(env, "RESULTS_DB_NAME", default="video_pipeline"),
            "login": _env(env, "RESULTS_DB_USER", default="video_pipeline"),
            "password": _env(env, "RESULTS_DB_PASSWORD"),
            "extra": {"sslmode": _env(env, "RESULTS_DB_SSLMODE", default="prefer")},
        },
    }
    gemini_key = _env(env, "GEMINI_API_KEY", "GOOGLE_API_KEY")
    if gemini_key:
        connections[settings.analysis.gemini_conn_id] = {
            "conn_type": "generic",
            "description": "Gemini API key (google-genai)",
            "password": gemini_key,
        }
    project = _env(env, "GOOGLE_CLOUD_PROJECT")
    if project:
        gcp_extra: dict[str, object] = {"project": project}
        key_path = _env(env, "GOOGLE_APPLICATION_CREDENTIALS")
        if key_path:
            gcp_extra["key_path"] = key_path
        # Without a key path the provider uses Application Default Credentials, which on a GCE VM
        # is the VM's service account: nothing secret to store.
        connections["google_cloud_default"] = {
            "conn_type": "google_cloud_platform",
            "description": "Vertex AI (optional)",
            "extra": gcp_extra,
        }
    if not connections[settings.results_conn_id]["password"]:
        raise InitError("RESULTS_DB_PASSWORD is empty: the results database needs a password")
    return connections


def build_pools(env: Mapping[str, str]) -> list[Pool]:
    pools = []
    for spec, default in DEFAULT_POOL_SLOTS.items():
        variable, raw = spec.slots_setting(env) or (spec.slots_variable, str(default))
        try:
            slots = int(raw)
        except ValueError:
            raise InitError(f"{variable} must be an integer, got {raw!r}") from None
        if slots < 1:
            raise InitError(f"{variable} must be >= 1, got {slots}")
        pools.append(Pool(spec, slots))
    return pools


def _airflow(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["airflow", *args], check=check, text=True, capture_output=True)


def _run_loud(*args: str) -> None:
    result = _airflow(*args, check=False)
    if result.returncode != 0:
        # Print both streams: the CLI writes its real error to stderr and context to stdout.
        sys.stderr.write(result.stdout + result.stderr)
        raise InitError(f"`airflow {args[0]} {args[1]}` failed with exit code {result.returncode}")


def to_import_document(connections: Mapping[str, Mapping[str, object]]) -> str:
    """The file ``airflow connections import`` reads: extras as JSON strings, empty ones dropped.

    The importer stores a dict ``extra`` as is and an empty one breaks the INSERT, so both are
    normalised here rather than trusted to the CLI.
    """
    document = {}
    for conn_id, fields in connections.items():
        entry = {key: value for key, value in fields.items() if key != "extra"}
        extra = fields.get("extra")
        if extra:
            entry["extra"] = json.dumps(extra)
        document[conn_id] = entry
    return json.dumps(document)


def apply_connections(connections: Mapping[str, Mapping[str, object]]) -> None:
    with tempfile.TemporaryDirectory(prefix="vp-conn-") as tmp:
        path = Path(tmp) / "connections.json"
        path.touch(mode=0o600)
        path.write_text(to_import_document(connections))
        _run_loud("connections", "import", "--overwrite", str(path))
    for conn_id in connections:
        print(f"connection {conn_id}: set")


def apply_pools(pools: Sequence[Pool]) -> None:
    # One `airflow pools import` for all of them: every CLI call is a whole Airflow start-up.
    with tempfile.TemporaryDirectory(prefix="vp-pools-") as tmp:
        path = Path(tmp) / "pools.json"
        path.write_text(pools_import_document({pool.spec: pool.slots for pool in pools}))
        _run_loud("pools", "import", str(path))
    for pool in pools:
        print(f"pool {pool.name}: {pool.slots} slot(s)")


def ensure_admin_user(env: Mapping[str, str]) -> None:
    """Create the first UI user for whichever auth manager is configured."""
    username = _env(env, "AIRFLOW_ADMIN_USERNAME", default="admin")
    password = _env(env, "AIRFLOW_ADMIN_PASSWORD")
    if not password:
        raise InitError("AIRFLOW_ADMIN_PASSWORD is empty: set it in .env")
    # Read Airflow's own config in-process: `airflow config get-value` prints warnings to stdout.
    from airflow.configuration import conf

    auth_manager = conf.get("core", "auth_manager")
    if auth_manager == SIMPLE_AUTH_MANAGER:
        from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

        # The simple auth manager keeps plaintext passwords in a JSON file; users themselves come
        # from [core] simple_auth_manager_users, so only the password is ours to set.
        target = Path(SimpleAuthManager.get_generated_password_file())
        text = target.read_text() if target.exists() else ""
        existing = json.loads(text) if text.strip() else {}
        existing.setdefault(username, password)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(existing))
        target.chmod(0o600)
        print(f"admin user {username}: password in {target}")
        return
    listed = _airflow("users", "list", "--output", "json", check=False)
    if listed.returncode != 0:
        sys.stderr.write(listed.stdout + listed.stderr)
        raise InitError(f"cannot list users with auth manager {auth_manager!r}; create the admin user by hand")
    if any(user.get("username") == username for user in json.loads(listed.stdout or "[]")):
        # Never reset an existing password: it may have been changed in the UI on purpose.
        print(f"admin user {username}: exists")
        return
    _run_loud(
        "users",
        "create",
        "--username",
        username,
        "--password",
        password,
        "--role",
        "Admin",
        "--firstname",
        _env(env, "AIRFLOW_ADMIN_FIRSTNAME", default="Admin"),
        "--lastname",
        _env(env, "AIRFLOW_ADMIN_LASTNAME", default="User"),
        "--email",
        _env(env, "AIRFLOW_ADMIN_EMAIL", default="admin@example.com"),
    )
    print(f"admin user {username}: created")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ
    try:
        settings = load_settings(env)  # validates every VIDEO_PIPELINE_* knob before anything runs
        connections = build_connections(env, settings)
        pools = build_pools(env)
        apply_connections(connections)
        apply_pools(pools)
        if "--skip-admin-user" not in args:
            ensure_admin_user(env)
    except (InitError, ValueError) as exc:
        print(f"init failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
