"""VideoTranscodeOperator: web-ready MP4, poster and thumbnails (and optionally an HLS ladder) from the upload."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from include.video_pipeline.core.media import HLS_DIR, HLS_MASTER_NAME
from include.video_pipeline.core.stage_outputs import MediaOutput
from include.video_pipeline.operators.base import StageContext, VideoStageOperator
from include.video_pipeline.pipeline.staging import fetch_source, source_sha256, stage_files

# Part of the cache key: bump when what video.mp4 contains changes for the same
# upload and settings (2: every audio track with sound, not only the default one).
OUTPUT_RULE_VERSION = 2


class VideoTranscodeOperator(VideoStageOperator):
    """Probe the upload (refusing what can never work), then transcode or remux it.

    Outputs go to ``staging/<video id>/``; ``publish`` makes them public.
    ``video.mp4`` keeps every audio track that has sound, the default one first.
    A playable upload with odd timing (sound that starts late or ends early,
    gaps, no duration in the container) is processed and flagged in the ledger
    (``videos.media_flags``), the manifest and the report; only damage found
    while decoding makes it ``corrupt`` (see ``core/integrity.py``).
    """

    stage = "transcode"
    ui_color = "#fde9d9"

    def cache_input(self, ctx: StageContext) -> tuple[str, dict[str, Any]]:
        settings = dataclasses.asdict(ctx.settings.transcode)
        if not settings["hls"]:
            # With HLS off the outputs are what they were before HLS existed: keep
            # the cache key too, so turning the feature on is all that redoes work.
            settings = {k: v for k, v in settings.items() if not k.startswith("hls")}
        return content_hash(ctx), {"transcode": settings, "output_rule": OUTPUT_RULE_VERSION}

    def run_stage(self, ctx: StageContext) -> MediaOutput:
        from include.video_pipeline.hooks.ffmpeg import FfmpegHook

        video = ctx.video
        source = fetch_source(ctx.store, ctx.settings, video.video_id, video.rel_key)
        ffmpeg = FfmpegHook(settings=ctx.settings.transcode)
        info = ffmpeg.probe(source)
        with tempfile.TemporaryDirectory(prefix="transcode-", dir=source.parent) as out:
            result = ffmpeg.transcode(source, Path(out), info)
            # base: the HLS ladder keeps its folders (hls/720p/seg_00001.m4s).
            staged = stage_files(ctx.store, ctx.settings, video.video_id, sorted(result.paths), base=Path(out))
        transcoded = _jsonable(result)
        if result.hls is not None:
            # Thousands of segment paths say nothing the manifest does not: keep the ledger row small.
            transcoded["hls"]["paths"] = len(result.hls.paths)
        else:
            del transcoded["hls"]
        media = {"probe": _jsonable(info), "transcode": transcoded}
        ctx.db.save_media(video.video_id, media)
        if result.flags:
            ctx.db.add_media_flags(video.video_id, result.flags)
        return MediaOutput(
            files=[f.to_dict() for f in staged],
            duration=result.duration or info.duration,
            has_video=info.has_video,
            has_audio=info.has_audio,
            remuxed=bool(result.remuxed),
            audio_tracks=list(result.audio_tracks),
            media_flags=dict(result.flags),
            # Shown in the manifest's "media": where a player starts.
            hls=f"{HLS_DIR}/{HLS_MASTER_NAME}" if result.hls is not None else None,
        )


def _jsonable(result: Any) -> dict[str, Any]:
    """A result dataclass as plain JSON types (paths and enums become strings)."""
    return dict(json.loads(json.dumps(dataclasses.asdict(result), default=str)))


def content_hash(ctx: StageContext) -> str:
    """SHA-256 of the upload's bytes (downloaded once per machine), recorded in the ledger."""
    source = fetch_source(ctx.store, ctx.settings, ctx.video.video_id, ctx.video.rel_key)
    digest = source_sha256(source)
    ctx.db.set_content_hash(ctx.video.video_id, digest)
    return digest
