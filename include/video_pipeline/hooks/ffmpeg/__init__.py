"""Run ffmpeg and ffprobe: probe uploads, make the web rendition (and optionally an HLS ladder),
extract audio for Whisper.

Every decision (copy or re-encode, sizes, filters, which audio track) is made in
:mod:`include.video_pipeline.core.media`; this hook only runs the commands it
builds, with a time budget, progress in the task log, and careful cleanup.

Binaries: the system ``ffmpeg``/``ffprobe`` when they are on ``PATH``, else the
static ffmpeg shipped by ``imageio-ffmpeg``. That build has no ffprobe, so
probing then falls back to parsing the input description ``ffmpeg -i`` prints
(:func:`~include.video_pipeline.core.media.parse_ffmpeg_banner`): codecs, sizes,
rotation, channels and default flags are recovered, the colour transfer is
not, so HDR sources are converted to 8 bits without tone-mapping.

Commands are run with :mod:`subprocess` rather than through ffmpeg-python's
``run()``: the pipeline needs a timeout, a process-group kill, and live
``-progress`` parsing, which ffmpeg-python does not offer; the argument lists it
would build are built (and unit-tested) in ``core.media`` instead.

Which submodule holds what (everything below is importable from this package):

* ``hook``: :class:`FfmpegHook`, the one hook callers use, put together from the parts below;
* ``runner``: finding the binaries, running one command (time budget, progress,
  process-group kill) and classifying failures (:data:`STDERR_TAIL_LINES`);
* ``probe``: :meth:`~FfmpegHook.probe` and :meth:`~FfmpegHook.measure_audio`;
* ``transcode``: :meth:`~FfmpegHook.transcode`, the web ``video.mp4`` and its checks;
* ``thumbnails``: the poster and the thumbnail sheet with its WebVTT;
* ``hls``: :meth:`~FfmpegHook.make_hls`, the HLS ladder;
* ``audio``: :meth:`~FfmpegHook.extract_audio` and :func:`audio_extract_args` (the WAV for Whisper);
* ``results``: what they return (:class:`TranscodeResult`, :class:`HlsResult`,
  :class:`AudioExtract`), the output file names and :class:`FfmpegError`;
* ``files``: temporary names, whole-folder swaps and cleanup of outputs.
"""

from __future__ import annotations

from include.video_pipeline.hooks.ffmpeg.audio import audio_extract_args
from include.video_pipeline.hooks.ffmpeg.hook import FfmpegHook
from include.video_pipeline.hooks.ffmpeg.results import (
    POSTER_NAME,
    THUMBNAILS_NAME,
    THUMBNAILS_VTT_NAME,
    VIDEO_NAME,
    AudioExtract,
    FfmpegError,
    HlsResult,
    TranscodeResult,
)
from include.video_pipeline.hooks.ffmpeg.runner import STDERR_TAIL_LINES

__all__ = [
    "POSTER_NAME",
    "STDERR_TAIL_LINES",
    "THUMBNAILS_NAME",
    "THUMBNAILS_VTT_NAME",
    "VIDEO_NAME",
    "AudioExtract",
    "FfmpegError",
    "FfmpegHook",
    "HlsResult",
    "TranscodeResult",
    "audio_extract_args",
]
