""".env.example documents every variable the app, the compose file and the init script read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from include.video_pipeline.core.pools import ALL_POOLS

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "docker-compose.yaml"
INIT_SCRIPT = ROOT / "deploy" / "init" / "create_connections_and_pools.py"
POLICY = ROOT / "deploy" / "airflow" / "airflow_local_settings.py"

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")
# Names every old .env (the Node.js pipeline's) and every secret fallback must keep working with.
OLD_AND_SECRET_NAMES = {
    "S3_INPUT_BUCKET",
    "S3_INPUT_ENDPOINT",
    "S3_INPUT_REGION",
    "S3_INPUT_ACCESS_KEY_ID",
    "S3_INPUT_SECRET_ACCESS_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
}
SECRETS = {
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "RESULTS_DB_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "S3_INPUT_ACCESS_KEY_ID",
    "S3_INPUT_SECRET_ACCESS_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
}


def _documented() -> dict[str, str]:
    """NAME -> value for `NAME=value` and commented `# NAME=value` lines."""
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def _string_args_of_calls(path: Path, functions: set[str]) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and ENV_NAME.match(arg.value):
                    names.add(arg.value)
    return names


class _RecordingEnv(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str]):
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key, default=None):  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


# Settings that read more variables once chosen (a bucket, another provider).
_CONFIGURATIONS = [
    {},
    {"VIDEO_PIPELINE_BUCKET": "videos"},
    {"VIDEO_PIPELINE_STORAGE": "gcs", "VIDEO_PIPELINE_BUCKET": "videos"},
    {"VIDEO_PIPELINE_ANALYZER": "openai-compatible", "VIDEO_PIPELINE_OPENAI_MODEL": "qwen2.5"},
    {"VIDEO_PIPELINE_ANALYZER": "vertex", "VIDEO_PIPELINE_HLS": "true"},
]


def _config_variables() -> set[str]:
    """Every variable ``load_settings`` reads, by watching it read (however the code is shaped)."""
    from include.video_pipeline.config import load_settings

    names: set[str] = set()
    for values in _CONFIGURATIONS:
        env = _RecordingEnv(values)
        load_settings(env)
        names |= env.read
    return names


def _compose_variables() -> set[str]:
    # `$${NAME}` is an escaped dollar (the container's shell expands it), not a compose variable.
    return set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))


def test_the_config_scan_finds_the_variables() -> None:
    # Guards the recording itself: a change to how settings are read must not make this test vacuous.
    found = _config_variables()
    assert {"VIDEO_PIPELINE_BUCKET", "S3_INPUT_BUCKET", "VIDEO_PIPELINE_X264_PRESET", "AWS_DEFAULT_REGION"} <= found
    assert len(found) >= 40


def test_every_config_variable_is_documented() -> None:
    missing = _config_variables() - set(_documented())
    assert not missing, f"read by load_settings but not in .env.example: {sorted(missing)}"


def test_every_compose_variable_is_documented() -> None:
    variables = _compose_variables()
    assert {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "WHISPER_MODEL"} <= variables
    missing = variables - set(_documented())
    assert not missing, f"used in docker-compose.yaml but not in .env.example: {sorted(missing)}"


def test_every_init_and_policy_variable_is_documented() -> None:
    init_vars = _string_args_of_calls(INIT_SCRIPT, {"_env"})
    assert {"RESULTS_DB_PASSWORD", "S3_ADDRESSING_STYLE", "GEMINI_API_KEY"} <= init_vars
    pool_vars = {spec.slots_variable for spec in ALL_POOLS}
    assert len(pool_vars) == 3
    policy_vars = set(re.findall(r'environ\.get\("([A-Z_]+)"', POLICY.read_text()))
    assert policy_vars == {"VIDEO_PIPELINE_TRANSCRIBE_QUEUE"}
    missing = (init_vars | pool_vars | policy_vars) - set(_documented())
    assert not missing, sorted(missing)


def test_old_pipeline_and_secret_fallback_names_are_documented() -> None:
    missing = OLD_AND_SECRET_NAMES - set(_documented())
    assert not missing, sorted(missing)


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_secrets_have_placeholders_only(name: str) -> None:
    value = _documented().get(name)
    assert value is not None, f"{name} is not documented"
    assert value == "" or value.startswith("change-me"), f"{name} has a value that is not a placeholder"


def test_nothing_looks_like_a_real_credential() -> None:
    text = ENV_EXAMPLE.read_text()
    patterns = {
        "AWS access key": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
        "Google API key": r"\bAIza[0-9A-Za-z_\-]{35}\b",
        "GCS HMAC key": r"\bGOOG[0-9A-Z]{20,}\b",
        "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    }
    for label, pattern in patterns.items():
        assert not re.search(pattern, text), f".env.example contains something like a real {label}"


def test_no_variable_is_documented_twice() -> None:
    names = [
        m.group(1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if (m := re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line))
    ]
    duplicates = {name for name in names if names.count(name) > 1}
    assert not duplicates, sorted(duplicates)
