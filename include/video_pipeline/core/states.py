"""The upload state machine and the key arithmetic behind it.

An upload lives under exactly one of four prefixes of the bucket. Its key below
the prefix (the *relative key*, e.g. ``team a/Встреча 1.mp4``) never changes, so
moving a video is a pure key rewrite plus a copy-then-delete in the store.
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from dataclasses import dataclass


class VideoState(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


# Which moves are legal. ``processing -> pending`` returns a claim (quota
# exhausted, stale lease); ``completed|failed -> processing`` reprocesses a
# finished video (backfill, "reprocess failed", one video from the UI);
# ``pending -> failed`` refuses a key too long to pass through processing/.
ALLOWED_TRANSITIONS: dict[VideoState, frozenset[VideoState]] = {
    VideoState.PENDING: frozenset({VideoState.PROCESSING, VideoState.FAILED}),
    VideoState.PROCESSING: frozenset({VideoState.COMPLETED, VideoState.FAILED, VideoState.PENDING}),
    VideoState.COMPLETED: frozenset({VideoState.PENDING, VideoState.PROCESSING}),
    VideoState.FAILED: frozenset({VideoState.PENDING, VideoState.PROCESSING}),
}

ERROR_SUFFIX = ".error.json"
# Longest relative key we accept: S3 allows 1024 bytes for the whole key and the
# longest prefix plus the error suffix must still fit.
MAX_RELATIVE_KEY_BYTES = 1024 - len("processing/") - len(ERROR_SUFFIX)


class InvalidTransition(ValueError):
    """A move that the state machine does not allow (e.g. completed -> failed)."""

    def __init__(self, source: VideoState, target: VideoState):
        super().__init__(f"cannot move a video from {source.value}/ to {target.value}/")
        self.source = source
        self.target = target


class InvalidKey(ValueError):
    """A key that is not a usable upload (folder marker, traversal, outside the prefixes)."""


@dataclass(frozen=True)
class Prefixes:
    """Where each state lives in the bucket; configurable, with the product's defaults."""

    pending: str = "pending/"
    processing: str = "processing/"
    completed: str = "completed/"
    failed: str = "failed/"

    def __post_init__(self) -> None:
        for state in VideoState:
            value = getattr(self, state.value)
            if not value.endswith("/") or value.startswith("/"):
                raise ValueError(f"prefix for {state.value} must end with '/' and not start with it: {value!r}")

    def for_state(self, state: VideoState) -> str:
        return str(getattr(self, state.value))


def check_transition(source: VideoState, target: VideoState) -> None:
    if target not in ALLOWED_TRANSITIONS[source]:
        raise InvalidTransition(source, target)


def relative_key(key: str, state: VideoState, prefixes: Prefixes) -> str:
    """The part of ``key`` below the prefix of ``state``; raises InvalidKey if it is not there."""
    prefix = prefixes.for_state(state)
    if not key.startswith(prefix):
        raise InvalidKey(f"{key!r} is not under {prefix!r}")
    rel = key[len(prefix) :]
    validate_relative_key(rel)
    return rel


# What bucket consoles, sync tools and desktops leave beside uploads: never a video.
# "Create folder" in the Beget, AWS and GCS consoles (and MinIO's mc mb/--with-dirs)
# writes a zero-byte "<folder>/" object; s3fs, Hadoop and old S3 browsers write
# "<folder>_$folder$"; macOS and Windows copy their folder metadata along.
FOLDER_MARKER_SUFFIXES = ("/", "_$folder$")
OS_METADATA_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def is_folder_marker(rel: str) -> bool:
    """A folder marker or a desktop's metadata file, at any depth (``sub/``, ``sub/.DS_Store``)."""
    name = rel.rsplit("/", 1)[-1]
    return (
        rel.endswith(FOLDER_MARKER_SUFFIXES)
        or name in OS_METADATA_NAMES
        # AppleDouble "._<name>" files carry a Mac file's resource fork, not its content.
        or name.startswith("._")
    )


def validate_relative_key(rel: str) -> None:
    if not rel or is_folder_marker(rel):
        raise InvalidKey(f"{rel!r} is a folder marker, not an upload")
    if rel.endswith(ERROR_SUFFIX):
        raise InvalidKey(f"{rel!r} is an error report, not an upload")
    if len(rel.encode("utf-8")) > MAX_RELATIVE_KEY_BYTES:
        raise InvalidKey(f"key is {len(rel.encode('utf-8'))} bytes long; the limit is {MAX_RELATIVE_KEY_BYTES}")


def is_upload_key(key: str, prefixes: Prefixes) -> bool:
    """True for keys under pending/ that name an upload (not folder markers or reports)."""
    try:
        relative_key(key, VideoState.PENDING, prefixes)
    except InvalidKey:
        return False
    return True


def state_key(rel: str, state: VideoState, prefixes: Prefixes) -> str:
    return prefixes.for_state(state) + rel


def error_report_key(rel: str, prefixes: Prefixes) -> str:
    return prefixes.failed + rel + ERROR_SUFFIX


def move_keys(rel: str, source: VideoState, target: VideoState, prefixes: Prefixes) -> tuple[str, str]:
    """(source key, target key) for a legal move of one upload."""
    check_transition(source, target)
    return state_key(rel, source, prefixes), state_key(rel, target, prefixes)


# Run summaries live beside the videos' output folders, in one folder of their own.
RUNS_FOLDER = "_runs"
_UNSAFE_RUN_KEY = re.compile(r"[^A-Za-z0-9._-]+")


def run_key_name(run_id: str) -> str:
    """A run id as an object name: ``manual__2025-05-01T10:00:00+00:00`` -> ``manual__2025-05-01T10_00_00_00_00-<h>``.

    Colons and plus signs need escaping in URLs and some S3-compatible services
    mangle them, so they become ``_``; when anything was replaced a short hash of
    the real id keeps two different runs from sharing one file.
    """
    cleaned = _UNSAFE_RUN_KEY.sub("_", run_id).strip("._-")[:150]
    if cleaned == run_id:
        return cleaned
    digest = hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else f"run-{digest}"


def run_summary_key(output_prefix: str, run_id: str) -> str:
    """Where a run's summary lands: ``outputs/_runs/<run key name>.json``."""
    return f"{output_prefix}{RUNS_FOLDER}/{run_key_name(run_id)}.json"


_UNSAFE = re.compile(r"[^\w.-]+", re.UNICODE)


def safe_name(name: str, max_length: int = 60) -> str:
    """A file-system and URL friendly rendering of an upload's name.

    Keeps letters of any script (Cyrillic stays Cyrillic), digits, dots and
    dashes; everything else, including path separators and control characters,
    collapses into a single dash. Never empty and never ``.`` or ``..``.
    """
    base = name.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    cleaned = _UNSAFE.sub("-", unicodedata.normalize("NFC", stem)).strip("-.")
    cleaned = cleaned[:max_length].rstrip("-.")
    return cleaned or "video"


def video_id(bucket: str, rel: str, etag: str) -> str:
    """A stable, readable id for one version of one upload: ``<safe name>-<12 hex>``.

    The hash covers the bucket, the relative key and the content tag, so a
    re-upload with new bytes under the same name gets a new id (a new version)
    while retries of the same version land on the same outputs.
    """
    digest = hashlib.sha256(f"{bucket}\0{rel}\0{etag}".encode()).hexdigest()[:12]
    return f"{safe_name(rel)}-{digest}"
