"""POST /uploads with VIDEO_PIPELINE_STORAGE=gcs: a V4 signed PUT into pending/ of the emulator's bucket.

The app runs in-process with Airflow's real auth (tests/api/conftest.py); the
bucket is the GCS emulator (a process) behind the precondition proxy, and the
connection holds a service-account key made here, with tokens from loopback.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fakes import gcs_emulator as gcs
from tests.fakes.gcs_emulator import GoogleAuthServer, emulator_client, service_account_key, verify_v4_signed_url

gcs_emulator, gcs_proxy, gcs_bucket = gcs.gcs_emulator, gcs.gcs_proxy, gcs.gcs_bucket

NAME = "команда A/Встреча 1.mp4"
BODY = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


@pytest.fixture
def gcs_env(gcs_bucket, results_db, monkeypatch):
    """The pipeline on the emulator's bucket, signing with a service-account key; yields (bucket, public key)."""
    with GoogleAuthServer() as auth:
        key, public = service_account_key(auth.token_uri)
        auth.trust(key["client_email"], public)
        connection = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(key)}}
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
        monkeypatch.delenv("VIDEO_PIPELINE_UPLOAD_PUBLIC_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("VIDEO_PIPELINE_STORAGE", "gcs")
        monkeypatch.setenv("VIDEO_PIPELINE_BUCKET", gcs_bucket)
        monkeypatch.setenv("VIDEO_PIPELINE_UPLOAD_URL_EXPIRY_MINUTES", "5")
        monkeypatch.setenv("VIDEO_PIPELINE_MAX_UPLOAD_BYTES", str(1024 * 1024))
        yield gcs_bucket, public


def test_a_signed_put_uploads_into_pending_and_a_taken_name_gets_a_number(api, airflow_auth, gcs_env, gcs_proxy):
    bucket, public = gcs_env
    body = {"filename": NAME, "size_bytes": len(BODY), "content_type": "video/mp4"}
    response = api.post("/uploads", json=body, headers=airflow_auth.header("uploader"))
    assert response.status_code == 200, response.text
    ticket = response.json()
    assert ticket["key"] == f"pending/{NAME}" and ticket["renamed"] is False
    assert ticket["headers"] == {
        "Content-Type": "video/mp4",
        "Content-Length": str(len(BODY)),
        "x-goog-content-length-range": f"{len(BODY)},{len(BODY)}",
    }
    query = parse_qs(urlsplit(ticket["url"]).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"] and query["X-Goog-Expires"] == ["300"]
    assert verify_v4_signed_url(ticket["url"], "PUT", ticket["headers"], public)
    assert not verify_v4_signed_url(ticket["url"], "PUT", {**ticket["headers"], "Content-Type": "text/html"}, public)
    assert ticket["post"]["fields"]["key"] == f"pending/{NAME}"

    put = requests.put(ticket["url"], data=BODY, headers=ticket["headers"], timeout=10)
    assert put.status_code == 200, put.text
    stored = emulator_client().bucket(bucket).get_blob(f"pending/{NAME}")
    assert stored.download_as_bytes() == BODY and stored.content_type == "video/mp4"

    # The name is taken now (the app asked GCS): the next upload of it is numbered.
    again = api.post("/uploads", json=body, headers=airflow_auth.header("uploader")).json()
    assert again["renamed"] is True and again["key"] == "pending/команда A/Встреча 1 (2).mp4"


def test_credentials_that_cannot_sign_get_a_503_that_says_so(api, airflow_auth, gcs_bucket, results_db, monkeypatch):
    # gcs_bucket leaves google_cloud_default anonymous: it reads and writes the emulator, but holds no key.
    monkeypatch.setenv("VIDEO_PIPELINE_STORAGE", "gcs")
    monkeypatch.setenv("VIDEO_PIPELINE_BUCKET", gcs_bucket)
    body = {"filename": "clip.mp4", "size_bytes": 1000, "content_type": "video/mp4"}
    response = api.post("/uploads", json=body, headers=airflow_auth.header("uploader"))
    assert response.status_code == 503
    assert "cannot sign GCS URLs" in response.json()["detail"] and "AnonymousCredentials" in response.json()["detail"]
