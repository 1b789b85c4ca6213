"""Moving bytes between the store and a task's disk: the source cache and staged outputs.

Stages write their outputs under ``staging/<video id>/`` and only ``publish``
copies them to ``outputs/<video id>/``, with ``manifest.json`` written last: a
reader that finds a manifest finds every file it lists, whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from include.video_pipeline.config import Settings
from include.video_pipeline.core.media import check_size
from include.video_pipeline.core.outputs import content_type, video_key
from include.video_pipeline.core.states import VideoState, safe_name, state_key
from include.video_pipeline.storage.base import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedFile:
    name: str
    size: int
    sha256: str
    content_type: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def staging_key(settings: Settings, vid: str, name: str = "") -> str:
    return video_key(settings.staging_prefix, vid, name)


def output_key(settings: Settings, vid: str, name: str = "") -> str:
    return video_key(settings.output_prefix, vid, name)


def fetch_source(store: ObjectStore, settings: Settings, vid: str, rel_key: str) -> Path:
    """The upload on local disk, downloaded once per machine.

    Transcode and transcribe run in parallel from the same source; when they
    land on the same worker the second waits on a file lock and reuses the
    first one's download instead of fetching the video again.
    """
    folder = settings.work_dir / vid
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(rel_key).suffix.lower()
    # A sanitised name (letters of any script, digits, dots, dashes; never a
    # leading dash or a separator): hostile names cannot escape the work folder
    # or pass as ffmpeg options, and error messages still name the user's file.
    suffix = suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 8 else ""
    target = folder / f"{safe_name(rel_key)}{suffix}"
    key = state_key(rel_key, VideoState.PROCESSING, settings.prefixes)
    with open(folder / ".source.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        expected = store.head(key)
        if expected is None:
            raise FileNotFoundError(f"{key!r} is not in the store (moved or deleted while processing)")
        if target.exists() and target.stat().st_size == expected.size:
            log.info("Reusing the source already downloaded to %s", target)
            return target
        # An upload over the limit is refused with its reason before any byte is
        # fetched, not retried as a full disk (or downloaded and refused later).
        check_size(expected.size, max_bytes=settings.transcode.max_upload_bytes)
        _check_free_space(folder, expected.size)
        partial = folder / f".{target.name}.part"
        store.download(key, partial)
        os.replace(partial, target)
        log.info("Downloaded %s (%d bytes) to %s", key, expected.size, target)
    return target


def source_sha256(path: Path) -> str:
    """SHA-256 of a downloaded source, computed once and kept beside it."""
    sidecar = path.with_name(f".{path.name}.sha256")
    if sidecar.exists() and sidecar.stat().st_mtime >= path.stat().st_mtime:
        return sidecar.read_text().strip()
    digest = sha256_file(path)
    sidecar.write_text(digest)
    return digest


def _check_free_space(folder: Path, needed: int) -> None:
    # Outputs need room too: ask for twice the upload plus a margin.
    free = shutil.disk_usage(folder).free
    if free < needed * 2 + 256 * 1024 * 1024:
        raise OSError(f"not enough temp space in {folder}: {free} bytes free, {needed} byte upload")


def stage_files(
    store: ObjectStore, settings: Settings, vid: str, paths: list[Path], *, base: Path | None = None
) -> list[StagedFile]:
    """Upload a stage's output files to ``staging/<vid>/`` and describe them for the manifest.

    :param base: name each file by its path relative to this folder, with ``/``
        separators (``hls/720p/seg_00001.m4s``), so a tree of outputs keeps its
        shape; by default a file is named by its own name alone.
    """
    staged = []
    for path in paths:
        name = path.relative_to(base).as_posix() if base is not None else path.name
        kind = content_type(name)
        store.upload(path, staging_key(settings, vid, name), content_type=kind)
        staged.append(StagedFile(name=name, size=path.stat().st_size, sha256=sha256_file(path), content_type=kind))
    return staged


def stage_bytes(store: ObjectStore, settings: Settings, vid: str, name: str, data: bytes) -> StagedFile:
    kind = content_type(name)
    store.put_bytes(staging_key(settings, vid, name), data, content_type=kind)
    return StagedFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type=kind)
