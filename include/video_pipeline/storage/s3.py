"""An S3-compatible bucket (AWS, Beget, GCS's XML API, MinIO) behind the ObjectStore contract."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.video_pipeline.core.errors import PermanentError
from include.video_pipeline.storage.base import ObjectInfo

if TYPE_CHECKING:
    from include.video_pipeline.config import Settings

log = logging.getLogger(__name__)

# Multipart thresholds: big uploads stream in 64 MiB parts with a few threads,
# so a 2 GB video never sits in memory and a dropped part is retried alone.
_PART_SIZE = 64 * 1024 * 1024


def botocore_config_kwargs(settings: Settings) -> dict[str, Any]:
    """The botocore ``Config`` of every S3 client the pipeline builds (store, sensor, presigning).

    * "standard" retry mode retries 500/503/SlowDown and dropped connections with
      exponential backoff; S3-compatible services throttle more eagerly than AWS,
      so it allows more attempts than the default three.
    * checksums: boto3 >= 1.36 computes a CRC on every upload and validates the
      full-object checksum on every download ("when_supported"). Stores that
      report a part-based checksum as the object's (moto, several S3-compatible
      services, an object uploaded in parts and then copied) fail every download
      of such an object, and some stores refuse the new upload headers.
      "when_required" sends and checks checksums only where the API demands them;
      integrity is still checked (Content-MD5 where required, the move's size
      check, the manifest's SHA-256). Per provider: docs/buckets.md.
    """
    kwargs: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": 8},
        "connect_timeout": 10,
        "read_timeout": 120,
        "request_checksum_calculation": settings.s3_request_checksum,
        "response_checksum_validation": settings.s3_response_checksum,
    }
    if settings.s3_endpoint_url:
        kwargs["s3"] = {"addressing_style": "path"}
    return kwargs


class StorageRefused(PermanentError):
    """The bucket refused a request in a way no retry can change; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# S3 error codes that mean "fix the configuration", never "try again".
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem"}
_CHECKSUM_REFUSED = {"XAmzContentSHA256Mismatch", "InvalidDigest", "NotImplemented", "InvalidArgument"}


def _refusal(exc: BaseException, action: str, key: str) -> StorageRefused | None:
    """The permanent error that ``exc`` stands for, or None when a retry may help."""
    from botocore.exceptions import ClientError, FlexibleChecksumError

    if isinstance(exc, FlexibleChecksumError):
        return StorageRefused(
            "storage_checksum_mismatch",
            f"{action} {key!r}: the store's checksum does not match the bytes it sent, twice ({exc}); "
            "S3-compatible stores often report a part-based checksum for multipart objects: set "
            "VIDEO_PIPELINE_S3_RESPONSE_CHECKSUM=when_required (docs/buckets.md)",
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        detail = f"{code}: {error.get('Message') or exc}"
        if code in _DENIED:
            return StorageRefused(
                "storage_access_denied",
                f"{action} {key!r} was refused ({detail}); check the keys and the bucket policy of the "
                "aws_default connection",
            )
        if code == "NoSuchBucket":
            return StorageRefused("storage_bucket_missing", f"{action} {key!r}: {detail}; check VIDEO_PIPELINE_BUCKET")
        if code == "XAmzContentSHA256Mismatch" or (code in _CHECKSUM_REFUSED and "checksum" in detail.lower()):
            return StorageRefused(
                "storage_checksum_unsupported",
                f"{action} {key!r}: the store refused boto3's checksum headers ({detail}); set "
                "VIDEO_PIPELINE_S3_REQUEST_CHECKSUM=when_required (docs/buckets.md)",
            )
    return None


@contextmanager
def _refusals_are_permanent(action: str, key: str) -> Iterator[None]:
    """Re-raise what cannot heal by retrying as ``StorageRefused``; anything else as it came."""
    try:
        yield
    except StorageRefused:
        raise
    except Exception as exc:
        refusal = _refusal(exc, action, key)
        if refusal is None:
            raise
        raise refusal from exc


class S3Store:
    """``client`` is a boto3 S3 client (built by ObjectStoreHook from an Airflow connection)."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}"

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=_PART_SIZE, multipart_chunksize=_PART_SIZE, max_concurrency=4)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _refusals_are_permanent("listing", prefix):
            pages = list(paginator.paginate(Bucket=self.bucket, Prefix=prefix))
        for page in pages:
            for item in page.get("Contents", ()):
                yield ObjectInfo(
                    key=item["Key"],
                    size=int(item["Size"]),
                    etag=str(item.get("ETag", "")).strip('"'),
                    last_modified=item["LastModified"],
                )

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            with _refusals_are_permanent("reading the metadata of", key):
                response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=str(response.get("ETag", "")).strip('"'),
            last_modified=response["LastModified"],
        )

    def download(self, key: str, path: Path) -> None:
        from botocore.exceptions import FlexibleChecksumError

        with _refusals_are_permanent("downloading", key):
            try:
                self.client.download_file(self.bucket, key, str(path), Config=self._transfer_config())
            except FlexibleChecksumError:
                # Bytes damaged in transit heal on a second download; a store whose
                # checksum never matches does not, and is refused for good below.
                log.warning("Checksum mismatch downloading %s; downloading once more", key)
                self.client.download_file(self.bucket, key, str(path), Config=self._transfer_config())

    def upload(self, path: Path, key: str, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        with _refusals_are_permanent("uploading", key):
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs=extra, Config=self._transfer_config())

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        with _refusals_are_permanent("writing", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    def get_bytes(self, key: str) -> bytes:
        with _refusals_are_permanent("reading", key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def copy(self, source: str, destination: str) -> None:
        # The managed copy switches to multipart above the threshold; a plain
        # CopyObject fails for objects over 5 GB.
        with _refusals_are_permanent("copying", source):
            self.client.copy(
                {"Bucket": self.bucket, "Key": source}, self.bucket, destination, Config=self._transfer_config()
            )

    def delete(self, key: str) -> None:
        with _refusals_are_permanent("deleting", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def presigned_url(self, key: str, *, expires_seconds: int) -> str:
        # SigV4 (ObjectStoreHook.s3_client): at most a week, the longest SigV4 allows.
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_seconds, HttpMethod="GET"
            )
        )
