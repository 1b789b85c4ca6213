"""The deployment files: docker-compose.yaml, Dockerfile, deploy/ scripts and the Helm values.

No Docker engine runs here, so the compose file is checked against the Compose specification's
JSON schema and for coherence; the init script and the results-DB SQL run for real against a
throwaway Airflow metadata DB and a throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
# The project's own copy (source, version, licence: deploy/schema/README.md; `make refresh-compose-schema`).
SCHEMA = ROOT / "deploy" / "schema" / "compose-spec.json"
DOCKERFILE = ROOT / "Dockerfile"
INIT_SCRIPT = ROOT / "deploy" / "init" / "create_connections_and_pools.py"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
RESULTS_SQL = ROOT / "deploy" / "postgres" / "init-results-db.sql"
RESULTS_SH = ROOT / "deploy" / "postgres" / "10-init-results-db.sh"
POLICY = ROOT / "deploy" / "airflow" / "airflow_local_settings.py"
VENV_BIN = Path(sys.executable).parent

ONE_SHOT = {"airflow-init", "minio-create-bucket"}
EXPECTED_CONNECTIONS = {"aws_default", "postgres_default", "gemini_default", "google_cloud_default"}
EXPECTED_POOLS = {"video_transcode", "video_transcribe", "video_analysis"}


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _pinned_airflow_version() -> str:
    match = re.search(r"^apache-airflow==([0-9][^\s]*)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert match, "requirements.txt does not pin apache-airflow"
    return match.group(1)


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


# --- compose ---------------------------------------------------------------------------------


def test_compose_validates_against_the_compose_spec(compose: dict) -> None:
    assert SCHEMA.is_file(), f"compose schema missing at {SCHEMA}: cannot validate docker-compose.yaml"
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose, schema)


def test_every_airflow_component_runs(services: dict) -> None:
    commands = {name: " ".join(_command(service)) for name, service in services.items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"].startswith("celery worker")
    assert "airflow db migrate" in commands["airflow-init"]
    assert "deploy/init/create_connections_and_pools.py" in commands["airflow-init"]
    airflow_env = services["airflow-scheduler"]["environment"]
    assert airflow_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "redis" in airflow_env["AIRFLOW__CELERY__BROKER_URL"]
    # Airflow 3 task runners need the API server's execution endpoint, by service name.
    assert airflow_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("http://airflow-apiserver:8080/execution/}")


def test_long_running_services_have_healthcheck_and_restart(services: dict) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"one-shot {name} must not restart"
            continue
        assert service.get("restart") in {"always", "unless-stopped"}, f"{name}: no restart policy"
        test = service.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name}: no healthcheck"


def test_depends_on_names_exist_and_wait_for_health(services: dict) -> None:
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if dependency in ONE_SHOT:
                assert spec["condition"] == "service_completed_successfully"
            else:
                assert spec["condition"] == "service_healthy", f"{name} -> {dependency}"
                assert "healthcheck" in services[dependency]


def test_worker_scales_and_has_limits(services: dict) -> None:
    worker = services["airflow-worker"]
    # `--scale` fails on a fixed container name or host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    limits = worker["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]


def test_gpu_worker_consumes_gpu_queue_with_an_nvidia_device(services: dict) -> None:
    gpu = services["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    command = _command(gpu)
    assert command[:2] == ["celery", "worker"]
    assert "gpu" in command[command.index("--queues") + 1]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["environment"]["VIDEO_PIPELINE_WHISPER_DEVICE"] == "cuda"
    assert gpu["build"]["args"]["WITH_CUDA_LIBS"] == "true"


def test_minio_profile_creates_bucket_and_the_four_prefixes(services: dict) -> None:
    assert services["minio"]["profiles"] == ["minio"]
    job = services["minio-create-bucket"]
    assert job["profiles"] == ["minio"]
    assert job["depends_on"]["minio"]["condition"] == "service_healthy"
    prefixes = job["environment"]["PREFIXES"]
    for state in ("pending", "processing", "completed", "failed"):
        assert f"{state}/" in prefixes
    script = "\n".join(_command(job))
    assert "mc mb --ignore-existing" in script and "$$PREFIXES" in script


def test_postgres_runs_the_results_db_init(services: dict) -> None:
    volumes = services["postgres"]["volumes"]
    assert any(v.startswith("./deploy/postgres/10-init-results-db.sh:/docker-entrypoint-initdb.d/") for v in volumes)
    assert any(
        v.startswith("./deploy/postgres/init-results-db.sql:/opt/video-pipeline/init-results-db.sql") for v in volumes
    )
    for volume in volumes:
        if volume.startswith("./"):
            assert (ROOT / volume.split(":")[0]).exists(), volume


def test_named_volumes_are_declared(compose: dict, services: dict) -> None:
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
    assert {"airflow-logs", "whisper-cache"} <= declared


def test_ports_bind_to_loopback_by_default(services: dict) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert re.match(r"^\$\{[A-Z_]+_BIND_ADDRESS:-127\.0\.0\.1\}:", port), f"{name}: {port}"


def test_images_and_dockerfile_use_the_pinned_airflow_version(services: dict) -> None:
    version = _pinned_airflow_version()
    dockerfile = DOCKERFILE.read_text()
    base = re.search(r"^ARG AIRFLOW_IMAGE=(\S+)$", dockerfile, re.M)
    assert base, "Dockerfile has no AIRFLOW_IMAGE build arg"
    assert base.group(1) == f"apache/airflow:{version}-python3.11"
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}$", dockerfile, re.M)
    for name, service in services.items():
        image = service.get("image", "")
        if "apache/airflow" in image:
            assert f"apache/airflow:{version}" in image, f"{name}: {image}"
        if name.startswith("airflow-"):
            assert service["build"]["dockerfile"] == "Dockerfile", name


def test_dockerfile_installs_exactly_requirements_txt() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    installs = [line.strip() for line in lines if "pip install" in line]
    # requirements.txt as the lock, plus only the optional CUDA libraries for GPU workers.
    assert installs == [
        "RUN pip install --no-cache-dir -r /opt/airflow/project/requirements.txt",
        "pip install --no-cache-dir -r /opt/airflow/project/deploy/docker/requirements-cuda.txt; \\",
    ]
    assert "COPY --chown=airflow:0 requirements.txt /opt/airflow/project/requirements.txt" in lines
    # pip runs as the airflow user, as the official image requires, and so does the container.
    first_pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    users = [(i, line) for i, line in enumerate(lines) if line.startswith("USER ")]
    assert [line for i, line in users if i < first_pip][-1] == "USER airflow"
    assert users[-1][1] == "USER airflow"


def test_dockerfile_bakes_the_whisper_model_offline() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^ARG WHISPER_MODEL=small$", dockerfile, re.M)
    assert "from faster_whisper import download_model" in dockerfile
    assert "VIDEO_PIPELINE_WHISPER_MODEL=/opt/airflow/models/whisper/${WHISPER_MODEL}" in dockerfile
    assert "HF_HUB_OFFLINE=1" in dockerfile
    assert re.search(r"apt-get install -y --no-install-recommends ffmpeg", dockerfile)
    for setting in ("PYTHONPATH=/opt/airflow/project", "AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/project/dags"):
        assert setting in dockerfile


def test_download_model_call_matches_faster_whisper() -> None:
    # The Dockerfile calls download_model(name, output_dir=...); a renamed argument would only
    # break at image build time, on the VM.
    import inspect

    from faster_whisper import download_model
    from faster_whisper.utils import available_models

    assert "output_dir" in inspect.signature(download_model).parameters
    assert "small" in available_models()


def test_dockerfile_copies_files_that_exist() -> None:
    for match in re.finditer(r"^COPY (?:--\S+ )*(\S+) \S+$", DOCKERFILE.read_text(), re.M):
        assert (ROOT / match.group(1)).exists(), match.group(1)


# --- init script: connections and pools ------------------------------------------------------


@pytest.fixture(scope="module")
def init_module() -> ModuleType:
    return _load_module(INIT_SCRIPT, "create_connections_and_pools")


def test_init_builds_exactly_the_connections_and_pools_the_dag_uses(init_module: ModuleType) -> None:
    from include.video_pipeline.config import load_settings

    env = {
        "RESULTS_DB_PASSWORD": "pw",
        "GEMINI_API_KEY": "test-key-not-real",
        "GOOGLE_CLOUD_PROJECT": "demo-project",
        "S3_INPUT_BUCKET": "videos",
        "S3_INPUT_ENDPOINT": "https://s3.example.test",
        "S3_INPUT_REGION": "ru-1",
        "S3_ADDRESSING_STYLE": "path",
    }
    connections = init_module.build_connections(env, load_settings(env))
    assert set(connections) == EXPECTED_CONNECTIONS
    assert connections["aws_default"]["extra"] == {
        "endpoint_url": "https://s3.example.test",
        "region_name": "ru-1",
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }
    assert connections["postgres_default"]["schema"] == "video_pipeline"
    assert connections["gemini_default"]["password"] == "test-key-not-real"
    assert {pool.name for pool in init_module.build_pools({})} == EXPECTED_POOLS

    # Without a key there is no gemini_default (the offline analyzer runs instead).
    bare = {"RESULTS_DB_PASSWORD": "pw"}
    assert set(init_module.build_connections(bare, load_settings(bare))) == {"aws_default", "postgres_default"}


def test_init_honours_renamed_connection_ids(init_module: ModuleType) -> None:
    from include.video_pipeline.config import load_settings

    env = {
        "RESULTS_DB_PASSWORD": "pw",
        "GOOGLE_API_KEY": "old-name-key",
        "VIDEO_PIPELINE_AWS_CONN_ID": "beget",
        "VIDEO_PIPELINE_RESULTS_CONN_ID": "results",
        "VIDEO_PIPELINE_GEMINI_CONN_ID": "gemini",
    }
    assert set(init_module.build_connections(env, load_settings(env))) == {"beget", "results", "gemini"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "RESULTS_DB_PASSWORD"),
        ({"RESULTS_DB_PASSWORD": "pw", "S3_ADDRESSING_STYLE": "sideways"}, "S3_ADDRESSING_STYLE"),
    ],
)
def test_init_rejects_bad_connection_settings(init_module: ModuleType, env: dict, message: str) -> None:
    from include.video_pipeline.config import load_settings

    with pytest.raises(init_module.InitError, match=message):
        init_module.build_connections(env, load_settings(env))


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_init_rejects_bad_pool_sizes(init_module: ModuleType, value: str) -> None:
    with pytest.raises(init_module.InitError, match="VIDEO_PIPELINE_TRANSCRIBE_POOL_SLOTS"):
        init_module.build_pools({"VIDEO_PIPELINE_TRANSCRIBE_POOL_SLOTS": value})


def test_pool_sizes_come_from_env(init_module: ModuleType) -> None:
    pools = {
        p.name: p.slots
        for p in init_module.build_pools(
            {"VIDEO_PIPELINE_TRANSCODE_POOL_SLOTS": "3", "VIDEO_PIPELINE_ANALYSIS_POOL_SLOTS": "10"}
        )
    }
    assert pools == {"video_transcode": 3, "video_transcribe": 1, "video_analysis": 10}


def test_the_analysis_pools_old_size_variable_still_sizes_it(init_module: ModuleType) -> None:
    """Deployments' .env files from before the rename keep their analysis concurrency."""
    old = {p.name: p.slots for p in init_module.build_pools({"VIDEO_PIPELINE_GEMINI_POOL_SLOTS": "7"})}
    assert old["video_analysis"] == 7
    both = {"VIDEO_PIPELINE_GEMINI_POOL_SLOTS": "7", "VIDEO_PIPELINE_ANALYSIS_POOL_SLOTS": "2"}
    assert {p.name: p.slots for p in init_module.build_pools(both)}["video_analysis"] == 2
    with pytest.raises(init_module.InitError, match="VIDEO_PIPELINE_GEMINI_POOL_SLOTS"):
        init_module.build_pools({"VIDEO_PIPELINE_GEMINI_POOL_SLOTS": "many"})


@pytest.mark.slow
def test_init_script_against_a_real_airflow(tmp_path: Path) -> None:
    """Run the script twice with the real Airflow CLI and read back what it wrote."""
    airflow = VENV_BIN / "airflow"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIDEO_PIPELINE", "S3_INPUT"))},
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
        "RESULTS_DB_PASSWORD": "results-pw",
        "S3_INPUT_BUCKET": "videos",
        "S3_INPUT_ENDPOINT": "http://minio:9000",
        "S3_INPUT_ACCESS_KEY_ID": "access-key-id",
        "S3_INPUT_SECRET_ACCESS_KEY": "secret-access-key",
        "S3_ADDRESSING_STYLE": "path",
        "GEMINI_API_KEY": "test-key-not-real",
        "GOOGLE_CLOUD_PROJECT": "demo-project",
        "VIDEO_PIPELINE_TRANSCODE_POOL_SLOTS": "2",
        "AIRFLOW_ADMIN_PASSWORD": "admin-pw",
    }
    for inherited in ("GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "RESULTS_DB_HOST"):
        env.pop(inherited, None)

    def run(*args: str) -> str:
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run(str(airflow), "db", "migrate")
    run(sys.executable, str(INIT_SCRIPT))
    # A second run (every `docker compose up`) must succeed and apply .env changes.
    env["VIDEO_PIPELINE_TRANSCODE_POOL_SLOTS"] = "3"
    env["S3_INPUT_SECRET_ACCESS_KEY"] = "rotated-secret"
    run(sys.executable, str(INIT_SCRIPT))

    # One export reads every connection back (each CLI call is a whole Airflow start-up).
    run(str(airflow), "connections", "export", str(tmp_path / "exported.json"), "--format", "json")
    connections = json.loads((tmp_path / "exported.json").read_text())
    assert set(connections) == EXPECTED_CONNECTIONS
    aws = connections["aws_default"]
    assert aws["login"] == "access-key-id" and aws["password"] == "rotated-secret"
    aws_extra = json.loads(aws["extra"])
    assert aws_extra["endpoint_url"] == "http://minio:9000"
    assert aws_extra["config_kwargs"] == {"s3": {"addressing_style": "path"}}
    postgres = connections["postgres_default"]
    assert (postgres["host"], postgres["schema"], postgres["password"]) == ("postgres", "video_pipeline", "results-pw")

    pools = {p["pool"]: p for p in json.loads(run(str(airflow), "pools", "list", "-o", "json"))}
    assert EXPECTED_POOLS <= set(pools)
    assert int(pools["video_transcode"]["slots"]) == 3
    assert int(pools["video_transcribe"]["slots"]) == 1
    assert int(pools["video_analysis"]["slots"]) == 4

    # The venv's Airflow uses the simple auth manager: the admin password lands in its file.
    passwords = json.loads((tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
    assert passwords == {"admin": "admin-pw"}
    # No secret is left behind in a temp file.
    assert not list(tmp_path.glob("**/connections.json")) and not list(tmp_path.glob("**/pools.json"))


# --- cluster policy --------------------------------------------------------------------------


def test_transcribe_tasks_are_routed_to_the_configured_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator

    policy = _load_module(POLICY, "vp_airflow_local_settings")
    transcribe = EmptyOperator(task_id="transcribe", pool="video_transcribe")
    transcode = EmptyOperator(task_id="transcode", pool="video_transcode")

    monkeypatch.delenv("VIDEO_PIPELINE_TRANSCRIBE_QUEUE", raising=False)
    policy.task_policy(transcribe)
    assert transcribe.queue == "default"

    monkeypatch.setenv("VIDEO_PIPELINE_TRANSCRIBE_QUEUE", "gpu")
    policy.task_policy(transcribe)
    policy.task_policy(transcode)
    assert (transcribe.queue, transcode.queue) == ("gpu", "default")


def test_the_naming_hook_leaves_other_dags_alone_and_never_raises() -> None:
    """The scheduler calls it for every task instance it creates (the names themselves: tests/e2e)."""
    from types import SimpleNamespace

    policy = _load_module(POLICY, "vp_airflow_local_settings")
    ti = SimpleNamespace(task_id="video.analyze", map_index=1, _rendered_map_index=None)
    for dag_run in (None, SimpleNamespace(dag_id="other_dag"), SimpleNamespace(dag_id="video_pipeline", id=1)):
        policy.task_instance_mutation_hook(ti, dag_run)  # the last one has no session to read the names from
    assert ti._rendered_map_index is None


# --- results database SQL against a real PostgreSQL -------------------------------------------


def _pg_bin(name: str) -> str:
    from tools.local_postgres import bin_dir

    # Debian and Ubuntu keep initdb and pg_ctl off PATH, in /usr/lib/postgresql/<version>/bin.
    found = bin_dir() / name
    assert found.is_file(), f"{found} missing: the results-DB init SQL cannot be checked"
    return str(found)


def test_results_db_init_sql_runs_twice_on_real_postgres() -> None:
    initdb, pg_ctl, psql = _pg_bin("initdb"), _pg_bin("pg_ctl"), _pg_bin("psql")
    # Not pytest's tmp_path: its parents are private to root, and initdb refuses to run as root.
    tmp_path = Path(tempfile.mkdtemp(prefix="vp-pg-"))
    data = tmp_path / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        tmp_path.chmod(0o777)
        prefix = ["runuser", "-u", "nobody", "--"]
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "postgres", "-A", "trust"], check=True, capture_output=True)
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            str(data),
            "-w",
            "-l",
            str(tmp_path / "log"),
            "-o",
            f"-k {tmp_path} -c listen_addresses=''",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        env = {
            **os.environ,
            "PGHOST": str(tmp_path),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "postgres",
            "RESULTS_DB_PASSWORD": "it's a 'quoted' secret",
            "RESULTS_DB_INIT_SQL": str(RESULTS_SQL),
        }
        for _ in range(2):  # idempotent
            result = subprocess.run(["bash", str(RESULTS_SH)], env=env, capture_output=True, text=True)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "quoted" not in result.stdout + result.stderr  # the password is never echoed

        def query(sql: str, user: str = "postgres", db: str = "postgres") -> str:
            out = subprocess.run(
                [psql, "-h", str(tmp_path), "-U", user, "-d", db, "-Atc", sql],
                env={**env, "PGPASSWORD": env["RESULTS_DB_PASSWORD"]},
                capture_output=True,
                text=True,
            )
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()

        assert (
            query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'video_pipeline'")
            == "video_pipeline"
        )
        # The pipeline's role can create its tables (PostgreSQL 15+ revoked that from PUBLIC).
        assert query("CREATE TABLE probe (id int); SELECT current_user", "video_pipeline", "video_pipeline").endswith(
            "video_pipeline"
        )
        assert query("SELECT has_database_privilege('public', 'video_pipeline', 'CONNECT')") == "f"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)


# --- Helm values --------------------------------------------------------------------------------


def test_helm_values_have_the_keys_the_chart_expects() -> None:
    values = yaml.safe_load(HELM_VALUES.read_text())
    version = _pinned_airflow_version()
    assert values["executor"] in {"CeleryExecutor", "KubernetesExecutor", "CeleryExecutor,KubernetesExecutor"}
    assert values["airflowVersion"] == version
    assert values["defaultAirflowTag"] == values["images"]["airflow"]["tag"]
    assert values["images"]["airflow"]["repository"]
    for component in ("workers", "scheduler", "apiServer", "triggerer", "dagProcessor"):
        assert component in values, component
    assert values["workers"]["resources"]["limits"]["memory"]
    assert "keda" in values["workers"] and "enabled" in values["workers"]["keda"]
    assert values["logs"]["persistence"]["enabled"] is True
    secret_names = {item["envName"] for item in values["secret"]}
    assert {"S3_INPUT_ACCESS_KEY_ID", "S3_INPUT_SECRET_ACCESS_KEY", "GEMINI_API_KEY"} <= secret_names
    env_names = {item["name"] for item in values["env"]}
    assert {"PYTHONPATH", "VIDEO_PIPELINE_BUCKET"} <= env_names
    assert values["postgresql"]["enabled"] is False or "auth" in values["postgresql"]
    # Empty, so the chart mounts no airflow_local_settings.py over the image's policy.
    assert values["airflowLocalSettings"] == ""


def test_pools_are_written_in_one_import_that_keeps_deferred_tasks_out_of_their_slots(init_module: ModuleType) -> None:
    from include.video_pipeline.core.pools import pools_import_document

    pools = init_module.build_pools({"VIDEO_PIPELINE_ANALYSIS_POOL_SLOTS": "6"})
    document = json.loads(pools_import_document({pool.spec: pool.slots for pool in pools}))
    assert set(document) == EXPECTED_POOLS
    assert document["video_analysis"]["slots"] == 6
    # A stage waiting for a duplicate or an analysis waiting for its batch must not hold a slot.
    assert all(entry["include_deferred"] is False for entry in document.values())
