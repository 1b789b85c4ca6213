"""Airflow's plugin manager finds the plugin in plugins/ and hands its app to the api-server."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT


@pytest.fixture
def fresh_plugin_manager(monkeypatch):
    from airflow import plugins_manager, settings

    caches = (plugins_manager._get_plugins, plugins_manager.get_fastapi_plugins)
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(ROOT / "plugins"))
    for cache in caches:
        cache.cache_clear()
    try:
        yield plugins_manager
    finally:
        for cache in caches:
            cache.cache_clear()


def test_the_plugin_loads_and_registers_the_fastapi_app(fresh_plugin_manager) -> None:
    plugins, errors = fresh_plugin_manager._get_plugins()
    assert not {source: error for source, error in errors.items() if "video_pipeline" in source}
    assert "video_pipeline" in {plugin.name for plugin in plugins}

    apps, _ = fresh_plugin_manager.get_fastapi_plugins()
    ours = [entry for entry in apps if entry.get("url_prefix") == "/video-pipeline"]
    assert len(ours) == 1
    assert {"/uploads", "/videos", "/videos/{video_id}"} <= {route.path for route in ours[0]["app"].routes}


def test_the_prefix_is_not_reserved_by_the_api_server() -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

    from plugins.video_pipeline_plugin import URL_PREFIX

    assert not any(URL_PREFIX.startswith(prefix) for prefix in RESERVED_URL_PREFIXES)
