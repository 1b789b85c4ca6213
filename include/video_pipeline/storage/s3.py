"""An S3-compatible bucket (AWS, Beget, GCS's XML API, MinIO) behind the ObjectStore contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from include.video_pipeline.storage.base import ObjectInfo

# Multipart thresholds: big uploads stream in 64 MiB parts with a few threads,
# so a 2 GB video never sits in memory and a dropped part is retried alone.
_PART_SIZE = 64 * 1024 * 1024


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
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
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
        self.client.download_file(self.bucket, key, str(path), Config=self._transfer_config())

    def upload(self, path: Path, key: str, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        self.client.upload_file(str(path), self.bucket, key, ExtraArgs=extra, Config=self._transfer_config())

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    def get_bytes(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def copy(self, source: str, destination: str) -> None:
        # The managed copy switches to multipart above the threshold; a plain
        # CopyObject fails for objects over 5 GB.
        self.client.copy(
            {"Bucket": self.bucket, "Key": source}, self.bucket, destination, Config=self._transfer_config()
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
