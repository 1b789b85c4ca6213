"""Planning the transcode: stream copy or re-encode, the output size and the filter chain.

:func:`plan_transcode` decides each kept stream on its own and says why anything
is re-encoded. The filter builders here (deinterlace, tone-map, frame-rate cap,
scale) are shared with the HLS ladder in :mod:`~include.video_pipeline.core.media.hls`,
so the mp4 and every rendition are made the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from include.video_pipeline.core.media.probe import AudioStream, MediaInfo, VideoStream

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
