"""What real buckets hold besides uploads, and how real S3 clients behave with them.

Against the moto server over HTTP (the same boto3 code path as AWS, Beget, GCS or
MinIO): objects uploaded in parts, then copied between prefixes, download whole
with the pipeline's checksum settings; with boto3's own default they fail every
time, and the pipeline says so as a permanent error with a reason instead of
retrying. Folder markers never count as uploads, for the sensor as for the claim.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from include.video_pipeline.config import load_settings
from include.video_pipeline.core.errors import FailureReport, PermanentError
from include.video_pipeline.core.states import Prefixes, is_folder_marker, is_upload_key
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.storage.base import move_object
from include.video_pipeline.storage.s3 import StorageRefused, botocore_config_kwargs

MIB = 1024 * 1024
# boto3's managed upload switches to multipart above 8 MiB (its default threshold and part size).
MULTIPART_UPLOADS = {
    "default-threshold.bin": (9 * MIB, TransferConfig()),
    "small-parts.bin": (11 * MIB, TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)),
}


def _store(bucket: str, **env: str):
    settings = load_settings({"VIDEO_PIPELINE_STORAGE": "s3", "VIDEO_PIPELINE_BUCKET": bucket, **env})
    return ObjectStoreHook(settings=settings).get_store()


@pytest.fixture
def multipart_objects(s3_bucket, s3_client, tmp_path) -> dict[str, bytes]:
    """Objects uploaded in parts by a user's own boto3 (its defaults), into pending/."""
    uploaded = {}
    for name, (size, config) in MULTIPART_UPLOADS.items():
        data = os.urandom(size)
        path = tmp_path / name
        path.write_bytes(data)
        s3_client.upload_file(str(path), s3_bucket, f"pending/{name}", Config=config)
        etag = s3_client.head_object(Bucket=s3_bucket, Key=f"pending/{name}")["ETag"]
        assert "-" in etag, f"{name} was not uploaded in parts: {etag}"
        uploaded[name] = data
    return uploaded


def test_multipart_objects_move_and_download_whole(s3_bucket, multipart_objects, tmp_path: Path):
    store = _store(s3_bucket)
    for name, data in multipart_objects.items():
        move_object(store, f"pending/{name}", f"processing/{name}")  # copy, verify, delete: as a claim does
        target = tmp_path / f"back-{name}"
        store.download(f"processing/{name}", target)
        assert target.read_bytes() == data
        assert store.get_bytes(f"processing/{name}") == data


def test_boto3_default_checksums_fail_for_good_with_a_reason(s3_bucket, multipart_objects, tmp_path: Path):
    """What the pipeline did before: every download of a copied multipart object fails the checksum."""
    store = _store(s3_bucket, VIDEO_PIPELINE_S3_RESPONSE_CHECKSUM="when_supported")
    name = "default-threshold.bin"
    move_object(store, f"pending/{name}", f"processing/{name}")
    with pytest.raises(StorageRefused) as refused:
        store.download(f"processing/{name}", tmp_path / "x.bin")
    assert isinstance(refused.value, PermanentError)  # not retried by Airflow
    assert refused.value.reason == "storage_checksum_mismatch"
    assert "VIDEO_PIPELINE_S3_RESPONSE_CHECKSUM=when_required" in str(refused.value)
    report = FailureReport.from_exception(refused.value, stage="transcode", attempt=1)
    assert report.reason == "storage_checksum_mismatch" and report.retryable is False


def test_every_client_gets_the_checksum_settings():
    settings = load_settings({"VIDEO_PIPELINE_STORAGE": "s3", "VIDEO_PIPELINE_BUCKET": "videos"})
    kwargs = botocore_config_kwargs(settings)
    assert kwargs["request_checksum_calculation"] == "when_required"
    assert kwargs["response_checksum_validation"] == "when_required"
    strict = load_settings(
        {
            "VIDEO_PIPELINE_STORAGE": "s3",
            "VIDEO_PIPELINE_BUCKET": "videos",
            "VIDEO_PIPELINE_S3_REQUEST_CHECKSUM": "when_supported",
        }
    )
    assert botocore_config_kwargs(strict)["request_checksum_calculation"] == "when_supported"
    store = ObjectStoreHook(settings=settings).get_store()
    config = store.client.meta.config  # type: ignore[attr-defined]
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


def test_refused_keys_are_permanent_not_retried(s3_endpoint, s3_bucket, monkeypatch):
    """A real ClientError from the endpoint (no such bucket) becomes a permanent error with its reason."""
    store = _store(f"{s3_bucket}-missing")
    with pytest.raises(StorageRefused) as refused:
        store.put_bytes("pending/a.mp4", b"x")
    assert refused.value.reason == "storage_bucket_missing"


MARKERS = [
    "pending/",
    "pending/team a/",
    "pending/sub/deeper/",
    "pending/old_$folder$",
    "pending/.DS_Store",
    "pending/team a/Thumbs.db",
    "pending/._clip.mp4",
]


@pytest.mark.parametrize("key", MARKERS)
def test_folder_markers_and_desktop_files_are_never_uploads(key):
    assert not is_upload_key(key, Prefixes())
    assert is_folder_marker(key[len("pending/") :] or "/")


@pytest.mark.parametrize("key", ["pending/clip.mp4", "pending/team a/Встреча.mov", "pending/.hidden-talk.mp4"])
def test_real_uploads_still_are(key):
    assert is_upload_key(key, Prefixes())


def _sensor(bucket: str, monkeypatch):
    monkeypatch.setenv("VIDEO_PIPELINE_STORAGE", "s3")
    monkeypatch.setenv("VIDEO_PIPELINE_BUCKET", bucket)
    from include.video_pipeline.operators.sensors import pending_uploads_sensor

    return pending_uploads_sensor(task_id="wait_for_uploads", mode="reschedule", poke_interval=1, timeout=5)


def test_the_s3_sensor_waits_past_folder_markers(s3_bucket, s3_client, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    for key in MARKERS:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"")
    sensor = _sensor(s3_bucket, monkeypatch)
    context = {"params": {"one_shot": False}, "dag_run": None}
    assert sensor.poke(context) is False  # markers only: keep waiting
    with pytest.raises(AirflowSkipException):
        sensor.poke({"params": {"one_shot": True}, "dag_run": None})  # one-shot: nothing to do, skip now
    s3_client.put_object(Bucket=s3_bucket, Key="pending/team a/talk.mp4", Body=b"video")
    assert sensor.poke(context) is True
