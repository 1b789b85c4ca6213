"""The object-store contract the pipeline needs, and the moves built on it.

Three implementations: ``LocalFolderStore`` (a folder on disk, for trying the
pipeline without a cloud account), ``S3Store`` (any S3-compatible endpoint:
AWS, Beget, GCS's XML API, MinIO) and ``GCSStore`` (Google Cloud Storage's own
JSON API, no HMAC keys). Everything above this layer speaks keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime


class ObjectMissing(LookupError):
    """Neither the source nor the destination of a move exists: the object is gone."""


class MoveNotVerified(RuntimeError):
    """The copy did not arrive whole, so the source was kept."""


class ObjectStore(Protocol):
    """What the pipeline does with a bucket. Keys never start with '/'."""

    @property
    def location(self) -> str:
        """Human-readable root of the store (a folder or ``s3://bucket``)."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, following pagination, in key order."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def download(self, key: str, path: Path) -> None:
        """Stream the object to ``path`` (never through memory)."""
        ...

    def upload(self, path: Path, key: str, content_type: str | None = None) -> None: ...

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def copy(self, source: str, destination: str) -> None: ...

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        ...

    def presigned_url(self, key: str, *, expires_seconds: int) -> str:
        """A URL that lets whoever holds it GET ``key`` for ``expires_seconds`` (a ``file://`` URI locally)."""
        ...


def move_object(store: ObjectStore, source: str, destination: str) -> None:
    """Copy, verify, then delete: the one way objects change prefix.

    Idempotent, so a callback and the reconcile step can both attempt it and a
    move interrupted between copy and delete converges on the next attempt:

    * source gone and destination present: the move already happened;
    * source present: copy (again), check the copy's size, only then delete.
    """
    source_info = store.head(source)
    if source_info is None:
        if store.head(destination) is not None:
            log.info("Move %s -> %s already done", source, destination)
            return
        raise ObjectMissing(f"neither {source!r} nor {destination!r} exists")
    store.copy(source, destination)
    copied = store.head(destination)
    if copied is None or copied.size != source_info.size:
        raise MoveNotVerified(
            f"copy of {source!r} to {destination!r} is {copied.size if copied else 'missing'}, "
            f"expected {source_info.size} bytes; source kept"
        )
    store.delete(source)
    log.info("Moved %s -> %s", source, destination)
