"""HLS: planning the optional adaptive rendition ladder and the ffmpeg command that encodes it.

One ffmpeg process decodes the source once, runs the shared filters once, and
writes every rung and the shared audio rendition as fMP4 segments with their
media playlists; the master playlist is written afterwards from the measured
segments (see :mod:`~include.video_pipeline.core.media.hls_playlists`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from include.video_pipeline.core import outputs
from include.video_pipeline.core.media.commands import _COMMON
from include.video_pipeline.core.media.planning import (
    AUDIO_BITRATE,
    DEFAULT_MAX_FPS,
    AudioPlan,
    _fps_cap,
    _scale_filters,
    _source_filters,
    output_size,
)
from include.video_pipeline.core.media.probe import AudioStream, MediaInfo

DEFAULT_HLS_HEIGHTS = (360, 720, 1080)
HLS_SEGMENT_SECONDS = 4
HLS_DIR = outputs.HLS_DIR
HLS_MASTER_NAME = outputs.HLS_MASTER
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
