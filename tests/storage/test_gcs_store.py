"""The native GCS store against the GCS emulator (a process), through the proxy that applies GCS's preconditions.

The store is built as every task builds it (ObjectStoreHook -> GCSHook on
``google_cloud_default``); the contract tests shared with S3 and the local
folder are in test_stores.py. Here: what only GCS has (generations,
preconditions, signed URLs, credentials without a key) and the fault cases.
"""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from include.video_pipeline.config import ConfigError, load_settings
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.storage.base import move_object
from tests.fakes import gcs_emulator as gcs
from tests.fakes.gcs_emulator import (
    VM_SERVICE_ACCOUNT,
    FaultRule,
    GoogleAuthServer,
    emulator_client,
    service_account_key,
    verify_v4_signed_url,
)

# The emulator process (session), the proxy in front of it and a fresh bucket per test.
gcs_emulator, gcs_proxy, gcs_bucket = gcs.gcs_emulator, gcs.gcs_proxy, gcs.gcs_bucket


def _store(bucket: str):
    settings = load_settings({"VIDEO_PIPELINE_STORAGE": "gcs", "VIDEO_PIPELINE_BUCKET": bucket})
    return ObjectStoreHook(settings=settings).get_store()


def _blob(bucket: str, key: str):
    return emulator_client().bucket(bucket).get_blob(key)


def _keys(bucket: str, prefix: str = "") -> list[str]:
    return sorted(b.name for b in emulator_client().list_blobs(bucket, prefix=prefix))


def _ops(proxy, *ops: str) -> list[tuple[str, str, int | None]]:
    return [(e.op, e.key, e.status) for e in proxy.log if e.op in ops]


@pytest.fixture
def auth_server():
    with GoogleAuthServer() as server:
        yield server


@pytest.fixture
def key_connection(gcs_bucket, auth_server, monkeypatch):
    """``google_cloud_default`` holding a service-account key (made here) whose tokens come from loopback."""
    key, public = service_account_key(auth_server.token_uri)
    auth_server.trust(key["client_email"], public)
    connection = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(key)}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    return key, public


# -- settings -----------------------------------------------------------------------------


def test_gcs_needs_only_a_bucket_name():
    settings = load_settings({"VIDEO_PIPELINE_STORAGE": "gcs", "VIDEO_PIPELINE_BUCKET": "my-videos"})
    assert settings.storage == "gcs" and settings.location == "gs://my-videos"
    assert settings.analysis.gcp_conn_id == "google_cloud_default"
    with pytest.raises(ConfigError, match="VIDEO_PIPELINE_STORAGE=gcs needs VIDEO_PIPELINE_BUCKET"):
        load_settings({"VIDEO_PIPELINE_STORAGE": "gcs"})
    # The bucket's URI says it all: one variable on a GCE VM.
    from_uri = load_settings({"VIDEO_PIPELINE_BUCKET": "gs://my-videos/"})
    assert (from_uri.storage, from_uri.bucket) == ("gcs", "my-videos")
    assert load_settings({"VIDEO_PIPELINE_BUCKET": "s3://team-videos"}).storage == "s3"
    with pytest.raises(ConfigError, match="is a gcs URI but VIDEO_PIPELINE_STORAGE=s3"):
        load_settings({"VIDEO_PIPELINE_BUCKET": "gs://my-videos", "VIDEO_PIPELINE_STORAGE": "s3"})
    for bad in ("gs://", "gs://a/b", "ftp://videos"):
        with pytest.raises(ConfigError, match="must be a bucket name, gs://name or s3://name"):
            load_settings({"VIDEO_PIPELINE_BUCKET": bad})


# -- moves: preconditions -------------------------------------------------------------------


def test_a_move_copies_one_generation_onto_nothing_then_deletes_only_that_generation(gcs_bucket, gcs_proxy):
    store = _store(gcs_bucket)
    store.put_bytes("pending/a.mp4", b"payload")
    generation = _blob(gcs_bucket, "pending/a.mp4").generation
    gcs_proxy.clear()

    move_object(store, "pending/a.mp4", "processing/a.mp4")

    (copy,) = [e for e in gcs_proxy.log if e.op == "COPY"]
    assert copy.query["ifGenerationMatch"] == "0"
    assert copy.query["ifSourceGenerationMatch"] == str(generation)
    (delete,) = [e for e in gcs_proxy.log if e.op == "DELETE"]
    assert delete.key == "pending/a.mp4" and delete.query["ifGenerationMatch"] == str(generation)
    assert _keys(gcs_bucket) == ["processing/a.mp4"]
    # The identity the ledger keys on (MD5, as S3 and GCS's XML API report it) survives the move.
    assert store.head("processing/a.mp4").etag == "321c3cf486ed509164edec1e1981fec8"


def test_a_new_upload_under_the_same_name_during_a_move_is_kept(gcs_bucket, gcs_proxy):
    """Copy done; the user uploads a new version to the same key; the delete must not take it."""
    store = _store(gcs_bucket)
    store.put_bytes("pending/talk.mp4", b"first version")
    store.copy("pending/talk.mp4", "processing/talk.mp4")
    emulator_client().bucket(gcs_bucket).blob("pending/talk.mp4").upload_from_string(b"second version")

    store.delete("pending/talk.mp4")

    assert ("DELETE", "pending/talk.mp4", 412) in _ops(gcs_proxy, "DELETE")
    assert _blob(gcs_bucket, "pending/talk.mp4").download_as_bytes() == b"second version"
    assert _blob(gcs_bucket, "processing/talk.mp4").download_as_bytes() == b"first version"


def test_copy_onto_other_content_replaces_only_the_generation_it_inspected(gcs_bucket, gcs_proxy):
    """Re-publishing an output: the old object is replaced, by a precondition on its own generation."""
    store = _store(gcs_bucket)
    store.put_bytes("outputs/v/report.html", b"<html>old</html>")
    old = _blob(gcs_bucket, "outputs/v/report.html").generation
    store.put_bytes("staging/v/report.html", b"<html>new</html>")
    gcs_proxy.clear()

    store.copy("staging/v/report.html", "outputs/v/report.html")

    copies = [(e.query["ifGenerationMatch"], e.status) for e in gcs_proxy.log if e.op == "COPY"]
    assert copies == [("0", 412), (str(old), 200)]
    assert _blob(gcs_bucket, "outputs/v/report.html").download_as_bytes() == b"<html>new</html>"


# -- faults -------------------------------------------------------------------------------------


def test_errors_on_copy(gcs_bucket, gcs_proxy):
    store = _store(gcs_bucket)
    store.put_bytes("pending/a.mp4", b"a" * 4096)
    store.put_bytes("pending/b.mp4", b"b" * 4096)

    # Refused for good (no permission): the source stays, nothing is deleted.
    gcs_proxy.add_rule(FaultRule(op="COPY", fault="403", key_contains="processing/a.mp4"))
    with pytest.raises(Exception, match="403"):
        move_object(store, "pending/a.mp4", "processing/a.mp4")
    assert _keys(gcs_bucket, "pending/") == ["pending/a.mp4", "pending/b.mp4"]
    assert not _ops(gcs_proxy, "DELETE")

    # A 503 is retried by the client; GCS did the copy but the answer was lost: the retry
    # meets the destination (412), finds the same content and the move goes on.
    gcs_proxy.add_rule(FaultRule(op="COPY", fault="503", key_contains="processing/b.mp4"))
    gcs_proxy.add_rule(FaultRule(op="COPY", fault="drop_after", key_contains="processing/b.mp4"))
    move_object(store, "pending/b.mp4", "processing/b.mp4")
    copies = [s for op, key, s in _ops(gcs_proxy, "COPY") if key == "processing/b.mp4"]
    assert copies == [503, 200, 412]
    assert _keys(gcs_bucket) == ["pending/a.mp4", "processing/b.mp4"]
    assert _blob(gcs_bucket, "processing/b.mp4").download_as_bytes() == b"b" * 4096


def test_errors_on_delete(gcs_bucket, gcs_proxy):
    store = _store(gcs_bucket)
    store.put_bytes("processing/a.mp4", b"a" * 100)
    store.put_bytes("processing/b.mp4", b"b" * 100)

    # Keys that may copy but not delete: the move fails with both copies present...
    gcs_proxy.add_rule(FaultRule(op="DELETE", fault="403", key_contains="processing/a.mp4"))
    with pytest.raises(Exception, match="403"):
        move_object(store, "processing/a.mp4", "completed/a.mp4")
    assert _keys(gcs_bucket, "") == ["completed/a.mp4", "processing/a.mp4", "processing/b.mp4"]
    # ... an interrupted move, exactly: the next attempt converges on one copy.
    move_object(store, "processing/a.mp4", "completed/a.mp4")
    assert _keys(gcs_bucket, "") == ["completed/a.mp4", "processing/b.mp4"]

    # The delete happened but its answer was lost: the retry's 404 means done.
    gcs_proxy.add_rule(FaultRule(op="DELETE", fault="drop_after", key_contains="processing/b.mp4"))
    move_object(store, "processing/b.mp4", "completed/b.mp4")
    deletes = [s for op, key, s in _ops(gcs_proxy, "DELETE") if key == "processing/b.mp4"]
    assert deletes[1:] == [404] and deletes[0] in (200, 204)  # the emulator answers 200, GCS 204
    assert _keys(gcs_bucket, "") == ["completed/a.mp4", "completed/b.mp4"]


# -- streaming ----------------------------------------------------------------------------------


def test_big_files_upload_resumably_in_chunks_and_download_whole(gcs_bucket, gcs_proxy, tmp_path, monkeypatch):
    from include.video_pipeline.storage import gcs

    # Above 8 MiB the client switches to a resumable session; 4 MiB chunks (the real ones are 32 MiB).
    monkeypatch.setattr(gcs, "CHUNK_SIZE", 4 * 1024 * 1024)
    source = tmp_path / "big.mp4"
    source.write_bytes(os.urandom(9 * 1024 * 1024 + 17))
    store = _store(gcs_bucket)
    gcs_proxy.clear()
    store.upload(source, "pending/big.mp4", content_type="video/mp4")

    uploads = [e for e in gcs_proxy.log if e.op == "UPLOAD"]
    assert uploads[0].query["uploadType"] == "resumable" and len(uploads) == 1 + 3  # start + 3 chunks
    assert _blob(gcs_bucket, "pending/big.mp4").content_type == "video/mp4"
    target = tmp_path / "back.mp4"
    store.download("pending/big.mp4", target)
    assert target.read_bytes() == source.read_bytes()


# -- credentials and signed URLs ------------------------------------------------------------------


def test_a_service_account_key_in_the_connection_authenticates_and_signs(
    gcs_bucket, gcs_proxy, key_connection, auth_server
):
    key, public = key_connection
    store = _store(gcs_bucket)
    store.put_bytes("outputs/v/report.html", b"<html>report</html>", content_type="text/html")
    assert auth_server.tokens_issued[:1] == [key["client_email"]]  # the JWT the key signed was accepted

    url = store.signed_url("outputs/v/report.html", expires_seconds=7 * 24 * 3600)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Credential"][0].startswith(key["client_email"] + "/")
    assert query["X-Goog-Expires"] == ["604800"]
    assert verify_v4_signed_url(url, "GET", {}, public)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"<html>report</html>"


def test_a_signed_put_binds_type_and_length_and_uploads_into_pending(gcs_bucket, gcs_proxy, key_connection):
    from include.video_pipeline.api.presign import GcsSigner, presign_post, presign_put, upload_headers
    from include.video_pipeline.api.uploads import validate_upload

    _, public = key_connection
    body = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256))
    upload = validate_upload(
        filename="team/Встреча 1.mp4", content_type="video/mp4", size_bytes=len(body), max_upload_bytes=10**6
    )
    signer = GcsSigner(_store(gcs_bucket))
    url = presign_put(signer, gcs_bucket, "pending/team/Встреча 1.mp4", upload, 300)
    headers = upload_headers(signer, upload)
    assert headers["x-goog-content-length-range"] == f"{len(body)},{len(body)}"
    assert parse_qs(urlsplit(url).query)["X-Goog-SignedHeaders"] == ["content-type;host;x-goog-content-length-range"]
    assert verify_v4_signed_url(url, "PUT", headers, public)
    # Another type or another size is not what was signed: GCS refuses it.
    assert not verify_v4_signed_url(url, "PUT", {**headers, "Content-Type": "application/pdf"}, public)
    assert not verify_v4_signed_url(url, "PUT", {**headers, "x-goog-content-length-range": "0,99999999"}, public)

    put = requests.put(url, data=body, headers=headers, timeout=10)
    assert put.status_code == 200, put.text
    stored = _blob(gcs_bucket, "pending/team/Встреча 1.mp4")
    assert stored.download_as_bytes() == body and stored.content_type == "video/mp4"

    post = presign_post(signer, gcs_bucket, "pending/team/Встреча 1.mp4", upload, 300)
    policy = json.loads(base64.b64decode(post.fields["policy"]))
    assert ["content-length-range", 1, len(body)] in policy["conditions"]
    assert {"Content-Type": "video/mp4"} in policy["conditions"]
    assert {"key": "pending/team/Встреча 1.mp4"} in policy["conditions"]
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    public.verify(
        bytes.fromhex(post.fields["x-goog-signature"]),
        post.fields["policy"].encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_on_a_gce_vm_the_bucket_name_is_all_it_takes(gcs_bucket, gcs_proxy, auth_server, monkeypatch, tmp_path):
    """No connection, no key file: the VM's service account from the metadata server (here on loopback)."""
    for name in ("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))  # no user credentials of gcloud's
    monkeypatch.setenv("GCE_METADATA_HOST", auth_server.host)
    monkeypatch.setenv("GCE_METADATA_IP", auth_server.host)
    # google-auth reads GCE_METADATA_HOST once, when imported (long ago in this process).
    from google.auth.compute_engine import _metadata

    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", auth_server.host)

    store = _store(gcs_bucket)
    store.put_bytes("pending/a.mp4", b"x")
    assert [o.key for o in store.list("pending/")] == ["pending/a.mp4"]
    assert VM_SERVICE_ACCOUNT in auth_server.tokens_issued
    # No private key on a VM: URLs are signed by IAM signBlob as the VM's own account.
    signing = store._signing()
    assert signing["service_account_email"] == VM_SERVICE_ACCOUNT and signing["access_token"].startswith("ya29.vm-")


def test_anonymous_credentials_cannot_sign_and_the_outputs_link_falls_back_to_the_console(gcs_bucket, gcs_proxy):
    from include.video_pipeline.operators.links import gcs_report_link
    from include.video_pipeline.storage.gcs import SigningUnavailable

    store = _store(gcs_bucket)
    with pytest.raises(SigningUnavailable):
        store.signed_url("outputs/v/report.html", expires_seconds=60)
    link = gcs_report_link(store, "outputs/v id/report.html")
    assert link == f"https://console.cloud.google.com/storage/browser/_details/{gcs_bucket}/outputs/v%20id/report.html"


# -- the sensor -------------------------------------------------------------------------------------


def test_the_sensor_counts_uploads_never_folder_markers(gcs_bucket, gcs_proxy, monkeypatch):
    from airflow.providers.google.cloud.sensors.gcs import GCSObjectsWithPrefixExistenceSensor
    from airflow.sdk.exceptions import AirflowSkipException

    from include.video_pipeline.operators.sensors import pending_uploads_sensor

    monkeypatch.setenv("VIDEO_PIPELINE_STORAGE", "gcs")
    monkeypatch.setenv("VIDEO_PIPELINE_BUCKET", gcs_bucket)
    sensor = pending_uploads_sensor(task_id="wait_for_uploads")
    assert isinstance(sensor, GCSObjectsWithPrefixExistenceSensor)
    assert sensor.bucket == gcs_bucket and sensor.prefix == "pending/"
    bucket = emulator_client().bucket(gcs_bucket)
    bucket.blob("pending/").upload_from_string(b"")  # the console's "create folder"
    bucket.blob("pending/team a/").upload_from_string(b"")
    waiting = {"params": {"one_shot": False, "reprocess": "none"}}
    assert sensor.poke(waiting) is False
    with pytest.raises(AirflowSkipException, match=f"gs://{gcs_bucket}/pending/"):
        sensor.poke({"params": {"one_shot": True, "reprocess": "none"}})
    bucket.blob("pending/team a/clip.mp4").upload_from_string(b"video")
    assert sensor.poke(waiting) is True
    # Deferrable mode would hand the wait to the provider's trigger, which counts folder markers.
    monkeypatch.setenv("VIDEO_PIPELINE_SENSOR_DEFERRABLE", "true")
    with pytest.raises(ConfigError, match="not supported with VIDEO_PIPELINE_STORAGE=gcs"):
        pending_uploads_sensor(task_id="wait_for_uploads")
