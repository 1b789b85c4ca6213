"""What ffprobe found in an upload: the stream and file descriptions, and the parser of ffprobe's JSON.

Every decision the pipeline makes about an upload starts from :class:`MediaInfo`.
:func:`parse_probe` builds it from ``ffprobe -show_format -show_streams -of json``
output (or from :func:`~include.video_pipeline.core.media.banner.parse_ffmpeg_banner`'s
imitation of it) and tolerates the missing, zero and junk values real files carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

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
