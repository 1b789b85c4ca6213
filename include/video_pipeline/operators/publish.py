"""VideoPublishOperator: make a video's outputs public and record its results."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from include.video_pipeline.core.report import (
    POSTER_FILE,
    REPORT_NAME,
    SUBTITLES_FILE,
    VIDEO_FILE,
    ReportInput,
    render_report,
)
from include.video_pipeline.core.transcript import model_identity
from include.video_pipeline.operators.base import StageContext, VideoStageOperator, settle_video
from include.video_pipeline.pipeline.staging import output_key, staging_key

MANIFEST_VERSION = 1


class VideoPublishOperator(VideoStageOperator):
    """Copy staged files to ``outputs/<video id>/``, upsert the rows, render ``report.html``,
    write ``manifest.json`` last.

    Only after every output and row is safely written is the video's outcome
    set to succeeded; the success callback (and reconcile) then moves the
    upload to ``completed/``. Nothing is deleted before that.

    :param media: the transcode stage's result.
    :param transcript: the transcribe stage's result.
    :param analysis: the analyze stage's result.
    """

    stage = "publish"
    ui_color = "#dff3f6"
    template_fields = ("video", "media", "transcript", "analysis")

    def __init__(self, *, media: Any, transcript: Any, analysis: Any, **kwargs: Any):
        kwargs.setdefault("on_success_callback", settle_video)
        super().__init__(**kwargs)
        self.media = media
        self.transcript = transcript
        self.analysis = analysis

    def run_stage(self, ctx: StageContext) -> dict[str, Any]:
        video, settings, store = ctx.video, ctx.settings, ctx.store
        vid = video.video_id
        files: list[dict[str, Any]] = []
        for result in (self.media, self.transcript, self.analysis):
            files.extend((result or {}).get("files", []))

        # Copies run side by side: an HLS ladder is thousands of small objects, and S3
        # copies are server-side, so the time is round trips, not bandwidth.
        _in_parallel(
            lambda item: store.copy(staging_key(settings, vid, item["name"]), output_key(settings, vid, item["name"])),
            files,
        )
        for item in files:
            item["key"] = output_key(settings, vid, item["name"])

        transcript = json.loads(store.get_bytes(staging_key(settings, vid, "transcript.json")))
        analysis = json.loads(store.get_bytes(staging_key(settings, vid, "analysis.json")))
        published_at = datetime.now(UTC)
        # What the stages found odd about a playable upload; carried in their results,
        # so a duplicate that reused them publishes the same flags.
        media_flags = {**(self.media or {}).get("media_flags", {}), **(self.transcript or {}).get("media_flags", {})}
        if media_flags:
            ctx.db.add_media_flags(vid, media_flags)
        # Rows first, then the report (it is listed in the manifest like any other
        # file), manifest last: a manifest in outputs/ means everything is there.
        ctx.db.save_transcript(vid, transcript)
        ctx.db.save_analysis(vid, analysis)
        report = self._publish_report(ctx, transcript, analysis, files, published_at, media_flags)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "video_id": vid,
            "source": {"key": video.rel_key, "name": video.name, "size": video.size, "etag": video.etag},
            "published_at": published_at.isoformat(timespec="seconds"),
            "run_id": ctx.run_id,
            "media": {k: v for k, v in (self.media or {}).items() if k not in ("files", "media_flags")},
            "video_outputs": bool((self.media or {}).get("has_video")),
            "media_flags": media_flags,
            "transcript": {
                "language": transcript.get("language"),
                "quality": transcript.get("quality"),
                "backend": transcript.get("backend"),
                # Transcripts name their model so already; older or reused ones may hold a path.
                "model": model_identity(transcript.get("model")),
                "audio_track": (self.transcript or {}).get("audio_track"),
            },
            "analysis": {
                "analyzer": analysis.get("analyzer"),
                "model": analysis.get("model"),
                "prompt_version": analysis.get("prompt_version"),
                "made_by": analysis.get("made_by"),
            },
            "report": report["key"],
            "files": sorted([*files, report], key=lambda f: f["name"]),
        }
        ctx.db.save_manifest(vid, output_key(settings, vid), manifest)
        store.put_bytes(
            output_key(settings, vid, "manifest.json"),
            json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"),
            content_type="application/json",
        )
        ctx.db.set_outcome(vid, "succeeded")
        _in_parallel(lambda item: store.delete(staging_key(settings, vid, item["name"])), files)
        return {"outputs": output_key(settings, vid), "files": len(files) + 2, "report": report["key"]}

    def _publish_report(
        self,
        ctx: StageContext,
        transcript: dict[str, Any],
        analysis: dict[str, Any],
        files: list[dict[str, Any]],
        published_at: datetime,
        media_flags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Render ``report.html`` into ``outputs/<video id>/``; returns its manifest entry."""
        video, settings = ctx.video, ctx.settings
        names = {item["name"] for item in files}
        # The transcode facts (display size after rotation and scaling) are in the
        # ledger row, not in the small XCom result.
        media = (ctx.db.get_video(video.video_id) or {}).get("media") or {}
        transcoded = media.get("transcode") or {}
        page = render_report(
            ReportInput(
                video_id=video.video_id,
                source_name=video.name,
                transcript=transcript,
                analysis=analysis,
                processed_at=published_at,
                source_size=video.size,
                duration=(self.media or {}).get("duration") or transcoded.get("duration"),
                width=transcoded.get("width"),
                height=transcoded.get("height"),
                video_file=VIDEO_FILE if VIDEO_FILE in names else None,
                poster_file=POSTER_FILE if POSTER_FILE in names else None,
                subtitles_file=SUBTITLES_FILE if SUBTITLES_FILE in names else None,
                media_flags=media_flags or {},
                # An HLS ladder is thousands of segments: the report links its master playlist only.
                files=sorted(
                    {n for n in names if not n.startswith("hls/") or n == "hls/master.m3u8"} | {"manifest.json"}
                ),
            )
        ).encode("utf-8")
        key = output_key(settings, video.video_id, REPORT_NAME)
        kind = "text/html; charset=utf-8"
        ctx.store.put_bytes(key, page, content_type=kind)
        return {
            "name": REPORT_NAME,
            "size": len(page),
            "sha256": hashlib.sha256(page).hexdigest(),
            "content_type": kind,
            "key": key,
        }


def _in_parallel(action: Callable[[dict[str, Any]], None], items: list[dict[str, Any]], workers: int = 16) -> None:
    """Apply ``action`` to every item with a small thread pool; the first error is raised."""
    if len(items) <= 2:
        for item in items:
            action(item)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()
