"""Accepting or refusing an upload, and telling the file's faults from the machine's.

The checks raise :class:`~include.video_pipeline.core.errors.InputRejected` when
the upload itself can never be processed (empty, too large or too long, a still
image, no or undecodable streams, a truncated file); the classifiers read a
failed ffprobe or ffmpeg run's stderr and the file's first bytes, so a full disk
or a lack of memory is retried instead of being blamed on the upload.
"""

from __future__ import annotations

from include.video_pipeline.core.errors import InputRejected, RejectReason
from include.video_pipeline.core.media.planning import TranscodePlan
from include.video_pipeline.core.media.probe import MediaInfo

# Codec names ffprobe reports when it found a stream but cannot identify it.
_UNKNOWN_CODECS = frozenset({"", "none", "unknown"})


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - unreachable


def check_size(size_bytes: int, *, max_bytes: int) -> None:
    """Refuse empty and oversized files before any tool touches them."""
    if size_bytes <= 0:
        raise InputRejected(RejectReason.EMPTY_FILE, "the file is empty (0 bytes)", {"size_bytes": size_bytes})
    if size_bytes > max_bytes:
        raise InputRejected(
            RejectReason.TOO_LARGE,
            f"the file is {_human_bytes(size_bytes)}; the limit is {_human_bytes(max_bytes)}",
            {"size_bytes": size_bytes, "max_bytes": max_bytes},
        )


# A decompression bomb is a tiny file that declares a huge picture: every
# decoded frame of a 16000x16000 video needs ~380 MB. 8192x8192 covers 8K.
DEFAULT_MAX_VIDEO_PIXELS = 8192 * 8192


def validate_media(
    info: MediaInfo,
    *,
    max_bytes: int,
    max_duration_seconds: float,
    max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
) -> None:
    """Raise :class:`InputRejected` when the upload can never be processed.

    Audio-only uploads and videos without sound are accepted: they simply
    produce fewer outputs.
    """
    check_size(info.size_bytes, max_bytes=max_bytes)
    if info.is_still_image:
        raise InputRejected(
            RejectReason.NOT_MEDIA,
            f"this is a still image ({info.container}), not a video or audio recording",
            {"container": info.container},
        )
    if info.video is None and not info.audio:
        raise InputRejected(
            RejectReason.NO_STREAMS,
            "the file has no video or audio streams",
            {"container": info.container},
        )
    unknown = [s for s in ([info.video] if info.video else []) + list(info.audio) if s.codec in _UNKNOWN_CODECS]
    if unknown:
        raise InputRejected(
            RejectReason.UNSUPPORTED_CODEC,
            "the file uses a codec that cannot be decoded",
            {"streams": [s.index for s in unknown], "container": info.container},
        )
    if info.video is not None and (info.video.width <= 0 or info.video.height <= 0):
        raise InputRejected(RejectReason.CORRUPT, "the video stream has no picture size", {"stream": info.video.index})
    if info.video is not None and info.video.width * info.video.height > max_video_pixels:
        raise InputRejected(
            RejectReason.TOO_LARGE,
            f"the picture is {info.video.width}x{info.video.height} pixels; the limit is {max_video_pixels:,} pixels "
            "per frame",
            {"width": info.video.width, "height": info.video.height, "max_video_pixels": max_video_pixels},
        )
    if info.duration <= 0:
        # The hook measures a file that does not say how long it is by reading it;
        # still nothing means no packet of its streams could be read.
        raise InputRejected(
            RejectReason.CORRUPT,
            "nothing in the file could be read: it has no duration and no readable packets",
            {"container": info.container},
        )
    if info.duration > max_duration_seconds:
        raise InputRejected(
            RejectReason.TOO_LONG,
            f"the recording lasts {format_duration(info.duration)}; "
            f"the limit is {format_duration(max_duration_seconds)}",
            {"duration_seconds": round(info.duration, 3), "max_duration_seconds": max_duration_seconds},
        )


def format_duration(seconds: float) -> str:
    """``3725.4`` -> ``1:02:05`` (for messages people read)."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


# Magic numbers of containers ffmpeg reads. When ffprobe fails on a file that
# *starts* like media, the file is damaged (typically truncated); when it does
# not, it was never media (an HTML error page, a PDF, a zip).
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mp4"),
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (4, b"skip", "mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"OggS", "ogg"),
    (0, b"fLaC", "flac"),
    (0, b"ID3", "mp3"),
    (0, b"FLV", "flv"),
    (0, b"#!AMR", "amr"),
    (0, b"caff", "caf"),
    (0, b"\x00\x00\x01\xba", "mpeg"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"),
)


def sniff_container(head: bytes) -> str | None:
    """Guess a media container from the first bytes of a file; ``None`` if it does not look like media."""
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"WAVE"):
        return "avi" if head[8:12] == b"AVI " else "wav"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpegts"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mpeg-audio"  # MP3 or ADTS AAC frame sync
    return None


# Failures of the machine, not of the file: these must be retried, never
# blamed on the upload, even when ffmpeg also printed decode errors.
_INFRA_PATTERNS = (
    "no space left on device",
    "cannot allocate memory",
    "out of memory",
    "permission denied",
    "read-only file system",
    "input/output error",
    "too many open files",
)
_UNSUPPORTED_PATTERNS = ("decoder (codec", "unsupported codec", "no decoder for", "codec not currently supported")
_CORRUPT_PATTERNS = (
    "invalid data found when processing input",
    "moov atom not found",
    "partial file",
    "error while decoding",
    "corrupt",
    "invalid nal unit",
    "non-existing pps",
    "ebml header parsing failed",
    "truncat",
    "header missing",
    "error reading header",
    "could not find codec parameters",
)


def classify_ffmpeg_failure(stderr: str) -> RejectReason | None:
    """The upload's fault (a :class:`RejectReason`) or ours (``None``), from ffmpeg's stderr."""
    text = stderr.lower()
    if any(p in text for p in _INFRA_PATTERNS):
        return None
    if any(p in text for p in _UNSUPPORTED_PATTERNS):
        return RejectReason.UNSUPPORTED_CODEC
    if any(p in text for p in _CORRUPT_PATTERNS):
        return RejectReason.CORRUPT
    return None


def classify_probe_failure(stderr: str, head: bytes) -> RejectReason | None:
    """Why ffprobe could not read a file: NOT_MEDIA, CORRUPT, or ``None`` for an infrastructure problem.

    ffprobe says "moov atom not found" for a truncated mp4 *and* for an HTML
    page named ``.mp4`` (it trusts the extension), so the message alone cannot
    tell them apart; the file's first bytes can.
    """
    text = stderr.lower()
    if any(p in text for p in _INFRA_PATTERNS) or "no such file" in text:
        return None
    if sniff_container(head) is None:
        return RejectReason.NOT_MEDIA
    reason = classify_ffmpeg_failure(stderr)
    return reason if reason is not None else RejectReason.CORRUPT


def check_complete_output(expected_seconds: float, actual_seconds: float, *, tolerance: float | None = None) -> None:
    """Refuse an output that stops well before the source's declared end.

    ffmpeg exits 0 on a file whose index is intact but whose media data is cut
    off (an interrupted upload of a faststart mp4): it just writes a shorter
    output. A missing tail of a few frames is tolerated, since the rest of the
    recording is still worth publishing.
    """
    allowed = tolerance if tolerance is not None else max(0.5, 0.02 * expected_seconds)
    if expected_seconds - actual_seconds > allowed:
        raise InputRejected(
            RejectReason.CORRUPT,
            f"the file is damaged or truncated: only {actual_seconds:.1f} s of "
            f"{expected_seconds:.1f} s could be decoded",
            {"expected_seconds": round(expected_seconds, 3), "decoded_seconds": round(actual_seconds, 3)},
        )


def expected_output_duration(info: MediaInfo, plan: TranscodePlan) -> float:
    """How long the transcode should be: the longest stream it keeps, else the container's duration."""
    kept: list[float | None] = []
    if plan.video is not None and info.video is not None:
        kept.append(info.video.duration)
    if plan.audio is not None:
        kept.extend(a.duration for a in info.audio if a.index == plan.audio.stream_index)
    known = [d for d in kept if d]
    return max(known) if known else info.duration
