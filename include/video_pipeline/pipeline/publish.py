"""Publishing a video: its staged files to ``outputs/<video id>/``, its rows, ``report.html``, the manifest.

Only after every output and row is safely written is the video's outcome set
to succeeded; settling (the publish task's success callback, or reconcile) then
moves the upload to ``completed/``. Nothing is deleted before that, and the
staged copies only after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from include.video_pipeline.core import outputs
from include.video_pipeline.core.manifest import (
    MANIFEST_NAME,
    ManifestInput,
    build_manifest,
    encode_manifest,
    file_entry,
    media_flags,
)
from include.video_pipeline.core.report import (
    POSTER_FILE,
    REPORT_NAME,
    SUBTITLES_FILE,
    VIDEO_FILE,
    ReportInput,
    render_report,
)
from include.video_pipeline.core.stage_outputs import AnalysisOutput, FileEntry, MediaOutput, TranscriptOutput
from include.video_pipeline.pipeline.stage_runner import StageContext
from include.video_pipeline.pipeline.staging import output_key, staging_key


def publish_video(
    ctx: StageContext, media: MediaOutput, transcript: TranscriptOutput, analysis: AnalysisOutput
) -> dict[str, Any]:
    """Publish what the stages staged; returns the small result that crosses XCom."""
    video, settings, store = ctx.video, ctx.settings, ctx.store
    vid = video.video_id
    files = [dict(item) for result in (media, transcript, analysis) for item in result.files]

    # Copies run side by side: an HLS ladder is thousands of small objects, and S3
    # copies are server-side, so the time is round trips, not bandwidth.
    _in_parallel(
        lambda item: store.copy(staging_key(settings, vid, item["name"]), output_key(settings, vid, item["name"])),
        files,
    )
    for item in files:
        item["key"] = output_key(settings, vid, item["name"])

    transcript_doc = json.loads(store.get_bytes(staging_key(settings, vid, outputs.TRANSCRIPT_JSON)))
    analysis_doc = json.loads(store.get_bytes(staging_key(settings, vid, outputs.ANALYSIS)))
    published_at = datetime.now(UTC)
    flags = media_flags(media, transcript)
    if flags:
        ctx.db.add_media_flags(vid, flags)
    # Rows first, then the report (it is listed in the manifest like any other
    # file), manifest last: a manifest in outputs/ means everything is there.
    ctx.db.save_transcript(vid, transcript_doc)
    ctx.db.save_analysis(vid, analysis_doc)
    report = _publish_report(ctx, media, transcript_doc, analysis_doc, files, published_at, flags)
    manifest = build_manifest(
        ManifestInput(
            video_id=vid,
            source_key=video.rel_key,
            source_name=video.name,
            source_size=video.size,
            source_etag=video.etag,
            published_at=published_at,
            run_id=ctx.run_id,
            media=media,
            transcript_output=transcript,
            transcript=transcript_doc,
            analysis=analysis_doc,
            report=report,
            files=files,
            media_flags=flags,
        )
    )
    ctx.db.save_manifest(vid, output_key(settings, vid), manifest)
    store.put_bytes(
        output_key(settings, vid, MANIFEST_NAME),
        encode_manifest(manifest),
        content_type=outputs.content_type(MANIFEST_NAME),
    )
    ctx.db.set_outcome(vid, "succeeded")
    _in_parallel(lambda item: store.delete(staging_key(settings, vid, item["name"])), files)
    return {"outputs": output_key(settings, vid), "files": len(files) + 2, "report": report["key"]}


def _publish_report(
    ctx: StageContext,
    media: MediaOutput,
    transcript: dict[str, Any],
    analysis: dict[str, Any],
    files: list[FileEntry],
    published_at: datetime,
    media_flags: dict[str, str] | None = None,
) -> FileEntry:
    """Render ``report.html`` into ``outputs/<video id>/``; returns its manifest entry."""
    video, settings = ctx.video, ctx.settings
    names = {item["name"] for item in files}
    # The transcode facts (display size after rotation and scaling) are in the
    # ledger row, not in the small XCom result.
    ledger_media = (ctx.db.get_video(video.video_id) or {}).get("media") or {}
    transcoded = ledger_media.get("transcode") or {}
    page = render_report(
        ReportInput(
            video_id=video.video_id,
            source_name=video.name,
            transcript=transcript,
            analysis=analysis,
            processed_at=published_at,
            source_size=video.size,
            duration=media.duration or transcoded.get("duration"),
            width=transcoded.get("width"),
            height=transcoded.get("height"),
            video_file=VIDEO_FILE if VIDEO_FILE in names else None,
            poster_file=POSTER_FILE if POSTER_FILE in names else None,
            subtitles_file=SUBTITLES_FILE if SUBTITLES_FILE in names else None,
            media_flags=media_flags or {},
            # An HLS ladder is thousands of segments: the report links its master playlist only.
            files=outputs.listed_files(names),
        )
    ).encode("utf-8")
    key = output_key(settings, video.video_id, REPORT_NAME)
    kind = outputs.content_type(REPORT_NAME)
    ctx.store.put_bytes(key, page, content_type=kind)
    return file_entry(REPORT_NAME, page, kind, key)


def _in_parallel(action: Callable[[FileEntry], None], items: list[FileEntry], workers: int = 16) -> None:
    """Apply ``action`` to every item with a small thread pool; the first error is raised."""
    if len(items) <= 2:
        for item in items:
            action(item)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()
