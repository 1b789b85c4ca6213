"""VideoPublishOperator: make a video's outputs public and record its results."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from include.video_pipeline.operators.base import StageContext, VideoStageOperator, settle_video
from include.video_pipeline.staging import output_key, staging_key

MANIFEST_VERSION = 1


class VideoPublishOperator(VideoStageOperator):
    """Copy staged files to ``outputs/<video id>/``, write ``manifest.json`` last, upsert the rows.

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

        for item in files:
            store.copy(staging_key(settings, vid, item["name"]), output_key(settings, vid, item["name"]))
            item["key"] = output_key(settings, vid, item["name"])

        transcript = json.loads(store.get_bytes(staging_key(settings, vid, "transcript.json")))
        analysis = json.loads(store.get_bytes(staging_key(settings, vid, "analysis.json")))
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "video_id": vid,
            "source": {"key": video.rel_key, "name": video.name, "size": video.size, "etag": video.etag},
            "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_id": ctx.run_id,
            "media": {k: v for k, v in (self.media or {}).items() if k != "files"},
            "video_outputs": bool((self.media or {}).get("has_video")),
            "transcript": {
                "language": transcript.get("language"),
                "quality": transcript.get("quality"),
                "backend": transcript.get("backend"),
                "model": transcript.get("model"),
            },
            "analysis": {
                "analyzer": analysis.get("analyzer"),
                "model": analysis.get("model"),
                "prompt_version": analysis.get("prompt_version"),
            },
            "files": sorted(files, key=lambda f: f["name"]),
        }
        # Rows first, manifest last: a manifest in outputs/ means everything is there.
        ctx.db.save_transcript(vid, transcript)
        ctx.db.save_analysis(vid, analysis)
        ctx.db.save_manifest(vid, output_key(settings, vid), manifest)
        store.put_bytes(
            output_key(settings, vid, "manifest.json"),
            json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"),
            content_type="application/json",
        )
        ctx.db.set_outcome(vid, "succeeded")
        for item in files:
            store.delete(staging_key(settings, vid, item["name"]))
        return {"outputs": output_key(settings, vid), "files": len(files) + 1}
