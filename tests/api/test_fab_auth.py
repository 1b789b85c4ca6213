"""The library API under the FAB auth manager, which production runs (docker-compose.yaml).

Real FAB users and roles in the session's migrated Airflow metadata database, real
tokens from FAB's own ``/token`` endpoint. A role that may read another DAG's runs
but not ``video_pipeline``'s sees nothing of the library; a Viewer reads it but may
not reprocess.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
PASSWORD = "fab-test-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def fab_tokens(airflow_metadata) -> Iterator[dict[str, str]]:
    from airflow.api_fastapi import app as api_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", FAB_AUTH_MANAGER)
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
        mp.setenv("AIRFLOW__API__SECRET_KEY", secrets.token_hex(16))
        saved = api_app._AuthManagerState.instance
        api_app._AuthManagerState.instance = None
        try:
            manager = api_app.init_auth_manager()
            login = TestClient(manager.get_fastapi_app())
            with manager.flask_app.app_context():
                sm = manager.security_manager
                sm.sync_roles()
                other = sm.add_role("OtherDagOnly")
                for action, resource in (
                    ("can_read", "DAG:some_other_dag"),
                    ("can_read", "DAG Run"),
                    ("can_read", "DAG Runs"),
                ):
                    permission = sm.create_permission(action, resource)
                    if permission is not None:
                        sm.add_permission_to_role(other, permission)
                for user, role in (("fab_viewer", "Viewer"), ("fab_other", "OtherDagOnly"), ("fab_admin", "Admin")):
                    if sm.find_user(username=user) is None:
                        created = sm.add_user(
                            user, user, "Test", f"{user}@example.invalid", sm.find_role(role), PASSWORD
                        )
                        assert created, f"could not create FAB user {user}"
            tokens = {}
            for user in ("fab_viewer", "fab_other", "fab_admin"):
                response = login.post("/token", json={"username": user, "password": PASSWORD})
                assert response.status_code == 201, response.text
                tokens[user] = response.json()["access_token"]
            yield tokens
        finally:
            api_app._AuthManagerState.instance = saved


@pytest.fixture
def fab_api(fab_tokens, s3_env, results_db) -> TestClient:
    from include.video_pipeline.api.app import create_app

    return TestClient(create_app())


def _auth(tokens: dict[str, str], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[user]}"}


def test_a_role_without_the_dag_sees_nothing(fab_api, fab_tokens) -> None:
    for path in ("/search?q=budget", "/library", "/videos", "/outputs/x/report.html"):
        response = fab_api.get(path, headers=_auth(fab_tokens, "fab_other"))
        assert response.status_code == 403, (path, response.text)
    assert fab_api.post("/videos/x/reprocess", headers=_auth(fab_tokens, "fab_other")).status_code == 403


def test_a_viewer_reads_the_library_but_cannot_reprocess(fab_api, fab_tokens) -> None:
    headers = _auth(fab_tokens, "fab_viewer")
    search = fab_api.get("/search", params={"q": "бюджет"}, headers=headers)
    assert search.status_code == 200, search.text
    assert search.json()["hits"] == []  # an empty library, but an answer
    assert fab_api.get("/library", headers=headers).status_code == 200
    assert fab_api.post("/videos/x/reprocess", headers=headers).status_code == 403
    # An admin may trigger: the request gets past auth to the lookup of the video.
    assert fab_api.post("/videos/x/reprocess", headers=_auth(fab_tokens, "fab_admin")).status_code == 404


def test_no_token_no_data(fab_api) -> None:
    assert fab_api.get("/search", params={"q": "x"}).status_code == 401
