"""What an upload contains, whether we accept it, and how ffmpeg should turn it into web media.

Pure logic only: this package reads ffprobe's JSON, decides, and builds ffmpeg
argument lists; running ffmpeg is :class:`~include.video_pipeline.hooks.ffmpeg.FfmpegHook`'s
job. Keeping the decisions here means every branch (rotated phone video, 10-bit
HDR, audio-only upload, a second audio track...) is tested with plain dicts in
milliseconds, and the hook stays a thin runner.

Every public name is re-exported here (``from include.video_pipeline.core.media
import plan_transcode``); the modules hold one job each:

* :mod:`.probe`: the probe result (:class:`MediaInfo`, its video and audio
  streams) and :func:`parse_probe`, which builds it from ffprobe's JSON.
* :mod:`.acceptance`: accepting or refusing an upload (:func:`check_size`,
  :func:`validate_media`, :func:`check_complete_output`) and telling the file's
  faults from the machine's (:func:`classify_ffmpeg_failure`,
  :func:`classify_probe_failure`, :func:`sniff_container`).
* :mod:`.planning`: planning the transcode (:func:`plan_transcode`,
  :func:`output_size`) and the filter chains it shares with the HLS ladder.
* :mod:`.commands`: the web mp4's ffmpeg arguments (:func:`transcode_args`) and
  the options every command shares.
* :mod:`.thumbnails`: the poster, the thumbnail sheet and its WebVTT track.
* :mod:`.hls`: the HLS ladder's plan and ffmpeg arguments (:func:`plan_hls`,
  :func:`hls_args`).
* :mod:`.hls_playlists`: reading media playlists, measuring bit rates, writing
  the master playlist.
* :mod:`.progress`: time budgets and progress of an ffmpeg run.
* :mod:`.banner`: probing without ffprobe (:func:`parse_ffmpeg_banner`).

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

from include.video_pipeline.core.media.acceptance import (
    DEFAULT_MAX_VIDEO_PIXELS,
    check_complete_output,
    check_size,
    classify_ffmpeg_failure,
    classify_probe_failure,
    expected_output_duration,
    format_duration,
    sniff_container,
    validate_media,
)
from include.video_pipeline.core.media.banner import parse_ffmpeg_banner
from include.video_pipeline.core.media.commands import WHISPER_SAMPLE_RATE, transcode_args
from include.video_pipeline.core.media.hls import (
    DEFAULT_HLS_HEIGHTS,
    HLS_AUDIO_CODECS,
    HLS_AUDIO_GROUP,
    HLS_AUDIO_NAME,
    HLS_DIR,
    HLS_MASTER_NAME,
    HLS_PLAYLIST_NAME,
    HLS_SEGMENT_SECONDS,
    HlsPlan,
    HlsRendition,
    hls_args,
    hls_filter_graph,
    hls_heights,
    plan_hls,
)
from include.video_pipeline.core.media.hls_playlists import (
    HlsVariant,
    MediaPlaylist,
    avc_codecs_attribute,
    average_bitrate,
    parse_media_playlist,
    peak_segment_bitrate,
    render_master_playlist,
)
from include.video_pipeline.core.media.planning import (
    AUDIO_BITRATE,
    DEFAULT_MAX_FPS,
    DEFAULT_MAX_REMUX_BITRATE,
    KEYFRAME_SECONDS,
    AudioPlan,
    TranscodePlan,
    VideoPlan,
    output_size,
    plan_transcode,
)
from include.video_pipeline.core.media.probe import (
    AudioStream,
    MediaInfo,
    VideoStream,
    choose_audio_stream,
    parse_probe,
)
from include.video_pipeline.core.media.progress import progress_percent, progress_seconds, stage_timeout
from include.video_pipeline.core.media.thumbnails import (
    PosterPlan,
    ThumbnailSheet,
    ThumbnailTile,
    plan_poster,
    plan_thumbnails,
    poster_args,
    render_thumbnails_vtt,
    thumbnail_sheet_args,
)

__all__ = [
    "AUDIO_BITRATE",
    "DEFAULT_HLS_HEIGHTS",
    "DEFAULT_MAX_FPS",
    "DEFAULT_MAX_REMUX_BITRATE",
    "DEFAULT_MAX_VIDEO_PIXELS",
    "HLS_AUDIO_CODECS",
    "HLS_AUDIO_GROUP",
    "HLS_AUDIO_NAME",
    "HLS_DIR",
    "HLS_MASTER_NAME",
    "HLS_PLAYLIST_NAME",
    "HLS_SEGMENT_SECONDS",
    "KEYFRAME_SECONDS",
    "WHISPER_SAMPLE_RATE",
    "AudioPlan",
    "AudioStream",
    "HlsPlan",
    "HlsRendition",
    "HlsVariant",
    "MediaInfo",
    "MediaPlaylist",
    "PosterPlan",
    "ThumbnailSheet",
    "ThumbnailTile",
    "TranscodePlan",
    "VideoPlan",
    "VideoStream",
    "avc_codecs_attribute",
    "average_bitrate",
    "check_complete_output",
    "check_size",
    "choose_audio_stream",
    "classify_ffmpeg_failure",
    "classify_probe_failure",
    "expected_output_duration",
    "format_duration",
    "hls_args",
    "hls_filter_graph",
    "hls_heights",
    "output_size",
    "parse_ffmpeg_banner",
    "parse_media_playlist",
    "parse_probe",
    "peak_segment_bitrate",
    "plan_hls",
    "plan_poster",
    "plan_thumbnails",
    "plan_transcode",
    "poster_args",
    "progress_percent",
    "progress_seconds",
    "render_master_playlist",
    "render_thumbnails_vtt",
    "sniff_container",
    "stage_timeout",
    "thumbnail_sheet_args",
    "transcode_args",
    "validate_media",
]
