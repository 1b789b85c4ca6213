"""Presigned URLs for the configured bucket: uploads into pending/, downloads of outputs.

URLs are signed with Signature Version 4 on purpose: SigV4 signs the request
headers it lists in ``X-Amz-SignedHeaders``, so ``Content-Type`` and
``Content-Length`` become part of the signature and an endpoint that verifies
signatures (AWS, MinIO, Ceph/Beget, GCS's XML API with HMAC keys) refuses a PUT
that sends another type or another number of bytes. boto3's legacy default for
presigning (SigV2 on some endpoints) signs neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from include.video_pipeline.api.settings import ApiSettings
from include.video_pipeline.api.uploads import UploadRequest
from include.video_pipeline.config import Settings


@dataclass(frozen=True)
class PresignedPost:
    """An HTML-form style upload: POST ``url`` with ``fields`` and then the file."""

    url: str
    fields: dict[str, str]


def signing_client(settings: Settings, api_settings: ApiSettings) -> Any:
    """A boto3 S3 client that signs with SigV4 for the endpoint clients will reach.

    Credentials and region come from the same Airflow connection the pipeline
    uses (``aws_conn_id``). Signing is local computation: this client makes no
    request unless asked to.

    With ``VIDEO_PIPELINE_STORAGE=gcs`` it is a :class:`GcsSigner` instead (V4
    signed URLs of the native store); the ``presign_*`` functions take either.
    """
    from include.video_pipeline.hooks.object_store import ObjectStoreHook

    if settings.storage == "gcs":
        return GcsSigner(ObjectStoreHook(settings=settings).get_store(), api_settings.public_endpoint_url)
    return ObjectStoreHook(settings=settings).s3_client(endpoint_url=api_settings.public_endpoint_url)


def presign_put(client: Any, bucket: str, key: str, upload: UploadRequest, expires_seconds: int) -> str:
    """A PUT URL bound to exactly this key, content type and byte count."""
    if isinstance(client, GcsSigner):
        return client.put(key, upload, expires_seconds)
    return str(
        client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": bucket,
                "Key": key,
                "ContentType": upload.content_type,
                "ContentLength": upload.size_bytes,
            },
            ExpiresIn=expires_seconds,
            HttpMethod="PUT",
        )
    )


def presign_post(client: Any, bucket: str, key: str, upload: UploadRequest, expires_seconds: int) -> PresignedPost:
    """A POST form whose policy pins the key and type and caps the size at the declared one.

    S3 checks a POST policy's ``content-length-range`` against the file part
    itself, which also works for browsers that cannot set Content-Length.
    """
    if isinstance(client, GcsSigner):
        url, fields = client.store.signed_post(
            key, content_type=upload.content_type, max_bytes=upload.size_bytes, expires_seconds=expires_seconds
        )
        return PresignedPost(url=url, fields=fields)
    response = client.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": upload.content_type},
        Conditions=[
            {"Content-Type": upload.content_type},
            ["content-length-range", 1, upload.size_bytes],
        ],
        ExpiresIn=expires_seconds,
    )
    return PresignedPost(url=str(response["url"]), fields={k: str(v) for k, v in response["fields"].items()})


def presign_get(client: Any, bucket: str, key: str, expires_seconds: int) -> str:
    if isinstance(client, GcsSigner):
        return str(client.store.signed_url(key, expires_seconds=expires_seconds, api_endpoint=client.endpoint))
    from include.video_pipeline.storage.s3 import S3Store

    return S3Store(client, bucket).presigned_url(key, expires_seconds=expires_seconds)


def upload_headers(client: Any, upload: UploadRequest) -> dict[str, str]:
    """The headers a PUT to :func:`presign_put`'s URL must send (each one is signed)."""
    headers = {"Content-Type": upload.content_type, "Content-Length": str(upload.size_bytes)}
    if isinstance(client, GcsSigner):
        headers[GCS_LENGTH_HEADER] = f"{upload.size_bytes},{upload.size_bytes}"
    return headers


# GCS refuses a PUT to a signed URL whose body is outside this range; signed, so it cannot be dropped.
GCS_LENGTH_HEADER = "x-goog-content-length-range"


@dataclass(frozen=True)
class GcsSigner:
    """V4 signing for a GCS bucket through the pipeline's ``GCSStore`` (storage/gcs.py)."""

    store: Any
    endpoint: str | None = None  # ApiSettings.public_endpoint_url; None = storage.googleapis.com

    def put(self, key: str, upload: UploadRequest, expires_seconds: int) -> str:
        return str(
            self.store.signed_url(
                key,
                expires_seconds=expires_seconds,
                method="PUT",
                content_type=upload.content_type,
                headers={GCS_LENGTH_HEADER: f"{upload.size_bytes},{upload.size_bytes}"},
                api_endpoint=self.endpoint,
            )
        )
