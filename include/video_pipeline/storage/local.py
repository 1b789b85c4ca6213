"""A folder on disk that behaves like a bucket, for running without a cloud account."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from include.video_pipeline.storage.base import ObjectInfo

# mkstemp creates 0600 files; published outputs must be readable by whatever
# serves the folder (a web server, another user's player), as a plain write
# would make them. Read once: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


class UnsafeKey(ValueError):
    """A key that would resolve outside the store's root folder."""


class LocalFolderStore:
    """Keys map to files below ``root``; writes are atomic (temp file + rename).

    The ETag is derived from size and modification time: cheap for huge files,
    and preserved by ``copy`` (``shutil.copy2``), so an upload keeps its identity
    as it moves between prefixes.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or "\0" in key:
            raise UnsafeKey(f"unusable key {key!r}")
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise UnsafeKey(f"key {key!r} escapes the storage root")
        return path

    def _info(self, key: str, path: Path) -> ObjectInfo:
        stat = path.stat()
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the folder part of the prefix; filter the rest as a string,
        # as S3 does (prefix "pending/a" matches "pending/abc.mp4").
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return
        found = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for filename in filenames:
                if filename.startswith(".vp-tmp-"):
                    continue  # an atomic write in progress
                path = Path(dirpath) / filename
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append((key, path))
        for key, path in sorted(found):
            try:
                yield self._info(key, path)
            except FileNotFoundError:
                continue  # moved away while we listed

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            return self._info(key, path) if path.is_file() else None
        except FileNotFoundError:
            return None

    def download(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise FileNotFoundError(f"no object {key!r} in {self.root}")
        shutil.copyfile(source, path)

    def _atomic_write(self, key: str, writer) -> None:  # type: ignore[no-untyped-def]
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vp-tmp-", dir=target.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                writer(handle)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def upload(self, path: Path, key: str, content_type: str | None = None) -> None:
        with open(path, "rb") as source:
            self._atomic_write(key, lambda handle: shutil.copyfileobj(source, handle, 1024 * 1024))

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._atomic_write(key, lambda handle: handle.write(data))

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def copy(self, source: str, destination: str) -> None:
        src = self._path(source)
        dst = self._path(destination)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vp-tmp-", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copy2(src, tmp)
            os.chmod(tmp, FILE_MODE)  # copy2 carries the source's mode, which may be an upload's 0600
            os.replace(tmp, dst)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop folders the delete emptied, so listings stay clean; keep the
        # state prefixes themselves so users can see where to drop files.
        parent = path.parent
        while parent != self.root and parent.parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def presigned_url(self, key: str, *, expires_seconds: int) -> str:
        # A folder has no access control to sign for: the file itself. Browsers in
        # the Airflow UI get the plugin's outputs route instead (pipeline/ui_links.py).
        return self._path(key).as_uri()
