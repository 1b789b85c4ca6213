"""The real Airflow api-server app mounts the plugin, and its own /auth/token opens it."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import ROOT


def test_the_api_server_serves_the_plugin_behind_its_auth(airflow_auth, s3_env, monkeypatch) -> None:
    from airflow import plugins_manager, settings
    from airflow.api_fastapi import app as api_app

    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(ROOT / "plugins"))
    caches = (
        plugins_manager._get_plugins,
        plugins_manager.get_fastapi_plugins,
        plugins_manager._get_ui_plugins,
        plugins_manager.get_flask_plugins,
    )
    for cache in caches:
        cache.cache_clear()
    try:
        server = TestClient(api_app.create_app(apps="core"))
        passwords = json.loads(Path(api_app.get_auth_manager().get_generated_password_file()).read_text())
        login = server.post("/auth/token", json={"username": "uploader", "password": passwords["uploader"]})
        assert login.status_code == 201, login.text
        token = login.json()["access_token"]

        assert server.get("/video-pipeline/videos").status_code == 401
        listing = server.get("/video-pipeline/videos", headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 200, listing.text
        assert server.get("/video-pipeline/docs").status_code == 200
    finally:
        for cache in caches:
            cache.cache_clear()
