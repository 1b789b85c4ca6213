"""VideoPublishOperator: make a video's outputs public and record its results."""

from __future__ import annotations

from typing import Any

from include.video_pipeline.core.stage_outputs import AnalysisOutput, MediaOutput, TranscriptOutput
from include.video_pipeline.operators.base import StageContext, VideoStageOperator, settle_video
from include.video_pipeline.pipeline.publish import publish_video


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
    template_fields = (*VideoStageOperator.template_fields, "media", "transcript", "analysis")

    def __init__(self, *, media: Any, transcript: Any, analysis: Any, **kwargs: Any):
        kwargs.setdefault("on_success_callback", settle_video)
        super().__init__(**kwargs)
        self.media = media
        self.transcript = transcript
        self.analysis = analysis

    def run_stage(self, ctx: StageContext) -> dict[str, Any]:
        # The stages' results cross XCom as dicts; the service layer takes them typed.
        return publish_video(
            ctx,
            MediaOutput.from_dict(self.media),
            TranscriptOutput.from_dict(self.transcript),
            AnalysisOutput.from_dict(self.analysis),
        )
