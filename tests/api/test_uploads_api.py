"""POST /uploads against the real S3 endpoint: the URL it returns really uploads, and only what was declared."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.api.sigv4 import expected_signature, signature_of
from tests.conftest import S3_TEST_SECRET_KEY

NAME = "команда A/Встреча 1.mp4"
BODY = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


def _ticket(api, airflow_auth, **overrides) -> requests.Response:
    body = {"filename": NAME, "size_bytes": len(BODY), "content_type": "video/mp4", **overrides}
    return api.post("/uploads", json=body, headers=airflow_auth.header("uploader"))


def test_the_presigned_put_uploads_into_pending(api, airflow_auth, s3_env, s3_client) -> None:
    response = _ticket(api, airflow_auth)
    assert response.status_code == 200, response.text
    ticket = response.json()
    assert ticket["key"] == f"pending/{NAME}"
    assert ticket["filename"] == NAME and ticket["renamed"] is False
    assert ticket["headers"] == {"Content-Type": "video/mp4", "Content-Length": str(len(BODY))}

    put = requests.put(ticket["url"], data=BODY, headers=ticket["headers"], timeout=10)
    assert put.status_code == 200, put.text

    stored = s3_client.get_object(Bucket=s3_env, Key=f"pending/{NAME}")
    assert stored["Body"].read() == BODY
    assert stored["ContentType"] == "video/mp4"


def test_the_url_is_sigv4_with_type_and_length_signed_and_expires_as_configured(api, airflow_auth, s3_env) -> None:
    ticket = _ticket(api, airflow_auth).json()
    query = parse_qs(urlsplit(ticket["url"]).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert query["X-Amz-Expires"] == ["300"]  # VIDEO_PIPELINE_UPLOAD_URL_EXPIRY_MINUTES=5


def test_a_mismatched_type_or_length_breaks_the_signature(api, airflow_auth, s3_env) -> None:
    # moto accepts any presigned PUT (it does not verify query signatures), so the
    # refusal is shown the way AWS, MinIO or Ceph decide it: by recomputing the signature.
    ticket = _ticket(api, airflow_auth).json()
    url, signature = ticket["url"], signature_of(ticket["url"])
    assert expected_signature(url, "PUT", ticket["headers"], S3_TEST_SECRET_KEY) == signature
    for changed in (
        {"Content-Length": str(len(BODY) + 1)},
        {"Content-Length": str(10 * len(BODY))},
        {"Content-Type": "application/pdf"},
        {"Content-Type": "video/quicktime"},
    ):
        headers = {**ticket["headers"], **changed}
        assert expected_signature(url, "PUT", headers, S3_TEST_SECRET_KEY) != signature, changed
    assert expected_signature(url, "PUT", ticket["headers"], "another-secret") != signature


def test_the_presigned_post_uploads_and_its_policy_caps_size_and_type(api, airflow_auth, s3_env, s3_client) -> None:
    post = _ticket(api, airflow_auth, filename="browser upload.webm", content_type="video/webm").json()["post"]
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, len(BODY)] in conditions
    assert {"Content-Type": "video/webm"} in conditions
    assert {"key": "pending/browser upload.webm"} in conditions

    response = requests.post(
        post["url"], data=post["fields"], files={"file": ("browser upload.webm", BODY)}, timeout=10
    )
    assert response.status_code in {200, 204}, response.text
    assert s3_client.get_object(Bucket=s3_env, Key="pending/browser upload.webm")["Body"].read() == BODY


def test_a_taken_name_gets_a_number_and_finished_originals_count_as_taken(api, airflow_auth, s3_env, s3_client) -> None:
    s3_client.put_object(Bucket=s3_env, Key=f"pending/{NAME}", Body=b"first")
    s3_client.put_object(Bucket=s3_env, Key="completed/команда A/Встреча 1 (2).mp4", Body=b"done earlier")
    ticket = _ticket(api, airflow_auth).json()
    assert ticket["renamed"] is True
    assert ticket["key"] == "pending/команда A/Встреча 1 (3).mp4"
    assert requests.put(ticket["url"], data=BODY, headers=ticket["headers"], timeout=10).status_code == 200
    assert s3_client.get_object(Bucket=s3_env, Key=f"pending/{NAME}")["Body"].read() == b"first"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"size_bytes": 1024 * 1024 + 1}, "over the limit of 1048576 bytes"),
        ({"size_bytes": 0}, "empty file"),
        ({"content_type": "application/pdf", "filename": "notes.pdf"}, "'application/pdf' is not accepted"),
        ({"content_type": "text/html", "filename": "page.mp4"}, "is not accepted"),
        ({"content_type": "video/mp4", "filename": "notes.pdf"}, "does not match content type 'video/mp4'"),
        ({"filename": "../secrets.mp4"}, "'..'"),
        ({"filename": "a/../../b.mp4"}, "'..'"),
        ({"filename": "/etc/clip.mp4"}, "relative"),
        ({"filename": "clip\n.mp4"}, "control character"),
        ({"filename": "evil\u202e4pm.exe.mp4"}, "text-direction"),
        ({"filename": "x.mp4.error.json"}, "is an error report"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_422(api, airflow_auth, s3_env, s3_client, overrides, message) -> None:
    response = _ticket(api, airflow_auth, **overrides)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert s3_client.list_objects_v2(Bucket=s3_env).get("KeyCount", 0) == 0


def test_local_storage_answers_501_pointing_at_the_folder(api, airflow_auth, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VIDEO_PIPELINE_STORAGE", "local")
    monkeypatch.setenv("VIDEO_PIPELINE_LOCAL_ROOT", str(tmp_path))
    response = _ticket(api, airflow_auth)
    assert response.status_code == 501
    assert str(tmp_path / "pending") in response.json()["detail"]
