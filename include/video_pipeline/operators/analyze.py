"""VideoAnalyzeOperator: summary, chapters and tags from the transcript."""

from __future__ import annotations

import json
from typing import Any

from include.video_pipeline.core.transcript import Transcript
from include.video_pipeline.operators.base import StageContext, VideoStageOperator
from include.video_pipeline.staging import stage_bytes, staging_key


class VideoAnalyzeOperator(VideoStageOperator):
    """Analyze the staged transcript with Gemini (or the offline analyzer) into ``analysis.json``.

    :param transcript: the transcribe stage's result (only its small summary crosses XCom;
        the transcript itself is read from staging).
    """

    stage = "analyze"
    ui_color = "#f3e8fb"
    template_fields = ("video", "transcript")

    def __init__(self, *, transcript: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.transcript = transcript

    def run_stage(self, ctx: StageContext) -> dict[str, Any]:
        from include.video_pipeline.hooks.gemini import build_analyzer

        video = ctx.video
        raw = ctx.store.get_bytes(staging_key(ctx.settings, video.video_id, "transcript.json"))
        transcript = Transcript.from_dict(json.loads(raw))
        analyzer = build_analyzer(ctx.settings.analysis)
        output_language = ctx.params.get("output_language") or ctx.settings.analysis.output_language
        result = analyzer.analyze(transcript, title=video.name, output_language=output_language or None)
        payload = json.dumps(result.to_dict(), ensure_ascii=False, indent=2).encode("utf-8")
        staged = stage_bytes(ctx.store, ctx.settings, video.video_id, "analysis.json", payload)
        return {
            "files": [staged.to_dict()],
            "analyzer": result.analyzer,
            "model": result.model,
            "language": result.language,
            "flags": list(result.flags),
        }
