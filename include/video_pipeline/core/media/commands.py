"""ffmpeg argument lists for the web mp4, and the options every ffmpeg command shares.

The lists exclude the executable and the global options
:class:`~include.video_pipeline.hooks.ffmpeg.FfmpegHook` adds for progress
reporting; the picture and HLS commands (:mod:`~include.video_pipeline.core.media.thumbnails`,
:mod:`~include.video_pipeline.core.media.hls`) start from the same shared options.
"""

from __future__ import annotations

from include.video_pipeline.core.media.planning import AUDIO_BITRATE, KEYFRAME_SECONDS, TranscodePlan

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
