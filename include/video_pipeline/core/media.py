"""What an upload contains, whether we accept it, and how ffmpeg should turn it into web media.

Pure logic only: this module reads ffprobe's JSON, decides, and builds ffmpeg
argument lists; running ffmpeg is :class:`~include.video_pipeline.hooks.ffmpeg.FfmpegHook`'s
job. Keeping the decisions here means every branch (rotated phone video, 10-bit
HDR, audio-only upload, a second audio track...) is tested with plain dicts in
milliseconds, and the hook stays a thin runner.

Conventions:

* ``rotation`` is the clockwise angle (0, 90, 180 or 270) a player turns the
  coded frame to show it upright. Phones store portrait video as landscape
  frames with ``rotation`` 90 or 270.
* Output sizes are *display* sizes: after rotation and after square-pixel
  correction of anamorphic sources. The hook relies on ffmpeg's default
  ``autorotate`` to turn the pixels before our filter chain runs, so the chain
  only scales.
* Argument lists exclude the executable and the global options the hook adds
  for progress reporting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from include.video_pipeline.core.errors import InputRejected, RejectReason

# --------------------------------------------------------------------------- #
# The probe result
# --------------------------------------------------------------------------- #

# Codec names ffprobe reports when it found a stream but cannot identify it.
_UNKNOWN_CODECS = frozenset({"", "none", "unknown"})
# Demuxers that mean "a still picture", not a recording. Someone uploading a
# photo by mistake should hear that, not "corrupt video".
_IMAGE_FORMATS = ("image2", "_pipe", "png", "webp", "apng")
_HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}
_BIT_DEPTH = re.compile(r"(\d+)(?:le|be)$")


@dataclass(frozen=True)
class VideoStream:
    """The video stream we would transcode (never cover art).

    :param rotation: clockwise degrees to display upright: 0, 90, 180 or 270.
    :param frame_rate: average frames per second, ``None`` when unknown.
    :param variable_frame_rate: a hint from ffprobe: the nominal and the average
        rate disagree, as in screen recordings and many phone videos.
    :param sample_aspect: pixel shape; not 1 for anamorphic sources (DV, some broadcast).
    :param hdr: ``"pq"`` or ``"hlg"`` for HDR transfer functions, else ``None``.
    """

    index: int
    codec: str
    width: int
    height: int
    profile: str | None = None
    pix_fmt: str | None = None
    bit_depth: int = 8
    rotation: int = 0
    frame_rate: float | None = None
    variable_frame_rate: bool = False
    sample_aspect: Fraction = Fraction(1)
    interlaced: bool = False
    hdr: str | None = None
    bit_rate: int | None = None
    duration: float | None = None
    start: float = 0.0

    @property
    def display_width(self) -> int:
        return self._display_size()[0]

    @property
    def display_height(self) -> int:
        return self._display_size()[1]

    @property
    def portrait(self) -> bool:
        return self.display_height > self.display_width

    def _display_size(self) -> tuple[int, int]:
        # Anamorphic pixels are stretched horizontally on display; rotation then
        # swaps the axes. Order matters: SAR applies to the coded frame.
        width = round(self.width * self.sample_aspect) if self.sample_aspect > 0 else self.width
        height = self.height
        if self.rotation in (90, 270):
            width, height = height, width
        return width, height


@dataclass(frozen=True)
class AudioStream:
    """One audio track. ``default`` is the container's default-track flag.

    :param duration: the track's own length from the file's index (mp4 track
        header, Matroska ``DURATION`` tag); ``None`` when the container keeps none.
    :param start: where the track starts, in seconds from the file's start.
    """

    index: int
    codec: str
    channels: int = 0
    sample_rate: int | None = None
    profile: str | None = None
    language: str | None = None
    default: bool = False
    bit_rate: int | None = None
    duration: float | None = None
    start: float = 0.0


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe found in an upload, reduced to what the pipeline decides on.

    :param container: ffprobe's ``format_name``, e.g. ``mov,mp4,m4a,3gp,3g2,mj2``.
    :param duration: seconds; 0.0 when the file does not say.
    :param video: the main video stream, or ``None`` for audio-only uploads
        (cover art in an mp3 or m4a is not a video stream).
    :param audio: every audio track, in file order.
    :param duration_measured: the container did not say how long it is (a live
        or browser recording); ``duration`` was measured by reading the file.
    """

    container: str
    duration: float
    size_bytes: int
    video: VideoStream | None = None
    audio: tuple[AudioStream, ...] = ()
    bit_rate: int | None = None
    format_long_name: str | None = None
    duration_measured: bool = False

    @property
    def has_video(self) -> bool:
        return self.video is not None

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    @property
    def audio_only(self) -> bool:
        return self.video is None and bool(self.audio)

    @property
    def default_audio(self) -> AudioStream | None:
        """The track a player would play: the one flagged default, else the first."""
        return choose_audio_stream(self.audio)

    @property
    def is_still_image(self) -> bool:
        return any(marker in self.container for marker in _IMAGE_FORMATS)


def choose_audio_stream(streams: Sequence[AudioStream]) -> AudioStream | None:
    """The default-flagged track, else the first one; ``None`` when there is no audio."""
    for stream in streams:
        if stream.default:
            return stream
    return streams[0] if streams else None


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _rate(value: Any) -> float | None:
    """``"30000/1001"`` -> 29.97; ``"0/0"`` and junk -> None."""
    if not isinstance(value, str) or "/" not in value:
        return _float(value) or None
    num, _, den = value.partition("/")
    n, d = _float(num), _float(den)
    if not n or not d:
        return None
    return n / d


def _sample_aspect(value: Any) -> Fraction:
    if isinstance(value, str) and ":" in value:
        num, _, den = value.partition(":")
        if num.isdigit() and den.isdigit() and int(num) > 0 and int(den) > 0:
            return Fraction(int(num), int(den))
    return Fraction(1)


def _rotation(stream: Mapping[str, Any]) -> int:
    """Clockwise display rotation from the display matrix, else from the legacy ``rotate`` tag."""
    for side_data in stream.get("side_data_list") or ():
        if "rotation" in side_data:
            counter_clockwise = _float(side_data["rotation"])
            if counter_clockwise is not None:
                # ffprobe reports the display matrix angle counter-clockwise.
                return _snap_rotation(-counter_clockwise)
    tag = (stream.get("tags") or {}).get("rotate")
    angle = _float(tag)
    return _snap_rotation(angle) if angle is not None else 0


def _snap_rotation(angle: float) -> int:
    # Only quarter turns are meaningful for video; anything else is noise from
    # an odd matrix and is treated like the nearest quarter turn.
    return round(angle / 90.0) * 90 % 360


def _bit_depth(stream: Mapping[str, Any]) -> int:
    pix_fmt = stream.get("pix_fmt") or ""
    match = _BIT_DEPTH.search(pix_fmt)
    if match:
        return int(match.group(1))
    raw = _int(stream.get("bits_per_raw_sample"))
    return raw if raw and raw > 8 else 8


def _stream_duration(stream: Mapping[str, Any]) -> float | None:
    """The stream's own length: ffprobe's ``duration``, else from a Matroska ``DURATION`` tag.

    ffmpeg's Matroska muxer writes that tag (``00:00:13.600000000``); it is where
    the stream *ends*, so a stream that starts late is that much shorter.
    ffprobe does not turn it into a duration.
    """
    own = _float(stream.get("duration"))
    if own:
        return own
    end = _duration_tag(stream)
    if end is None:
        return None
    start = _float(stream.get("start_time")) or 0.0
    return end - start if end - start > 0 else None


def _duration_tag(stream: Mapping[str, Any]) -> float | None:
    tags = stream.get("tags") or {}
    for key, value in tags.items():
        if key.upper().startswith("DURATION") and isinstance(value, str):
            parts = value.strip().split(":")
            try:
                seconds = float(sum(float(p) * 60**i for i, p in enumerate(reversed(parts))))
            except ValueError:
                continue
            if math.isfinite(seconds) and seconds > 0:
                return seconds
    return None


def _is_default(stream: Mapping[str, Any]) -> bool:
    return bool((stream.get("disposition") or {}).get("default"))


def _is_cover_art(stream: Mapping[str, Any]) -> bool:
    return bool((stream.get("disposition") or {}).get("attached_pic"))


def _parse_video(stream: Mapping[str, Any], origin: float = 0.0) -> VideoStream:
    nominal = _rate(stream.get("r_frame_rate"))
    average = _rate(stream.get("avg_frame_rate"))
    frame_rate = average or nominal
    vfr = bool(nominal and average and abs(nominal - average) / nominal > 0.01)
    field_order = stream.get("field_order") or "progressive"
    return VideoStream(
        index=int(stream.get("index", 0)),
        codec=str(stream.get("codec_name") or "none"),
        width=_int(stream.get("width")) or 0,
        height=_int(stream.get("height")) or 0,
        profile=stream.get("profile"),
        pix_fmt=stream.get("pix_fmt"),
        bit_depth=_bit_depth(stream),
        rotation=_rotation(stream),
        frame_rate=round(frame_rate, 3) if frame_rate else None,
        variable_frame_rate=vfr,
        sample_aspect=_sample_aspect(stream.get("sample_aspect_ratio")),
        interlaced=field_order not in ("progressive", "unknown"),
        hdr=_HDR_TRANSFERS.get(stream.get("color_transfer") or ""),
        bit_rate=_int(stream.get("bit_rate")),
        duration=_stream_duration(stream),
        start=_start(stream, origin),
    )


def _start(stream: Mapping[str, Any], origin: float) -> float:
    start = _float(stream.get("start_time"))
    return round(max(0.0, start - origin), 3) if start is not None else 0.0


def _parse_audio(stream: Mapping[str, Any], origin: float = 0.0) -> AudioStream:
    tags = stream.get("tags") or {}
    language = tags.get("language")
    return AudioStream(
        index=int(stream.get("index", 0)),
        codec=str(stream.get("codec_name") or "none"),
        channels=_int(stream.get("channels")) or 0,
        sample_rate=_int(stream.get("sample_rate")),
        profile=stream.get("profile"),
        language=language if language and language != "und" else None,
        default=_is_default(stream),
        bit_rate=_int(stream.get("bit_rate")),
        duration=_stream_duration(stream),
        start=_start(stream, origin),
    )


def parse_probe(data: Mapping[str, Any], *, size_bytes: int | None = None) -> MediaInfo:
    """Turn ffprobe's ``-show_format -show_streams -of json`` output into :class:`MediaInfo`.

    :param size_bytes: the file size as seen on disk; preferred over ffprobe's
        ``format.size``, which is missing for some inputs.
    """
    fmt = data.get("format") or {}
    streams = list(data.get("streams") or ())
    videos = [s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)]
    # Prefer the default-flagged video stream; files with several (camera
    # multi-angle, a stray preview track) flag the main one.
    videos.sort(key=lambda s: not _is_default(s))
    # Stream start times relative to the file's start: ffmpeg shifts every
    # stream by the earliest one when it reads the file, and so do players.
    origin = _float(fmt.get("start_time")) or 0.0
    audio = tuple(_parse_audio(s, origin) for s in streams if s.get("codec_type") == "audio")
    video = _parse_video(videos[0], origin) if videos else None

    duration = _float(fmt.get("duration"))
    if not duration:
        stream_durations = [d for d in (_stream_duration(s) for s in streams) if d]
        duration = max(stream_durations, default=0.0)
    size = size_bytes if size_bytes is not None else (_int(fmt.get("size")) or 0)
    return MediaInfo(
        container=str(fmt.get("format_name") or ""),
        duration=max(duration, 0.0),
        size_bytes=size,
        video=video,
        audio=audio,
        bit_rate=_int(fmt.get("bit_rate")),
        format_long_name=fmt.get("format_long_name"),
    )


# --------------------------------------------------------------------------- #
# Accepting or refusing an upload
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# Planning the transcode
# --------------------------------------------------------------------------- #

# Containers whose H.264/AAC packets can be copied into mp4 with correct
# timestamps. AVI is missing on purpose: it has no presentation timestamps and
# often "packed" B-frames, which make broken mp4s when copied.
_REMUX_CONTAINERS = ("mov", "mp4", "matroska", "mpegts", "flv")
_WEB_H264_PROFILES = frozenset({"constrained baseline", "baseline", "main", "high"})
_COPY_AAC_PROFILES = frozenset({"lc", "he-aac", "he-aacv2"})

# A phone or camera H.264 at 40+ Mbit/s plays in a browser but is a poor web
# file; above this we re-encode even when the codecs would allow a copy.
DEFAULT_MAX_REMUX_BITRATE = 8_000_000
DEFAULT_MAX_FPS = 60.0
AUDIO_BITRATE = "128k"
# Keyframes at least this often: seeking in a browser jumps to keyframes, and
# x264's default (250 frames) can mean 10 s between them.
KEYFRAME_SECONDS = 4


@dataclass(frozen=True)
class VideoPlan:
    """What happens to the video stream.

    :param copy: stream copy (no re-encode).
    :param width: output display width (even).
    :param height: output display height (even).
    :param filters: the ``-vf`` chain when re-encoding; empty for a copy.
    """

    stream_index: int
    copy: bool
    width: int
    height: int
    filters: tuple[str, ...] = ()
    crf: int = 23
    preset: str = "veryfast"


@dataclass(frozen=True)
class AudioPlan:
    """What happens to one kept audio track."""

    stream_index: int
    copy: bool
    channels: int | None = None  # set when downmixing
    sample_rate: int | None = None  # set when resampling
    language: str | None = None


@dataclass(frozen=True)
class TranscodePlan:
    """Everything ffmpeg needs to make ``video.mp4`` and the picture outputs.

    ``video`` is ``None`` for audio-only uploads: there is then no video, poster
    or thumbnails to make. ``reasons`` says why anything is re-encoded, for the
    task log. ``audio_tracks`` are every track ``video.mp4`` keeps, in output
    order (the default one first); ``audio`` is the first of them.
    """

    duration: float
    video: VideoPlan | None = None
    audio: AudioPlan | None = None
    reasons: tuple[str, ...] = ()
    audio_tracks: tuple[AudioPlan, ...] = ()

    @property
    def has_video_outputs(self) -> bool:
        return self.video is not None

    @property
    def remux(self) -> bool:
        """True when every kept stream is copied: the fast path, no quality loss."""
        return self.video is not None and self.video.copy and all(a.copy for a in self.kept_audio)

    @property
    def kept_audio(self) -> tuple[AudioPlan, ...]:
        return self.audio_tracks or ((self.audio,) if self.audio is not None else ())


def _even(value: float) -> int:
    # Round down: an output must never be larger than its source, not even by a pixel.
    return max(2, int(value) // 2 * 2)


def output_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """Scale (display) ``width`` x ``height`` down to fit ``max_height``; never up; both even.

    ``max_height`` bounds the short side for portrait video, so a portrait phone
    clip becomes 720x1280 at "720p" rather than a thumbnail-sized 404x720.
    """
    short, long_ = min(width, height), max(width, height)
    scale = min(1.0, max_height / short) if short > 0 else 1.0
    new_short, new_long = _even(short * scale), _even(long_ * scale)
    if width >= height:
        return new_long, new_short
    return new_short, new_long


def _video_copy_blockers(
    info: MediaInfo, video: VideoStream, *, max_height: int, max_remux_bitrate: int, max_fps: float
) -> list[str]:
    blockers = []
    if video.codec != "h264":
        blockers.append(f"video codec is {video.codec}, not h264")
    elif (video.profile or "").lower() not in _WEB_H264_PROFILES:
        blockers.append(f"h264 profile {video.profile} is not web-playable")
    if video.pix_fmt != "yuv420p":
        blockers.append(f"pixel format is {video.pix_fmt}, not 8-bit yuv420p")
    if video.hdr:
        blockers.append(f"HDR ({video.hdr}) needs tone-mapping")
    if video.rotation:
        blockers.append(f"rotated {video.rotation} degrees; turning the pixels so every player shows it upright")
    if video.sample_aspect != 1:
        blockers.append(f"non-square pixels (SAR {video.sample_aspect})")
    if video.interlaced:
        blockers.append("interlaced")
    if min(video.display_width, video.display_height) > max_height:
        blockers.append(f"{video.display_width}x{video.display_height} is larger than {max_height}p")
    if video.width % 2 or video.height % 2:
        blockers.append(f"odd dimensions {video.width}x{video.height}")
    if video.frame_rate and video.frame_rate > max_fps:
        blockers.append(f"{video.frame_rate:g} fps is above {max_fps:g}")
    bit_rate = video.bit_rate or info.bit_rate
    if bit_rate and bit_rate > max_remux_bitrate:
        blockers.append(f"bit rate {bit_rate / 1e6:.1f} Mbit/s is above {max_remux_bitrate / 1e6:.1f}")
    if not any(name in info.container.split(",") for name in _REMUX_CONTAINERS):
        blockers.append(f"container {info.container} cannot be remuxed safely")
    return blockers


def _audio_copy_blockers(info: MediaInfo, audio: AudioStream) -> list[str]:
    blockers = []
    if audio.codec != "aac":
        blockers.append(f"audio codec is {audio.codec}, not aac")
    elif audio.profile and audio.profile.lower() not in _COPY_AAC_PROFILES:
        blockers.append(f"AAC profile {audio.profile} is not web-playable")
    if audio.channels > 2:
        blockers.append(f"{audio.channels} audio channels; downmixing to stereo")
    if audio.sample_rate and audio.sample_rate > 48000:
        blockers.append(f"audio sample rate {audio.sample_rate} Hz")
    if not any(name in info.container.split(",") for name in _REMUX_CONTAINERS):
        blockers.append(f"container {info.container} cannot be remuxed safely")
    return blockers


def _tonemap_filters(hdr: str) -> list[str]:
    # zscale to linear light, tone-map in float RGB, back to BT.709 limited
    # range. Input parameters are spelt out because phone files often tag only
    # the transfer function, and zscale refuses to guess.
    transfer_in = "smpte2084" if hdr == "pq" else "arib-std-b67"
    return [
        f"zscale=tin={transfer_in}:pin=bt2020:min=bt2020nc:t=linear:npl=100",
        "format=gbrpf32le",
        "zscale=p=bt709",
        "tonemap=tonemap=hable:desat=0",
        "zscale=t=bt709:m=bt709:r=tv",
    ]


def plan_transcode(
    info: MediaInfo,
    *,
    max_height: int = 720,
    crf: int = 23,
    preset: str = "veryfast",
    max_remux_bitrate: int = DEFAULT_MAX_REMUX_BITRATE,
    max_fps: float = DEFAULT_MAX_FPS,
    can_tonemap: bool = True,
    audio_tracks: Sequence[AudioStream] | None = None,
) -> TranscodePlan:
    """Decide stream copy vs re-encode for the video and the audio tracks it keeps.

    Each stream is decided on its own: an H.264 screen recording with Opus
    audio copies the video and re-encodes only the sound. ``remux`` on the plan
    is true when nothing at all is re-encoded.

    :param can_tonemap: whether this ffmpeg has ``zscale`` and ``tonemap``; without
        them HDR is only converted to 8 bits, which looks washed out but plays.
    :param audio_tracks: the tracks to keep, in output order (see
        :func:`~include.video_pipeline.core.audio_tracks.tracks_for_video`);
        default: the default track alone.
    """
    reasons: list[str] = []
    video_plan: VideoPlan | None = None
    video = info.video
    if video is not None:
        blockers = _video_copy_blockers(
            info, video, max_height=max_height, max_remux_bitrate=max_remux_bitrate, max_fps=max_fps
        )
        width, height = output_size(video.display_width, video.display_height, max_height)
        if blockers:
            reasons.extend(blockers)
            filters = [
                *_source_filters(video, max_fps=max_fps, can_tonemap=can_tonemap),
                *_scale_filters(width, height),
            ]
            video_plan = VideoPlan(
                stream_index=video.index,
                copy=False,
                width=width,
                height=height,
                filters=tuple(filters),
                crf=crf,
                preset=preset,
            )
        else:
            video_plan = VideoPlan(
                stream_index=video.index,
                copy=True,
                width=video.display_width,
                height=video.display_height,
                crf=crf,
                preset=preset,
            )

    # Audio-only upload: no web video to make; the audio is extracted for
    # transcription separately, straight from the source.
    kept: list[AudioPlan] = []
    default = info.default_audio
    chosen = tuple(audio_tracks) if audio_tracks is not None else ((default,) if default is not None else ())
    for track in chosen if video is not None else ():
        audio_blockers = _audio_copy_blockers(info, track)
        reasons.extend(b for b in audio_blockers if b not in reasons)
        kept.append(
            AudioPlan(
                stream_index=track.index,
                copy=not audio_blockers,
                channels=2 if track.channels > 2 else None,
                sample_rate=48000 if track.sample_rate and track.sample_rate > 48000 else None,
                language=track.language,
            )
        )
    return TranscodePlan(
        duration=info.duration,
        video=video_plan,
        audio=kept[0] if kept else None,
        reasons=tuple(reasons),
        audio_tracks=tuple(kept),
    )


def _source_filters(video: VideoStream, *, max_fps: float, can_tonemap: bool) -> list[str]:
    """Filters every rendition of ``video`` needs before scaling: deinterlace, tone-map, cap the rate.

    Rotation is not here: ffmpeg's autorotate turns the pixels before the chain runs.
    """
    filters: list[str] = []
    if video.interlaced:
        filters.append("yadif=mode=send_frame:deint=interlaced")
    if video.hdr and can_tonemap:
        filters.extend(_tonemap_filters(video.hdr))
    if video.frame_rate and video.frame_rate > max_fps:
        filters.append(f"fps={_fps_cap(video.frame_rate, max_fps)}")
    return filters


def _scale_filters(width: int, height: int) -> list[str]:
    # Always scale to the planned size: it also evens odd sizes and squares
    # anamorphic pixels. bicubic is swscale's default and is sharp enough for
    # web renditions.
    return [f"scale={width}:{height}:flags=bicubic", "setsar=1", "format=yuv420p"]


def _fps_cap(source_fps: float, max_fps: float) -> str:
    # Halve until under the cap (240 -> 60, 120 -> 60, 100 -> 50) so motion
    # stays even; a plain cap would drop frames irregularly.
    target = source_fps
    while target > max_fps:
        target /= 2
    return f"{target:.3f}".rstrip("0").rstrip(".")


# --------------------------------------------------------------------------- #
# ffmpeg argument lists
# --------------------------------------------------------------------------- #

# Options every command shares. -nostdin: ffmpeg must never wait for a key
# press from a worker. Warnings are kept: the hook quotes them in errors.
_COMMON = ("-hide_banner", "-nostdin", "-y", "-loglevel", "warning")


def transcode_args(source: str, dest: str, plan: TranscodePlan, *, threads: int = 0) -> list[str]:
    """ffmpeg arguments that write the web mp4 for ``plan`` to ``dest`` (any name; mp4 is forced).

    Metadata and chapters of the upload are dropped on purpose: phone videos
    carry GPS coordinates and device names that must not be published.
    """
    if plan.video is None:
        raise ValueError("this plan has no video output (audio-only upload)")
    video = plan.video
    tracks = plan.kept_audio
    args = [*_COMMON, "-i", source, "-map", f"0:{video.stream_index}"]
    for track in tracks:
        args += ["-map", f"0:{track.stream_index}"]
    args += ["-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn"]
    if video.copy:
        args += ["-c:v", "copy"]
    else:
        args += [
            "-vf",
            ",".join(video.filters),
            "-c:v",
            "libx264",
            "-preset",
            video.preset,
            "-crf",
            str(video.crf),
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-force_key_frames",
            f"expr:gte(t,n_forced*{KEYFRAME_SECONDS})",
            # Keep the source's timing: "vfr" passes timestamps through (only
            # dropping exact duplicates) instead of padding VFR phone video to a
            # constant rate with thousands of duplicated frames.
            "-fps_mode",
            "vfr",
        ]
    for i, audio in enumerate(tracks):
        # Per output track (a:0, a:1...): one may be copied while another is re-encoded.
        if audio.copy:
            args += [f"-c:a:{i}", "copy"]
        else:
            # async=1 fills timestamp gaps (a dropped-out microphone) with
            # silence instead of closing them up, so sound stays in sync with the picture.
            args += [f"-filter:a:{i}", "aresample=async=1", f"-c:a:{i}", "aac", f"-b:a:{i}", AUDIO_BITRATE]
            if audio.channels:
                args += [f"-ac:a:{i}", str(audio.channels)]
            if audio.sample_rate:
                args += [f"-ar:a:{i}", str(audio.sample_rate)]
        if audio.language:
            args += [f"-metadata:s:a:{i}", f"language={audio.language}"]
        # Players start with the default track: the first one, and only it.
        args += [f"-disposition:a:{i}", "default" if i == 0 else "0"]
    if threads > 0:
        args += ["-threads", str(threads)]
    # faststart: the index goes before the media so a browser can start playing
    # before it has downloaded the whole file. The queue size avoids ffmpeg's
    # "Too many packets buffered" abort when one stream is copied and the other encoded.
    args += ["-max_muxing_queue_size", "4096", "-movflags", "+faststart", "-f", "mp4", dest]
    return args


WHISPER_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class PosterPlan:
    """Where to look for the poster frame: ``window`` seconds from ``start``, best of ``frames``."""

    start: float
    window: float
    frames: int


def plan_poster(duration: float, frame_rate: float | None) -> PosterPlan:
    """Look from 10 % of the video, over up to 10 % of it, for the poster.

    The first frames are often black (fade-in, lens cap, a title card) and the
    last ones are credits; ffmpeg's ``thumbnail`` filter then picks the frame
    closest to the average of the window, which skips flashes and black frames.
    """
    fps = frame_rate or 25.0
    # The filter buffers every frame of the window: 60 frames of 720p is ~80 MB,
    # and 2-4 s of a long video is as representative as more.
    # ffmpeg's thumbnail filter needs at least two frames to compare.
    frames = max(2, min(60, int(0.1 * duration * fps)))
    return PosterPlan(start=round(0.1 * duration, 3), window=round(frames / fps, 3), frames=frames)


def poster_args(video: str, dest: str, plan: PosterPlan) -> list[str]:
    """One JPEG poster from the already transcoded (upright, 8-bit) web video."""
    return [
        *_COMMON,
        "-ss",
        f"{plan.start:.3f}",
        "-t",
        f"{plan.window:.3f}",
        "-i",
        video,
        "-an",
        "-sn",
        "-vf",
        f"thumbnail=n={plan.frames}",
        "-frames:v",
        "1",
        "-q:v",
        "3",
        "-c:v",
        "mjpeg",
        "-f",
        "image2",
        dest,
    ]


@dataclass(frozen=True)
class ThumbnailTile:
    """One cue of the thumbnails track: a time range and its rectangle in the sprite."""

    start: float
    end: float
    x: int
    y: int
    width: int
    height: int

    @property
    def midpoint(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class ThumbnailSheet:
    """A contact sheet: ``columns`` x ``rows`` tiles of ``tile_width`` x ``tile_height``."""

    columns: int
    rows: int
    tile_width: int
    tile_height: int
    tiles: tuple[ThumbnailTile, ...] = field(default_factory=tuple)

    @property
    def width(self) -> int:
        return self.columns * self.tile_width

    @property
    def height(self) -> int:
        return self.rows * self.tile_height


def plan_thumbnails(
    duration: float,
    width: int,
    height: int,
    *,
    max_tiles: int = 25,
    columns: int = 5,
    tile_width: int = 160,
    min_interval: float = 1.0,
) -> ThumbnailSheet:
    """Split the video into equal intervals, one tile each, at most ``max_tiles``.

    Short clips get fewer tiles (one per ``min_interval`` seconds) rather than
    the same frame repeated.
    """
    count = max(1, min(max_tiles, int(duration // min_interval)))
    interval = duration / count
    tile_w = _even(min(tile_width, width))
    tile_h = _even(tile_w * height / width)
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    tiles = tuple(
        ThumbnailTile(
            start=round(i * interval, 3),
            end=round(duration if i == count - 1 else (i + 1) * interval, 3),
            x=(i % cols) * tile_w,
            y=(i // cols) * tile_h,
            width=tile_w,
            height=tile_h,
        )
        for i in range(count)
    )
    return ThumbnailSheet(columns=cols, rows=rows, tile_width=tile_w, tile_height=tile_h, tiles=tiles)


def thumbnail_sheet_args(video: str, dest: str, sheet: ThumbnailSheet) -> list[str]:
    """ffmpeg arguments that tile one frame from the middle of each interval into a JPEG.

    Each tile is its own input with a fast keyframe seek, so an hour-long video
    costs ``len(tiles)`` short decodes instead of decoding the whole file.
    """
    args: list[str] = [*_COMMON]
    for tile in sheet.tiles:
        # -t bounds how far each input is read after the seek point.
        args += ["-ss", f"{tile.midpoint:.3f}", "-t", "1", "-i", video]
    scaled = [
        f"[{i}:v:0]trim=end_frame=1,setpts=PTS-STARTPTS,scale={sheet.tile_width}:{sheet.tile_height},setsar=1[t{i}]"
        for i in range(len(sheet.tiles))
    ]
    inputs = "".join(f"[t{i}]" for i in range(len(sheet.tiles)))
    graph = ";".join([*scaled, f"{inputs}concat=n={len(sheet.tiles)}:v=1:a=0,tile={sheet.columns}x{sheet.rows}[sheet]"])
    return [
        *args,
        "-filter_complex",
        graph,
        "-map",
        "[sheet]",
        "-frames:v",
        "1",
        "-q:v",
        "4",
        "-c:v",
        "mjpeg",
        "-f",
        "image2",
        dest,
    ]


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def render_thumbnails_vtt(sheet: ThumbnailSheet, image_url: str = "thumbnails.jpg") -> str:
    """A WebVTT thumbnails track: each cue points into the sprite with a ``#xywh=`` fragment.

    :param image_url: how the player should fetch the sprite, relative to the
        VTT file (the default suits both files published side by side).
    """
    lines = ["WEBVTT", ""]
    for tile in sheet.tiles:
        lines.append(f"{_vtt_time(tile.start)} --> {_vtt_time(tile.end)}")
        lines.append(f"{image_url}#xywh={tile.x},{tile.y},{tile.width},{tile.height}")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# HLS: an adaptive rendition ladder (optional)
# --------------------------------------------------------------------------- #

DEFAULT_HLS_HEIGHTS = (360, 720, 1080)
HLS_SEGMENT_SECONDS = 4
HLS_DIR = "hls"
HLS_MASTER_NAME = "master.m3u8"
HLS_PLAYLIST_NAME = "index.m3u8"
HLS_AUDIO_NAME = "audio"
HLS_AUDIO_GROUP = "audio"
# What ffmpeg's native AAC encoder writes: AAC-LC. The ladder always encodes
# its audio (never copies), so this is also what the CODECS attribute promises.
HLS_AUDIO_CODECS = "mp4a.40.2"
# The x264 bit-rate cap per rendition, in bits per pixel per frame at 30 fps
# (1080p: ~6.2 Mbit/s, 720p: ~2.8, 360p: ~0.7). The ladder is CRF-encoded
# like the mp4; the cap keeps a busy scene from producing segments far above
# what a player's bandwidth estimate chose the rendition for.
_HLS_CAP_BITS_PER_PIXEL = 0.1


@dataclass(frozen=True)
class HlsRendition:
    """One rung of the ladder: ``name`` is also its folder under ``hls/`` (``"720p"``).

    :param width: display width (even), after rotation.
    :param height: display height (even), after rotation.
    :param maxrate: x264's bit-rate cap (bits/s); ``bufsize`` is twice it.
    """

    name: str
    width: int
    height: int
    maxrate: int

    @property
    def bufsize(self) -> int:
        return 2 * self.maxrate

    @property
    def playlist(self) -> str:
        return f"{self.name}/{HLS_PLAYLIST_NAME}"


@dataclass(frozen=True)
class HlsPlan:
    """How ffmpeg makes the whole ladder in one process.

    :param source_filters: the filters every rung shares before the split
        (deinterlace, tone-map, frame-rate cap), the same as the mp4's.
    :param audio: the track encoded once into a shared audio group; ``None``
        for videos without sound.
    :param frame_rate: the output frame rate, for the master playlist; ``None`` when unknown.
    """

    stream_index: int
    renditions: tuple[HlsRendition, ...]
    segment_seconds: int = HLS_SEGMENT_SECONDS
    source_filters: tuple[str, ...] = ()
    audio: AudioPlan | None = None
    audio_channels: int = 2
    crf: int = 23
    preset: str = "veryfast"
    frame_rate: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.renditions)

    @property
    def audio_playlist(self) -> str | None:
        return f"{HLS_AUDIO_NAME}/{HLS_PLAYLIST_NAME}" if self.audio is not None else None


def hls_heights(short_side: int, heights: Iterable[int]) -> tuple[int, ...]:
    """The rungs of ``heights`` a source whose short side is ``short_side`` gets.

    Never upscale: only rungs up to the source's size, but at least the smallest
    rung (which then keeps the source's own size) so every video has a ladder.
    """
    ladder = sorted(set(heights))
    if not ladder:
        raise ValueError("the HLS ladder needs at least one rendition height")
    return tuple(h for h in ladder if h <= short_side) or (ladder[0],)


def plan_hls(
    info: MediaInfo,
    *,
    heights: Iterable[int] = DEFAULT_HLS_HEIGHTS,
    segment_seconds: int = HLS_SEGMENT_SECONDS,
    crf: int = 23,
    preset: str = "veryfast",
    max_fps: float = DEFAULT_MAX_FPS,
    can_tonemap: bool = True,
    audio_track: AudioStream | None = None,
) -> HlsPlan | None:
    """The HLS ladder for ``info``; ``None`` for audio-only uploads (nothing to stream as video).

    :param audio_track: the track the ladder carries (the first one ``video.mp4``
        keeps, so never a silent default); default: the default track.

    Heights bound the *short* side, as ``max_height`` does for the mp4, so a
    portrait phone clip's "720p" is 720x1280. Every rung is re-encoded (a copy
    could not have keyframes on the segment grid).
    """
    video = info.video
    if video is None:
        return None
    display_w, display_h = video.display_width, video.display_height
    frame_rate = video.frame_rate
    if frame_rate and frame_rate > max_fps:
        frame_rate = float(_fps_cap(frame_rate, max_fps))
    rate_factor = max(1.0, (frame_rate or 30.0) / 30.0)
    renditions: list[HlsRendition] = []
    for height in hls_heights(min(display_w, display_h), heights):
        width, out_h = output_size(display_w, display_h, height)
        if any((r.width, r.height) == (width, out_h) for r in renditions):
            continue
        cap = width * out_h * 30 * _HLS_CAP_BITS_PER_PIXEL * rate_factor
        renditions.append(
            HlsRendition(
                name=f"{min(width, out_h)}p",
                width=width,
                height=out_h,
                maxrate=max(100_000, round(cap / 1000) * 1000),
            )
        )
    audio_plan: AudioPlan | None = None
    channels = 2
    chosen = audio_track or info.default_audio
    if chosen is not None:
        channels = min(chosen.channels, 2) if chosen.channels else 2
        audio_plan = AudioPlan(
            stream_index=chosen.index,
            copy=False,
            channels=2 if chosen.channels > 2 else None,
            sample_rate=48000 if chosen.sample_rate and chosen.sample_rate > 48000 else None,
            language=chosen.language,
        )
    return HlsPlan(
        stream_index=video.index,
        renditions=tuple(renditions),
        segment_seconds=segment_seconds,
        source_filters=tuple(_source_filters(video, max_fps=max_fps, can_tonemap=can_tonemap)),
        audio=audio_plan,
        audio_channels=channels,
        crf=crf,
        preset=preset,
        frame_rate=frame_rate,
    )


def hls_filter_graph(plan: HlsPlan) -> str:
    """Decode once, run the shared filters once, split, scale each rung: ``[v0]``, ``[v1]``..."""
    count = len(plan.renditions)
    head = ",".join([*plan.source_filters, f"split={count}"])
    graph = [f"[0:{plan.stream_index}]{head}" + "".join(f"[s{i}]" for i in range(count))]
    for i, rung in enumerate(plan.renditions):
        graph.append(f"[s{i}]" + ",".join(_scale_filters(rung.width, rung.height)) + f"[v{i}]")
    return ";".join(graph)


def hls_args(source: str, plan: HlsPlan, *, threads: int = 0) -> list[str]:
    """ffmpeg arguments that write the ladder's media playlists and fMP4 segments.

    Output paths are relative (``720p/index.m3u8``, ``720p/seg_00001.m4s``,
    ``720p/init_720p.mp4``, ``audio/...``): run ffmpeg with the ladder's
    folder as its working directory, so no '%' in a parent folder's name can be
    taken for a pattern. The master playlist is not ffmpeg's: the hook writes
    it from the measured segments (see :func:`render_master_playlist`).
    """
    seconds = plan.segment_seconds
    args = [*_COMMON, "-i", source, "-filter_complex", hls_filter_graph(plan)]
    for i in range(len(plan.renditions)):
        args += ["-map", f"[v{i}]"]
    if plan.audio is not None:
        args += ["-map", f"0:{plan.audio.stream_index}"]
    args += ["-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn"]
    args += [
        "-c:v",
        "libx264",
        "-preset",
        plan.preset,
        "-crf",
        str(plan.crf),
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        # A keyframe (IDR) at every segment boundary, on the same frames in
        # every rung (they come from one decode): a player can switch rungs at
        # any segment, and the muxer cuts every rung at the same times.
        "-force_key_frames",
        f"expr:gte(t,n_forced*{seconds})",
        "-forced-idr",
        "1",
        "-fps_mode",
        "vfr",
    ]
    for i, rung in enumerate(plan.renditions):
        args += [f"-maxrate:v:{i}", str(rung.maxrate), f"-bufsize:v:{i}", str(rung.bufsize)]
    if plan.audio is not None:
        args += ["-c:a", "aac", "-b:a", AUDIO_BITRATE]
        if plan.audio.channels:
            args += ["-ac", str(plan.audio.channels)]
        if plan.audio.sample_rate:
            args += ["-ar", str(plan.audio.sample_rate)]
    if threads > 0:
        args += ["-threads", str(threads)]
    group = f",agroup:{HLS_AUDIO_GROUP}" if plan.audio is not None else ""
    stream_map = [f"v:{i}{group},name:{rung.name}" for i, rung in enumerate(plan.renditions)]
    if plan.audio is not None:
        stream_map.append(f"a:0{group},name:{HLS_AUDIO_NAME}")
    # ffmpeg only expands %v in the init segment's name when there are several
    # variant streams; with one it would write a file literally named "init_%v.mp4".
    init = "init_%v.mp4" if len(stream_map) > 1 else f"init_{plan.renditions[0].name}.mp4"
    args += [
        "-max_muxing_queue_size",
        "4096",
        "-f",
        "hls",
        "-hls_time",
        str(seconds),
        "-hls_playlist_type",
        "vod",
        "-hls_list_size",
        "0",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_fmp4_init_filename",
        init,
        "-start_number",
        "1",
        "-hls_segment_filename",
        "%v/seg_%05d.m4s",
        "-var_stream_map",
        " ".join(stream_map),
        f"%v/{HLS_PLAYLIST_NAME}",
    ]
    return args


@dataclass(frozen=True)
class MediaPlaylist:
    """The parts of an HLS media playlist the pipeline checks: the init segment and the segments."""

    target_duration: float
    init: str | None
    segments: tuple[tuple[str, float], ...]  # (uri, seconds)
    ended: bool = False

    @property
    def duration(self) -> float:
        return sum(seconds for _, seconds in self.segments)


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Read an HLS media playlist (the subset ffmpeg writes); raises ``ValueError`` on a non-playlist."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an HLS playlist (no #EXTM3U)")
    target, init, ended = 0.0, None, False
    segments: list[tuple[str, float]] = []
    pending: float | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.partition(":")[2])
        elif line.startswith("#EXT-X-MAP:"):
            match = re.search(r'URI="([^"]+)"', line)
            init = match.group(1) if match else None
        elif line.startswith("#EXTINF:"):
            pending = float(line.partition(":")[2].split(",", 1)[0])
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#"):
            if pending is None:
                raise ValueError(f"segment {line!r} has no #EXTINF duration")
            segments.append((line, pending))
            pending = None
    return MediaPlaylist(target_duration=target, init=init, segments=tuple(segments), ended=ended)


def peak_segment_bitrate(segments: Sequence[tuple[float, int]], target_duration: float) -> int:
    """BANDWIDTH as RFC 8216 defines it: the highest bit rate of any run of contiguous
    segments lasting 0.5 to 1.5 target durations; ``segments`` are (seconds, bytes).

    A clip shorter than half a target duration has no such run: its average is used.
    """
    best = 0.0
    for start in range(len(segments)):
        seconds = size = 0.0
        for duration, nbytes in segments[start:]:
            seconds += duration
            size += nbytes
            if seconds > 1.5 * target_duration:
                break
            if seconds >= 0.5 * target_duration:
                best = max(best, 8 * size / seconds)
    if best == 0.0:
        return average_bitrate(segments)
    return math.ceil(best)


def average_bitrate(segments: Sequence[tuple[float, int]]) -> int:
    """AVERAGE-BANDWIDTH: all the bits over all the seconds."""
    seconds = sum(d for d, _ in segments)
    return math.ceil(8 * sum(n for _, n in segments) / seconds) if seconds > 0 else 0


def avc_codecs_attribute(init_segment: bytes) -> str | None:
    """RFC 6381 codec string (``avc1.64001f``) from the ``avcC`` box of an fMP4 init segment.

    The three bytes after the box's version byte are exactly the profile, the
    constraint flags and the level the attribute spells in hex; ``None`` when
    there is no ``avcC`` (not H.264).
    """
    at = init_segment.find(b"avcC")
    if at < 0 or len(init_segment) < at + 8:
        return None
    profile, constraints, level = init_segment[at + 5 : at + 8]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


@dataclass(frozen=True)
class HlsVariant:
    """One ``#EXT-X-STREAM-INF`` entry of the master playlist.

    :param bandwidth: peak bits/s, audio included (RFC 8216 section 4.3.4.2).
    :param codecs: every codec a player needs for it, audio group included.
    """

    uri: str
    width: int
    height: int
    bandwidth: int
    average_bandwidth: int
    codecs: str
    frame_rate: float | None = None


def render_master_playlist(
    variants: Sequence[HlsVariant], *, audio_uri: str | None = None, audio_channels: int = 2
) -> str:
    """The master playlist: one variant per rung, lowest first, and the shared audio rendition.

    Players start with the first variant (Safari) or their bandwidth estimate
    (hls.js); the lowest first starts fast on any connection and adapts up.
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio_uri is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{HLS_AUDIO_GROUP}",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'CHANNELS="{audio_channels}",URI="{audio_uri}"'
        )
    for variant in sorted(variants, key=lambda v: (v.width * v.height, v.bandwidth)):
        attributes = [
            f"BANDWIDTH={variant.bandwidth}",
            f"AVERAGE-BANDWIDTH={variant.average_bandwidth}",
            f"RESOLUTION={variant.width}x{variant.height}",
            f'CODECS="{variant.codecs}"',
        ]
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        if audio_uri is not None:
            attributes.append(f'AUDIO="{HLS_AUDIO_GROUP}"')
        lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", variant.uri]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# Running ffmpeg: time budgets and progress
# --------------------------------------------------------------------------- #


def stage_timeout(duration: float, *, factor: float, floor_seconds: float) -> float:
    """Wall-clock budget for one ffmpeg run over ``duration`` seconds of media."""
    return max(float(floor_seconds), factor * max(duration, 0.0))


def progress_seconds(line: str) -> float | None:
    """Media seconds done, from one line of ffmpeg's ``-progress`` output; ``None`` for other lines.

    ``out_time_us`` is microseconds; so is ``out_time_ms``, despite its name
    (a long-standing ffmpeg quirk). Both read ``N/A`` before the first frame.
    """
    key, _, value = line.strip().partition("=")
    if key in ("out_time_us", "out_time_ms"):
        micros = _float(value)
        return micros / 1e6 if micros is not None and micros >= 0 else None
    return None


def progress_percent(done_seconds: float, duration: float) -> float:
    if duration <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * done_seconds / duration))


# --------------------------------------------------------------------------- #
# Probing without ffprobe
# --------------------------------------------------------------------------- #

_BANNER_INPUT = re.compile(r"^Input #0, (?P<format>[^,]+(?:,[^ ,]+)*), from ")
_BANNER_DURATION = re.compile(r"^\s+Duration: (?P<d>[\d:.]+|N/A)(?:, start: [-\d.]+)?(?:, bitrate: (?P<br>\d+) kb/s)?")
_BANNER_STREAM = re.compile(
    r"^\s+Stream #0:(?P<index>\d+)(?:\[[^\]]*\])?(?:\((?P<lang>\w+)\))?: "
    r"(?P<type>Video|Audio|Subtitle|Data|Attachment): (?P<rest>.*)$"
)
_BANNER_ROTATION = re.compile(r"display ?matrix: rotation of (?P<deg>-?[\d.]+) degrees", re.IGNORECASE)
_BANNER_SIZE = re.compile(r"(?<![\w])(?P<w>\d{2,5})x(?P<h>\d{2,5})(?: \[SAR (?P<sar>\d+:\d+))?")
_BANNER_FPS = re.compile(r"(?P<fps>[\d.]+k?) fps")
_BANNER_RATE = re.compile(r"(?P<hz>\d+) Hz")
_CHANNEL_WORDS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _banner_seconds(text: str) -> float | None:
    if text == "N/A":
        return None
    parts = text.split(":")
    try:
        return float(sum(float(p) * 60**i for i, p in enumerate(reversed(parts))))
    except ValueError:
        return None


def parse_ffmpeg_banner(stderr: str) -> dict[str, Any]:
    """Rebuild the subset of ffprobe's JSON we use from ``ffmpeg -i <file>``'s stderr.

    For ffmpeg builds without ffprobe (the static binary of ``imageio-ffmpeg``).
    The banner is meant for people, so this is a best effort: codec, size,
    pixel format, frame rate, rotation, channels and the default flag are
    recovered; bit rates per stream and the colour transfer are not, so HDR
    sources are handled as plain 10-bit. Raises ``ValueError`` when the banner
    has no input section (the file could not be opened).
    """
    fmt: dict[str, Any] = {}
    streams: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in stderr.splitlines():
        if match := _BANNER_INPUT.match(line):
            fmt["format_name"] = match.group("format")
            continue
        if (match := _BANNER_DURATION.match(line)) and "format_name" in fmt:
            seconds = _banner_seconds(match.group("d"))
            if seconds is not None:
                fmt["duration"] = str(seconds)
            if match.group("br"):
                fmt["bit_rate"] = str(int(match.group("br")) * 1000)
            continue
        if match := _BANNER_STREAM.match(line):
            current = _banner_stream(match)
            streams.append(current)
            continue
        if current is not None and (match := _BANNER_ROTATION.search(line)):
            current.setdefault("side_data_list", []).append({"rotation": float(match.group("deg"))})
    if "format_name" not in fmt:
        raise ValueError("ffmpeg printed no input description")
    return {"format": fmt, "streams": streams}


def _banner_stream(match: re.Match[str]) -> dict[str, Any]:
    rest = match.group("rest")
    codec_part = rest.split(",", 1)[0]
    codec = codec_part.split(" ", 1)[0].strip()
    profile = re.search(r"\(([^)/]+)\)", codec_part)
    stream: dict[str, Any] = {
        "index": int(match.group("index")),
        "codec_type": match.group("type").lower(),
        "codec_name": codec,
        "profile": profile.group(1).strip() if profile else None,
        "disposition": {
            "default": int("(default)" in rest),
            "attached_pic": int("(attached pic)" in rest),
        },
    }
    if match.group("lang"):
        stream["tags"] = {"language": match.group("lang")}
    fields = [f.strip() for f in _split_top_level(rest)]
    if stream["codec_type"] == "video":
        if len(fields) > 1:
            stream["pix_fmt"] = fields[1].split("(", 1)[0].strip()
            if "(" in fields[1] and ("top first" in fields[1] or "bottom first" in fields[1]):
                stream["field_order"] = "tt" if "top first" in fields[1] else "bb"
        if size := _BANNER_SIZE.search(rest):
            stream["width"], stream["height"] = int(size.group("w")), int(size.group("h"))
            if size.group("sar"):
                stream["sample_aspect_ratio"] = size.group("sar")
        if fps := _BANNER_FPS.search(rest):
            value = fps.group("fps")
            rate = float(value[:-1]) * 1000 if value.endswith("k") else float(value)
            stream["avg_frame_rate"] = f"{rate}/1"
    elif stream["codec_type"] == "audio":
        if hz := _BANNER_RATE.search(rest):
            stream["sample_rate"] = hz.group("hz")
        for word in fields:
            channels = _CHANNEL_WORDS.get(word.split("(", 1)[0].strip())
            if channels:
                stream["channels"] = channels
                break
            if m := re.fullmatch(r"(\d+) channels", word):
                stream["channels"] = int(m.group(1))
                break
    return stream


def _split_top_level(text: str) -> Iterable[str]:
    """Split on commas that are not inside parentheses (``yuv420p(tv, bt709)`` stays whole)."""
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            yield text[start:i]
            start = i + 1
    yield text[start:]
