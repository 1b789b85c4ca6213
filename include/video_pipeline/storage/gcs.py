"""A Google Cloud Storage bucket, spoken natively (JSON API), behind the ObjectStore contract.

The client comes from the google provider's ``GCSHook``, so credentials are
whatever the Airflow connection ``google_cloud_default`` says (a key file, a
``keyfile_dict``, impersonation, ...). When that connection does not exist,
the provider's own credential chain runs with nothing configured, which is
Application Default Credentials: on a GCE VM, its service account. No HMAC key
is needed anywhere.

Moves never overwrite blindly and never delete what they did not copy:

* ``copy`` rewrites the exact source generation it read
  (``ifSourceGenerationMatch``) onto a destination that must not exist
  (``ifGenerationMatch=0``). If the destination exists (a retried or
  interrupted move, a re-published output), its checksum decides: the same
  content is a copy already made; other content is replaced only in the
  generation that was inspected, never a version someone wrote meanwhile.
* ``delete`` of a key this store just copied deletes only the generation that
  was copied (``ifGenerationMatch``): a new upload under the same name that
  arrived between the copy and the delete is kept, and the next run claims it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from include.video_pipeline.storage.base import ObjectInfo

log = logging.getLogger(__name__)

# Resumable uploads send big files in 32 MiB chunks (a multiple of 256 KiB, as
# GCS requires): a 2 GB video never sits in memory and a dropped chunk is
# resent alone. Smaller files go in one request.
CHUNK_SIZE = 32 * 1024 * 1024
# How many copied-from generations to remember for the delete that follows a copy.
_REMEMBERED_COPIES = 10_000
# V4 signed URLs live at most 7 days.
MAX_SIGNED_SECONDS = 7 * 24 * 3600


class SigningUnavailable(RuntimeError):
    """The credentials cannot sign URLs (anonymous, or user credentials without a service account)."""


def gcs_hook(gcp_conn_id: str) -> Any:
    """The google provider's ``GCSHook`` on ``gcp_conn_id``; Application Default Credentials if it is missing."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    class _GCSHook(GCSHook):
        @classmethod
        def get_connection(cls, conn_id: str) -> Any:
            try:
                return super().get_connection(conn_id)
            except AirflowNotFoundException:
                # An empty Google Cloud connection makes the provider fall back to
                # google.auth.default(): the VM's service account on GCE.
                log.info("No Airflow connection %r; using application default credentials", conn_id)
                return Connection(conn_id=conn_id, conn_type="google_cloud_platform")

    return _GCSHook(gcp_conn_id=gcp_conn_id)


def _hex_md5(blob: Any) -> str | None:
    if not blob.md5_hash:
        return None
    try:
        return base64.b64decode(blob.md5_hash).hex()
    except (binascii.Error, ValueError):
        return str(blob.md5_hash)


def content_identity(blob: Any) -> str:
    """A content checksum that survives copies: the MD5 in hex (what S3 and GCS's XML API call the ETag).

    Composite objects have no MD5, only a CRC32C, which is used instead.
    """
    md5 = _hex_md5(blob)
    if md5:
        return md5
    return f"crc32c-{blob.crc32c or ''}-{blob.size}"


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        key=blob.name,
        size=int(blob.size or 0),
        etag=content_identity(blob),
        # The creation time of this generation: a metadata patch does not make an old upload look new.
        last_modified=blob.time_created or blob.updated,
    )


class GCSStore:
    """``client`` is a ``google.cloud.storage.Client`` (built by ObjectStoreHook through ``GCSHook``)."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket
        self._bucket = client.bucket(bucket)
        self._copied: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"gs://{self.bucket}"

    # The library retries 429/5xx and dropped connections only for idempotent
    # calls. Uploads without a precondition count as not idempotent; ours are
    # (the same bytes to the same key), so they get the default retry too.
    @staticmethod
    def _retry() -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # The iterator follows nextPageToken; GCS lists in lexicographic key order.
        for blob in self.client.list_blobs(self.bucket, prefix=prefix, retry=self._retry()):
            yield _info(blob)

    def head(self, key: str) -> ObjectInfo | None:
        blob = self._bucket.get_blob(key, retry=self._retry())
        return None if blob is None else _info(blob)

    def download(self, key: str, path: Path) -> None:
        # One streamed GET written to the file as it arrives, checksum-verified;
        # the library resumes from the last byte received after a dropped connection.
        self._bucket.blob(key).download_to_filename(str(path), retry=self._retry())

    def upload(self, path: Path, key: str, content_type: str | None = None) -> None:
        blob = self._bucket.blob(key, chunk_size=CHUNK_SIZE)
        blob.upload_from_filename(str(path), content_type=content_type, retry=self._retry())

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        blob = self._bucket.blob(key)
        blob.upload_from_string(data, content_type=content_type or "application/octet-stream", retry=self._retry())

    def get_bytes(self, key: str) -> bytes:
        return bytes(self._bucket.blob(key).download_as_bytes(retry=self._retry()))

    def copy(self, source: str, destination: str) -> None:
        from google.api_core.exceptions import PreconditionFailed

        src = self._bucket.blob(source)
        src.reload(retry=self._retry())  # the generation and checksum of the version being copied
        try:
            self._rewrite(src, destination, if_generation_match=0)
        except PreconditionFailed:
            existing = self._bucket.get_blob(destination, retry=self._retry())
            if existing is not None and content_identity(existing) == content_identity(src):
                # A copy made by an earlier attempt (or a retry whose answer was lost).
                log.info("%s already holds the content of %s", destination, source)
            else:
                generation = existing.generation if existing is not None else 0
                log.info("Replacing %s (generation %s) with %s", destination, generation, source)
                self._rewrite(src, destination, if_generation_match=generation)
        with self._lock:
            self._copied[source] = int(src.generation)
            self._copied.move_to_end(source)
            while len(self._copied) > _REMEMBERED_COPIES:
                self._copied.popitem(last=False)

    def _rewrite(self, src: Any, destination: str, *, if_generation_match: int) -> None:
        # A rewrite copies server-side in as many calls as the object needs (one
        # within a location); unlike copyTo it never times out on big objects.
        target = self._bucket.blob(destination)
        token = None
        while True:
            token, _, _ = target.rewrite(
                src,
                token=token,
                if_generation_match=if_generation_match,
                if_source_generation_match=src.generation,
                retry=self._retry(),
            )
            if token is None:
                return

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        with self._lock:
            generation = self._copied.pop(key, None)
        try:
            self._bucket.delete_blob(key, if_generation_match=generation, retry=self._retry())
        except NotFound:
            return
        except PreconditionFailed:
            log.warning(
                "%s changed after it was copied (a new upload under the same name?); keeping the new version", key
            )

    def presigned_url(self, key: str, *, expires_seconds: int) -> str:
        """A V4 signed GET URL; raises :class:`SigningUnavailable` when the credentials cannot sign."""
        return self.signed_url(key, expires_seconds=expires_seconds)

    # -- signed URLs ---------------------------------------------------------------

    def _signing(self) -> dict[str, Any]:
        """How to sign: a private key in the credentials, else IAM signBlob as the VM's service account."""
        from google.auth import credentials as auth_credentials

        creds = self.client._credentials
        if isinstance(creds, auth_credentials.Signing) and getattr(creds, "service_account_email", None):
            # A service-account key (signed locally) or impersonated credentials (signed through IAM).
            return {"credentials": creds}
        email = getattr(creds, "service_account_email", None)
        if email and not isinstance(creds, auth_credentials.AnonymousCredentials):
            # GCE/GKE metadata credentials hold no private key: sign with the IAM
            # Credentials API's signBlob, as the VM's own service account (it needs
            # roles/iam.serviceAccountTokenCreator on itself).
            if not creds.valid or email == "default":
                import google.auth.transport.requests

                creds.refresh(google.auth.transport.requests.Request())
            return {"service_account_email": creds.service_account_email, "access_token": creds.token}
        raise SigningUnavailable(
            f"the Google Cloud credentials ({type(creds).__name__}) cannot sign URLs: use a service-account key "
            "in the connection, impersonation, or a VM service account"
        )

    def signed_url(
        self,
        key: str,
        *,
        expires_seconds: int,
        method: str = "GET",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        api_endpoint: str | None = None,
    ) -> str:
        """A V4 signed URL; ``content_type`` and ``headers`` are signed, so a request must send exactly those."""
        blob = self._bucket.blob(key)
        return str(
            self._signed(
                blob.generate_signed_url,
                version="v4",
                expiration=timedelta(seconds=min(expires_seconds, MAX_SIGNED_SECONDS)),
                method=method,
                content_type=content_type,
                headers=dict(headers) if headers else None,
                api_access_endpoint=api_endpoint,
            )
        )

    def _signed(self, sign: Any, **kwargs: Any) -> Any:
        from google.auth.exceptions import GoogleAuthError

        signing = self._signing()
        try:
            return sign(**kwargs, **signing)
        except GoogleAuthError as exc:
            # IAM signBlob refused (no roles/iam.serviceAccountTokenCreator) or unreachable.
            who = signing.get("service_account_email") or "the connection's credentials"
            raise SigningUnavailable(f"signing as {who} failed: {type(exc).__name__}: {exc}") from None

    def signed_post(
        self, key: str, *, content_type: str, max_bytes: int, expires_seconds: int
    ) -> tuple[str, dict[str, str]]:
        """An HTML-form upload policy pinned to ``key`` and ``content_type``, capped at ``max_bytes``."""
        policy = self._signed(
            self.client.generate_signed_post_policy_v4,
            bucket_name=self.bucket,
            blob_name=key,
            expiration=timedelta(seconds=min(expires_seconds, MAX_SIGNED_SECONDS)),
            conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            fields={"Content-Type": content_type},
        )
        return str(policy["url"]), {k: str(v) for k, v in policy["fields"].items()}
