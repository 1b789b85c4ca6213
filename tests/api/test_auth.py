"""Every data endpoint needs an Airflow token, and the token's role decides what it may do."""

from __future__ import annotations

import pytest

UPLOAD = {"filename": "clip.mp4", "size_bytes": 10, "content_type": "video/mp4"}


def _data_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route except the docs, with path parameters filled in."""
    routes = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if path in PUBLIC_ROUTES:
            continue
        for method in sorted(getattr(route, "methods", ()) or ()):
            if method != "HEAD":
                routes.append((method, path.replace("{video_id}", "some-id").replace("{name:path}", "report.html")))
    return routes


# Hold no data: the API's docs and the Videos page's shell (its data comes from the routes below).
PUBLIC_ROUTES = {"/docs", "/docs/assets/{name}", "/openapi.json", "/ui/", "/ui/assets/{name}"}


def test_the_route_scan_sees_every_endpoint(api) -> None:
    # Guards the scan below: it must not pass by finding nothing.
    assert set(_data_routes(api.app)) == {
        ("POST", "/uploads"),
        ("GET", "/videos"),
        ("GET", "/videos/some-id"),
        ("GET", "/search"),
        ("GET", "/library"),
        ("POST", "/videos/some-id/reprocess"),
        ("GET", "/outputs/some-id/report.html"),
    }


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic YWRtaW46YWRtaW4="}])
def test_every_data_endpoint_rejects_calls_without_a_token(api, s3_env, headers) -> None:
    for method, path in _data_routes(api.app):
        response = api.request(method, path, json=UPLOAD, headers=headers)
        assert response.status_code == 401, (method, path, response.text)


def test_a_forged_token_is_rejected(api, s3_env, airflow_auth) -> None:
    header, payload, _ = airflow_auth.admin.split(".")
    for token in ("not-a-jwt", f"{header}.{payload}.c2lnbmF0dXJl"):
        for method, path in _data_routes(api.app):
            response = api.request(method, path, json=UPLOAD, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 403, (method, path, response.text)


def test_a_viewer_may_read_but_not_upload(api, s3_env, airflow_auth) -> None:
    headers = airflow_auth.header("viewer")
    assert api.get("/videos", headers=headers).status_code == 200
    assert api.get("/videos/unknown-id", headers=headers).status_code == 404
    response = api.post("/uploads", json=UPLOAD, headers=headers)
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("user", ["uploader", "admin"])
def test_users_who_may_trigger_runs_may_upload(api, s3_env, airflow_auth, user) -> None:
    response = api.post("/uploads", json=UPLOAD, headers=airflow_auth.header(user))
    assert response.status_code == 200, response.text


def test_the_ui_session_cookie_is_accepted(api, s3_env, airflow_auth) -> None:
    # Logged-in UI users reach the API (and its /docs "try it out") without pasting a token.
    api.cookies.set("_token", airflow_auth.viewer)
    try:
        assert api.get("/videos").status_code == 200
    finally:
        api.cookies.clear()
