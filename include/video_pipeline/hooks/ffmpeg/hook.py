"""FfmpegHook: the parts of the ffmpeg hook (probe, transcode, stills, HLS, audio) as one Airflow hook.

Each part is a class of its own module, built on
:class:`~include.video_pipeline.hooks.ffmpeg.runner.FfmpegRunner`; this module
only puts them together, so callers hold one hook with one set of settings and
binaries.
"""

from __future__ import annotations

from include.video_pipeline.hooks.ffmpeg.audio import AudioExtraction
from include.video_pipeline.hooks.ffmpeg.transcode import Transcoding


class FfmpegHook(Transcoding, AudioExtraction):
    """Probe and transcode local media files with ffmpeg; no Airflow connection is needed.

    :param settings: limits and encoder settings (``include.video_pipeline.config``).
    :param ffmpeg_path: an explicit ffmpeg binary; default: ``ffmpeg`` on ``PATH``,
        else imageio-ffmpeg's.
    :param ffprobe_path: an explicit ffprobe; default: ``ffprobe`` next to a
        system ffmpeg. ``""`` forces the ``ffmpeg -i`` fallback.
    """

    conn_name_attr = None
    hook_name = "FFmpeg"
