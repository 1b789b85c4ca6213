"""What an upload request may ask for: allowed media types, safe keys, size limits.

Pure logic (no Airflow, no boto3), so the rules are testable on their own and
the same ones apply whichever store the presigned URL points at.
"""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from include.video_pipeline.core.states import InvalidKey, validate_relative_key

# S3 refuses a single PUT (and a POST form) above 5 GiB; anything larger needs a
# multipart upload, which one presigned URL cannot express.
SINGLE_PUT_LIMIT_BYTES = 5 * 1024**3

# MIME type -> the extensions a file of that type may carry. The extension has
# to agree with the declared type, so a client cannot sign "video/mp4" for
# "notes.pdf"; the pipeline probes the bytes anyway, this only stops the
# obvious mistakes at the door with a clear message.
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "video/mp4": frozenset({".mp4", ".m4v"}),
    "video/quicktime": frozenset({".mov", ".qt"}),
    "video/x-matroska": frozenset({".mkv"}),
    "video/webm": frozenset({".webm"}),
    "video/x-msvideo": frozenset({".avi"}),
    "video/mpeg": frozenset({".mpeg", ".mpg"}),
    "video/mp2t": frozenset({".ts", ".mts", ".m2ts"}),
    "video/3gpp": frozenset({".3gp"}),
    "video/x-flv": frozenset({".flv"}),
    "video/x-ms-wmv": frozenset({".wmv"}),
    "video/ogg": frozenset({".ogv"}),
    "audio/mpeg": frozenset({".mp3"}),
    "audio/mp4": frozenset({".m4a", ".mp4"}),
    "audio/x-m4a": frozenset({".m4a"}),
    "audio/aac": frozenset({".aac"}),
    "audio/wav": frozenset({".wav"}),
    "audio/x-wav": frozenset({".wav"}),
    "audio/wave": frozenset({".wav"}),
    "audio/flac": frozenset({".flac"}),
    "audio/x-flac": frozenset({".flac"}),
    "audio/ogg": frozenset({".ogg", ".oga", ".opus"}),
    "audio/opus": frozenset({".opus"}),
    "audio/webm": frozenset({".webm"}),
}

# Candidates tried after the requested name before giving up with a conflict.
MAX_NAME_SUFFIX = 99

# Bidirectional overrides and isolates can make "evil‮4pm.exe" display as
# "evilexe.mp4"; zero-width characters make two names look identical. Neither
# belongs in a file name a person will read in a bucket listing.
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}


class UploadRefused(ValueError):
    """The request can never be signed as asked; the message says why, for the client."""


@dataclass(frozen=True)
class UploadRequest:
    """A validated request: the relative key under pending/, its type and size."""

    relative_key: str
    content_type: str
    size_bytes: int


def normalise_content_type(content_type: str) -> str:
    """``Video/MP4; codecs=avc1`` -> ``video/mp4``: parameters are not part of the allow-list."""
    return content_type.split(";", 1)[0].strip().lower()


def clean_filename(filename: str) -> str:
    """The relative key for ``filename``, or UploadRefused.

    Keeps what people name files with (Cyrillic, spaces, dots, one level of
    folders or more) and refuses what would escape the pending/ prefix or hide
    in a listing: absolute paths, ``.``/``..`` segments, backslashes, control
    and invisible characters. Unicode is NFC-normalised so the same name typed
    on macOS and Windows gives the same key.
    """
    name = unicodedata.normalize("NFC", filename)
    if not name.strip():
        raise UploadRefused("filename is empty")
    for char in name:
        if unicodedata.category(char) in {"Cc", "Cs", "Co"} or char in _INVISIBLE:
            raise UploadRefused(f"filename contains a control character (U+{ord(char):04X})")
        if unicodedata.bidirectional(char) in {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}:
            raise UploadRefused(f"filename contains a text-direction override (U+{ord(char):04X})")
    if "\\" in name:
        raise UploadRefused("filename must not contain backslashes")
    if name.startswith("/"):
        raise UploadRefused("filename must be relative (no leading '/')")
    segments = name.split("/")
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise UploadRefused("filename must not contain empty, '.' or '..' path segments")
        if segment != segment.strip():
            raise UploadRefused("path segments must not start or end with spaces")
    try:
        validate_relative_key(name)
    except InvalidKey as exc:
        raise UploadRefused(str(exc)) from None
    return name


def validate_upload(*, filename: str, content_type: str, size_bytes: int, max_upload_bytes: int) -> UploadRequest:
    """Check one request against the limits; raises UploadRefused with a message for the client."""
    key = clean_filename(filename)
    ctype = normalise_content_type(content_type)
    extensions = ALLOWED_TYPES.get(ctype)
    if extensions is None:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise UploadRefused(f"content type {ctype!r} is not accepted; allowed types: {allowed}")
    extension = posixpath.splitext(key)[1].lower()
    if extension not in extensions:
        raise UploadRefused(
            f"extension {extension or '(none)'!r} does not match content type {ctype!r}; "
            f"expected one of {', '.join(sorted(extensions))}"
        )
    if size_bytes <= 0:
        raise UploadRefused("size_bytes must be positive: an empty file cannot be processed")
    limit = min(max_upload_bytes, SINGLE_PUT_LIMIT_BYTES)
    if size_bytes > limit:
        why = (
            "VIDEO_PIPELINE_MAX_UPLOAD_BYTES"
            if limit == max_upload_bytes
            else "S3's single-request upload limit; upload larger files to the bucket with a multipart client"
        )
        raise UploadRefused(f"size_bytes {size_bytes} is over the limit of {limit} bytes ({why})")
    return UploadRequest(relative_key=key, content_type=ctype, size_bytes=size_bytes)


def candidate_keys(relative_key: str) -> list[str]:
    """The requested key, then ``name (2).ext`` ... for when the name is taken."""
    folder, base = posixpath.split(relative_key)
    stem, extension = posixpath.splitext(base)
    names = [base] + [f"{stem} ({n}){extension}" for n in range(2, MAX_NAME_SUFFIX + 1)]
    return [posixpath.join(folder, name) if folder else name for name in names]


def first_free_key(relative_key: str, is_taken: Callable[[str], bool]) -> str | None:
    """The first candidate key that ``is_taken`` says is free, or None when all are taken."""
    for key in candidate_keys(relative_key):
        if not is_taken(key):
            return key
    return None
