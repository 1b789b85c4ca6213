"""Every store honours the same contract: S3 over HTTP to a local endpoint, GCS to its emulator, a local folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.video_pipeline.config import load_settings
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.storage.base import MoveNotVerified, ObjectMissing, move_object
from include.video_pipeline.storage.local import LocalFolderStore, UnsafeKey
from tests.fakes.gcs_emulator import gcs_bucket, gcs_emulator, gcs_proxy  # noqa: F401  (fixtures)


@pytest.fixture(params=["local", "s3", "gcs"])
def store(request, tmp_path):
    if request.param == "local":
        settings = load_settings({"VIDEO_PIPELINE_LOCAL_ROOT": str(tmp_path / "root")})
    elif request.param == "gcs":
        bucket = request.getfixturevalue("gcs_bucket")
        settings = load_settings({"VIDEO_PIPELINE_STORAGE": "gcs", "VIDEO_PIPELINE_BUCKET": bucket})
    else:
        bucket = request.getfixturevalue("s3_bucket")
        settings = load_settings({"VIDEO_PIPELINE_STORAGE": "s3", "VIDEO_PIPELINE_BUCKET": bucket})
    return ObjectStoreHook(settings=settings).get_store()


NAMES = ["plain.mp4", "team a/Встреча 1 (final).mov", 'quote\'s "name".mkv']


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_keeps_names_and_bytes(store, tmp_path: Path, name: str):
    source = tmp_path / "source.bin"
    source.write_bytes(b"\x00video\xffbytes" * 1000)
    store.upload(source, f"pending/{name}")

    listed = list(store.list("pending/"))
    assert [o.key for o in listed] == [f"pending/{name}"]
    assert listed[0].size == source.stat().st_size
    assert listed[0].etag

    target = tmp_path / "back.bin"
    store.download(f"pending/{name}", target)
    assert target.read_bytes() == source.read_bytes()


# Not GCS: its emulator returns every key in one page, so 1005 keys would prove nothing
# there. GCSStore.list is google-cloud-storage's own iterator, which follows nextPageToken.
@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_listing_follows_pagination(store):
    for index in range(1005):  # S3 pages hold 1000 keys
        store.put_bytes(f"pending/clip-{index:04d}.mp4", b"x")
    keys = [o.key for o in store.list("pending/")]
    assert len(keys) == 1005
    assert keys == sorted(keys)


def test_move_is_copy_verify_delete_and_idempotent(store):
    store.put_bytes("pending/a.mp4", b"payload")
    etag = store.head("pending/a.mp4").etag

    move_object(store, "pending/a.mp4", "processing/a.mp4")
    assert store.head("pending/a.mp4") is None
    assert store.get_bytes("processing/a.mp4") == b"payload"
    assert store.head("processing/a.mp4").etag == etag  # identity survives the move

    # A second attempt (callback and reconcile both trying) is a no-op.
    move_object(store, "pending/a.mp4", "processing/a.mp4")
    assert store.get_bytes("processing/a.mp4") == b"payload"

    with pytest.raises(ObjectMissing):
        move_object(store, "pending/gone.mp4", "processing/gone.mp4")


def test_interrupted_move_converges(store):
    """Copy done, delete lost (worker killed): the next attempt finishes the move."""
    store.put_bytes("processing/b.mp4", b"data")
    store.copy("processing/b.mp4", "completed/b.mp4")
    move_object(store, "processing/b.mp4", "completed/b.mp4")
    assert store.head("processing/b.mp4") is None
    assert store.get_bytes("completed/b.mp4") == b"data"


def test_source_is_kept_when_the_copy_is_short(tmp_path: Path):
    class TruncatingStore(LocalFolderStore):
        def copy(self, source: str, destination: str) -> None:
            self.put_bytes(destination, self.get_bytes(source)[:-1])

    store = TruncatingStore(tmp_path)
    store.put_bytes("processing/c.mp4", b"abcdef")
    with pytest.raises(MoveNotVerified):
        move_object(store, "processing/c.mp4", "completed/c.mp4")
    assert store.get_bytes("processing/c.mp4") == b"abcdef"


@pytest.mark.parametrize("key", ["../escape.mp4", "pending/../../escape.mp4", "/etc/passwd", "a\0b"])
def test_local_store_refuses_keys_outside_its_root(tmp_path: Path, key: str):
    store = LocalFolderStore(tmp_path / "root")
    with pytest.raises(UnsafeKey):
        store.put_bytes(key, b"x")
    assert not (tmp_path / "escape.mp4").exists()


def test_delete_of_missing_key_is_not_an_error(store):
    store.delete("pending/never-existed.mp4")


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_presigned_url_serves_the_object_and_only_it(store, tmp_path: Path):
    """The Outputs link and the API's downloads: a URL that GETs exactly this key, names intact."""
    import urllib.error
    import urllib.request

    key = "outputs/Встреча 1/report.html"
    store.put_bytes(key, "<p>отчёт</p>".encode(), "text/html")

    url = store.presigned_url(key, expires_seconds=300)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == "<p>отчёт</p>".encode()
    if url.startswith("http"):
        # SigV4, so a PUT URL made by the same client signs its type and size (api/presign.py),
        # and path-style: custom endpoints do not all resolve bucket subdomains.
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
        assert url.split("?")[0].split("/")[3] == store.bucket
