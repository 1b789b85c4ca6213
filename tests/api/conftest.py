"""The upload API in-process, against the session's real S3 endpoint and PostgreSQL, with real Airflow tokens.

Airflow's auth is used as it is in the api-server: the SimpleAuthManager issues
JWTs at its real ``/token`` endpoint and validates them, and the token check
consults Airflow's metadata database (revoked tokens), so the session gets a
migrated metadata database of its own in the test PostgreSQL.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.conftest import create_database

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
USERS = {"admin": "admin", "viewer": "viewer", "uploader": "user"}


@pytest.fixture(scope="session")
def airflow_metadata(postgres) -> Iterator[str]:
    """Point this process's Airflow ORM at a fresh, migrated metadata database; restore it afterwards."""
    from airflow import settings
    from airflow.utils import db

    dsn = postgres.dsn(create_database(postgres, "airflow")).replace("postgresql://", "postgresql+psycopg2://", 1)
    saved = (settings.SQL_ALCHEMY_CONN, settings.SQL_ALCHEMY_CONN_ASYNC)
    settings.dispose_orm(do_log=False)
    settings.SQL_ALCHEMY_CONN = dsn
    settings.SQL_ALCHEMY_CONN_ASYNC = dsn.replace("+psycopg2", "+asyncpg", 1)
    settings.configure_orm()
    try:
        db.initdb()
        yield dsn
    finally:
        settings.dispose_orm(do_log=False)
        settings.SQL_ALCHEMY_CONN, settings.SQL_ALCHEMY_CONN_ASYNC = saved
        settings.configure_orm()


@dataclass
class Tokens:
    admin: str
    viewer: str
    uploader: str

    def header(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, user)}"}


@pytest.fixture(scope="session")
def airflow_auth(airflow_metadata, tmp_path_factory) -> Iterator[Tokens]:
    """A SimpleAuthManager with an admin, a viewer and a 'user'-role uploader; tokens from its /token endpoint."""
    from airflow.api_fastapi import app as api_app

    passwords_file = tmp_path_factory.mktemp("auth") / "passwords.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", SIMPLE_AUTH_MANAGER)
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:{r}" for u, r in USERS.items()))
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords_file))
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
        saved = api_app._AuthManagerState.instance
        api_app._AuthManagerState.instance = None
        try:
            manager = api_app.init_auth_manager()
            passwords = json.loads(passwords_file.read_text())
            login = TestClient(manager.get_fastapi_app())
            tokens = {}
            for user in USERS:
                response = login.post("/token", json={"username": user, "password": passwords[user]})
                assert response.status_code == 201, response.text
                tokens[user] = response.json()["access_token"]
            yield Tokens(**tokens)
        finally:
            api_app._AuthManagerState.instance = saved


@pytest.fixture
def s3_env(s3_bucket, results_db, monkeypatch) -> str:
    """The pipeline configured for the test bucket and results database; returns the bucket."""
    for name in ("VIDEO_PIPELINE_S3_ENDPOINT_URL", "VIDEO_PIPELINE_UPLOAD_PUBLIC_ENDPOINT_URL", "S3_INPUT_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIDEO_PIPELINE_STORAGE", "s3")
    monkeypatch.setenv("VIDEO_PIPELINE_BUCKET", s3_bucket)
    monkeypatch.setenv("VIDEO_PIPELINE_UPLOAD_URL_EXPIRY_MINUTES", "5")
    monkeypatch.setenv("VIDEO_PIPELINE_MAX_UPLOAD_BYTES", str(1024 * 1024))
    return s3_bucket


@pytest.fixture
def api(airflow_auth) -> TestClient:
    from include.video_pipeline.api.app import create_app

    return TestClient(create_app())
