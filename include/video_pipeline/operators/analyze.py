"""VideoAnalyzeOperator: summary, chapters and tags from the transcript."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NoReturn

from include.video_pipeline.config import AnalysisSettings, load_settings
from include.video_pipeline.core import outputs
from include.video_pipeline.core.stage_outputs import AnalysisOutput, MediaOutput, TranscriptOutput
from include.video_pipeline.core.transcript import Transcript
from include.video_pipeline.operators.base import StageContext, VideoStageOperator
from include.video_pipeline.pipeline.stage_runner import StageOutcome
from include.video_pipeline.pipeline.staging import stage_bytes, staging_key

log = logging.getLogger(__name__)

# What the transcode stage leaves in staging that a model can look at: the poster
# frame and the thumbnail sheet (one JPEG of small frames at regular intervals).
IMAGE_NAMES = outputs.IMAGES
# Inline images share one request with the transcript (Gemini caps a request at
# 20 MB); a sheet of a long 4K video could be big, and it is a hint, not the input.
MAX_IMAGE_BYTES = 4 * 1024 * 1024


class VideoAnalyzeOperator(VideoStageOperator):
    """Analyze the staged transcript with Gemini (or the offline analyzer) into ``analysis.json``.

    :param transcript: the transcribe stage's result (only its small summary crosses XCom;
        the transcript itself is read from staging).
    :param media: the transcode stage's result, given (and so waited for) when the analysis is
        multimodal: the poster and thumbnail sheet it lists are the images the model sees.
    :param analysis_conn_id: the Airflow connection of the analysis provider: Gemini's
        (``VIDEO_PIPELINE_GEMINI_CONN_ID``), Vertex AI's (``VIDEO_PIPELINE_GCP_CONN_ID``) or the
        OpenAI-compatible server's (``VIDEO_PIPELINE_OPENAI_CONN_ID``), as the settings' analyzer says.
    """

    stage = "analyze"
    ui_color = "#f3e8fb"
    template_fields = (*VideoStageOperator.template_fields, "transcript", "media", "analysis_conn_id")

    def __init__(self, *, transcript: Any, media: Any = None, analysis_conn_id: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.transcript = transcript
        self.media = media
        self.analysis_conn_id = analysis_conn_id or provider_conn_id(load_settings().analysis)

    def analysis_settings(self, ctx: StageContext) -> AnalysisSettings:
        """The run's analysis settings, with this task's provider connection."""
        return with_provider_conn_id(ctx.settings.analysis, self.analysis_conn_id)

    def cache_input(self, ctx: StageContext) -> tuple[str, dict[str, Any]] | None:
        from include.video_pipeline.core.analysis import PROMPT_VERSION
        from include.video_pipeline.hooks.analyzers import build_analyzer

        transcript_file = TranscriptOutput.from_dict(self.transcript).file(outputs.TRANSCRIPT_JSON)
        if transcript_file is None:
            return None
        settings = self.analysis_settings(ctx)
        analyzer = build_analyzer(settings)
        return transcript_file["sha256"], {
            "analyzer": analyzer.name,
            "model": getattr(getattr(analyzer, "hook", None), "model", None),
            "prompt_version": PROMPT_VERSION,
            "output_language": ctx.params.get("output_language") or settings.output_language,
            "multimodal": settings.multimodal,
            # Which images the model saw is part of what made the analysis: a result made
            # without them is never reused for a run that had them, nor the other way round.
            **({"images": image_hashes(self.media)} if settings.multimodal else {}),
        }

    def run_stage(self, ctx: StageContext) -> AnalysisOutput:
        from include.video_pipeline.core.analysis import unavailable_analysis
        from include.video_pipeline.hooks.llm_base import ProviderUnavailable
        from include.video_pipeline.hooks.provider_state import ProviderState

        video = ctx.video
        settings = self.analysis_settings(ctx)
        raw = ctx.store.get_bytes(staging_key(ctx.settings, video.video_id, outputs.TRANSCRIPT_JSON))
        transcript = Transcript.from_dict(json.loads(raw))
        output_language = ctx.params.get("output_language") or settings.output_language
        # Rate limit, retired models and spend are shared with every other task (results DB).
        state = ProviderState.for_analysis(ctx.db, settings, run_id=ctx.run_id, video_id=video.video_id)
        try:
            analyzer = self.analyzer_for(ctx, settings, state)
            images = load_images(ctx, self.media) if settings.multimodal else []
            result = analyzer.analyze(
                transcript, title=video.name, output_language=output_language or None, images=images
            )
        except ProviderUnavailable as exc:
            # The provider fails for everyone (key, model, region): not this video's fault.
            # It completes with its media and transcript; reprocess=failed adds the analysis later.
            self.log.error("Analysis unavailable (%s): %s; publishing without it", exc.reason, exc)
            openai = settings.analyzer == "openai-compatible"
            result = unavailable_analysis(
                transcript,
                analyzer="openai-compatible" if openai else "vertex" if settings.analyzer == "vertex" else "gemini",
                model=(settings.openai_model or "") if openai else settings.gemini_models[0],
                reason=exc.reason,
                message=str(exc),
                output_language=output_language or None,
            )
            images = []
        if settings.multimodal and not images:
            result = dataclasses.replace(result, flags=(*result.flags, "images_unavailable"))
        payload = json.dumps(result.to_dict(), ensure_ascii=False, indent=2).encode("utf-8")
        staged = stage_bytes(ctx.store, ctx.settings, video.video_id, outputs.ANALYSIS, payload)
        return AnalysisOutput(
            files=[staged.to_dict()],
            analyzer=result.analyzer,
            model=result.model,
            language=result.language,
            flags=list(result.flags),
            cost_usd=result.usage.cost_usd,
            cacheable=result.unavailable is None,
        )

    def analyzer_for(self, ctx: StageContext, settings: AnalysisSettings, state: Any) -> Any:
        """The online analyzer, or the Gemini Batch API's when this run analyses in batches.

        Batches are for reprocessing runs with ``VIDEO_PIPELINE_GEMINI_BATCH=reprocess``, or any
        run whose ``gemini_batch`` param says ``batch`` (``online`` keeps a run online); only the
        Gemini API has them, so another provider (or the offline analyzer) works as usual, with a warning.
        """
        from include.video_pipeline.hooks.analyzers import build_analyzer, build_batch_analyzer
        from include.video_pipeline.pipeline.claims import reprocess_mode

        mode = reprocess_mode(ctx.run_type, ctx.params)
        if settings.wants_batch(mode, ctx.params.get("gemini_batch")):
            batch = build_batch_analyzer(
                settings, batches=ctx.db, video_id=ctx.video.video_id, run_id=ctx.run_id, state=state
            )
            if batch is not None:
                return batch
            self.log.warning("Not batching: the Gemini Batch API needs the Gemini API with an API key")
        return build_analyzer(settings, state=state)

    def await_provider(self, outcome: StageOutcome) -> NoReturn:
        """Defer on the video's Gemini batch: the triggerer polls it, no worker or pool slot waits."""
        from include.video_pipeline.hooks.gemini_batch import BatchPending
        from include.video_pipeline.operators.gemini_batch_trigger import GeminiBatchTrigger
        from include.video_pipeline.pipeline.cache import LEAD_SECONDS

        pending = outcome.error
        if not isinstance(pending, BatchPending):
            super().await_provider(outcome)
        settings = self.stage_settings()
        analysis = with_provider_conn_id(settings.analysis, self.analysis_conn_id)
        # Come back now and then while it runs (it may take a day): the video's lease and the
        # lead on its result are renewed by each execution, and must not lapse meanwhile.
        resume_after = min(settings.processing_lease_seconds, LEAD_SECONDS) / 2
        trigger = GeminiBatchTrigger(
            pending.batch_name,
            gemini_conn_id=analysis.gemini_conn_id,
            base_url=analysis.gemini_base_url,
            poll_seconds=analysis.batch_poll_seconds,
            resume_after_seconds=resume_after,
            max_failures=analysis.max_retries,
            timeout_seconds=analysis.timeout_seconds,
        )
        self.log.info("%s; waiting for it in the triggerer (no worker slot held)", outcome.message)
        slack = (analysis.max_retries + 2) * (analysis.batch_poll_seconds + analysis.timeout_seconds) + 600
        self.defer(trigger=trigger, method_name="resume_after_batch", timeout=timedelta(seconds=resume_after + slack))

    def resume_after_batch(self, context: Any, event: Any = None, **_: Any) -> dict[str, Any]:
        """Back from the triggerer: run the stage again, which finds the batch and collects it (or waits on)."""
        if isinstance(event, Mapping):
            self.log.info(
                "Gemini batch %s: %s (%s)%s",
                event.get("batch"),
                event.get("why"),
                event.get("state"),
                f": {event['error']}" if event.get("error") else "",
            )
        return self.execute(context)


def provider_conn_id(settings: AnalysisSettings) -> str:
    """The connection of the provider the settings' analyzer uses (Gemini's for ``auto`` and ``offline``)."""
    if settings.analyzer == "vertex":
        return settings.gcp_conn_id
    if settings.analyzer == "openai-compatible":
        return settings.openai_conn_id
    return settings.gemini_conn_id


def with_provider_conn_id(settings: AnalysisSettings, conn_id: str | None) -> AnalysisSettings:
    """``settings`` with ``conn_id`` as the connection of the provider its analyzer uses."""
    if not conn_id:
        return settings
    if settings.analyzer == "vertex":
        return dataclasses.replace(settings, gcp_conn_id=conn_id)
    if settings.analyzer == "openai-compatible":
        return dataclasses.replace(settings, openai_conn_id=conn_id)
    return dataclasses.replace(settings, gemini_conn_id=conn_id)


def image_hashes(media: MediaOutput | Mapping[str, Any] | None) -> list[list[str]] | None:
    """(name, SHA-256) of the images the analysis sends, from the transcode result; None without one."""
    if isinstance(media, Mapping):
        media = MediaOutput.from_dict(media)
    if not isinstance(media, MediaOutput):
        return None
    files = {f["name"]: f for f in media.files}
    return [
        [name, files[name]["sha256"]]
        for name in IMAGE_NAMES
        if name in files and int(files[name].get("size", 0)) <= MAX_IMAGE_BYTES
    ]


def load_images(ctx: StageContext, media: MediaOutput | Mapping[str, Any] | None) -> list[bytes]:
    """The poster and thumbnail sheet the transcode stage produced, from staging.

    With multimodal analysis on, the DAG runs ``analyze`` after ``transcode``
    and hands it the transcode result, so the images are whatever transcoding
    made (none for audio-only uploads), never whatever happened to be staged
    at that moment; images over ``MAX_IMAGE_BYTES`` are left out. The cache key
    names the same images (``image_hashes``). Without a transcode result (a DAG
    parsed with multimodal off) no image is sent, and ``images_unavailable``
    says so.
    """
    images = []
    for name, _sha in image_hashes(media) or []:
        images.append(ctx.store.get_bytes(staging_key(ctx.settings, ctx.video.video_id, name)))
    if media is None:
        log.warning("Multimodal analysis without the transcode result (DAG parsed before the setting?): text only")
    return images
