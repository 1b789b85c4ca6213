"""The model analyzer: prompt per chunk, grounding and merge against any provider.

``ModelAnalyzer`` runs all of that against any ``StructuredModel`` (Gemini,
Vertex AI, an OpenAI-compatible server): the providers differ only in how they
are called, never in what counts as a valid analysis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from include.video_pipeline.core.analysis.chunking import (
    Chunk,
    chunk_transcript,
    estimate_tokens,
    render_transcript,
)
from include.video_pipeline.core.analysis.grounding import ground_analysis
from include.video_pipeline.core.analysis.languages import resolve_output_language
from include.video_pipeline.core.analysis.merge import merge_analyses
from include.video_pipeline.core.analysis.prompts import PROMPT_VERSION, Prompt, build_prompt
from include.video_pipeline.core.analysis.results import AnalysisResult, AnalyzerName, Usage
from include.video_pipeline.core.analysis.schema import MODEL_RESPONSE_SCHEMA, SCHEMA_VERSION, schema_errors
from include.video_pipeline.core.analysis.silent import needs_model, silent_analysis
from include.video_pipeline.core.transcript import Transcript, TranscriptQuality

log = logging.getLogger(__name__)


# Gemini 2.5 Flash handles far more, but analysis quality on one enormous prompt
# drops and one call's output cap (chapters for four hours) is easier to hit. This
# is roughly two hours of speech per call.
DEFAULT_MAX_CHUNK_TOKENS = 30_000


class StructuredModel(Protocol):
    """A provider hook as ``ModelAnalyzer`` uses it (Gemini, Vertex AI, OpenAI-compatible)."""

    model: str

    def generate_json(
        self,
        *,
        prompt: str,
        system_instruction: str,
        response_schema: dict[str, Any],
        validate: Callable[[Any], list[str]],
        images: Sequence[bytes] = (),
    ) -> tuple[dict[str, Any], Usage]:
        """A JSON object for which ``validate`` found no problems, and what getting it cost."""
        ...

    def count_tokens(self, text: str) -> int | None:
        """The provider's token count of ``text``; None when it cannot count. May raise."""
        ...


@dataclass(frozen=True)
class AnalysisPlan:
    """What a model is asked for one transcript: its chunks and, for each, the prompt."""

    language: str
    chunks: tuple[Chunk, ...]
    prompts: tuple[Prompt, ...]


def validate_model_answer(data: Any) -> list[str]:
    """Problems of a model's answer; it does not write schema_version, so that is stamped first."""
    return schema_errors({"schema_version": SCHEMA_VERSION, **data} if isinstance(data, dict) else data)


class ModelAnalyzer:
    """Analysis by a language model: prompt per chunk, grounding, deterministic merge.

    :param hook: the provider, already configured.
    :param name: what the result records as its analyzer.
    :param max_chunk_tokens: transcript tokens per call; longer transcripts are
        analysed in parts.
    """

    name: AnalyzerName = "gemini"

    def __init__(
        self,
        hook: StructuredModel,
        *,
        name: AnalyzerName | None = None,
        max_chunk_tokens: int = DEFAULT_MAX_CHUNK_TOKENS,
    ):
        self.hook = hook
        if name is not None:
            self.name = name
        self.max_chunk_tokens = max_chunk_tokens

    def plan_chunks(self, transcript: Transcript) -> list[Chunk]:
        """Chunks sized by the provider's token count when it has one, else by the estimate.

        One count of the whole transcript calibrates the estimate for this text
        (tokenizers differ most on Cyrillic); a failed count is not worth failing
        the analysis over, so the plain estimate is used then.
        """
        rendered = render_transcript(transcript.segments)
        estimate = estimate_tokens(rendered)
        counted: int | None = None
        try:
            counted = self.hook.count_tokens(rendered)
        except Exception as exc:  # any failure means "use the estimate"
            log.warning("Token count failed (%s: %s); chunking by the estimate", type(exc).__name__, exc)
        if counted is None or counted <= 0 or estimate <= 0:
            return chunk_transcript(transcript, max_tokens=self.max_chunk_tokens)
        log.info("Transcript: %d tokens counted by the provider, %d estimated", counted, estimate)
        if counted <= self.max_chunk_tokens:
            spoken = tuple(s for s in transcript.segments if s.text.strip())
            return [Chunk(index=0, count=1, segments=spoken)]
        return chunk_transcript(transcript, max_tokens=self.max_chunk_tokens, token_scale=counted / estimate)

    def plan(self, transcript: Transcript, *, title: str, language: str, images: Sequence[bytes] = ()) -> AnalysisPlan:
        """The chunks of a transcript that needs a model and the prompt of each."""
        chunks = self.plan_chunks(transcript)
        if len(chunks) > 1:
            log.info(
                "Transcript of %d segments split into %d parts for analysis", len(transcript.segments), len(chunks)
            )
        prompts = [
            build_prompt(transcript, title=title, language=language, chunk=chunk, images=len(images))
            for chunk in chunks
        ]
        return AnalysisPlan(language=language, chunks=tuple(chunks), prompts=tuple(prompts))

    def analyze(
        self,
        transcript: Transcript,
        *,
        title: str,
        output_language: str | None = None,
        images: Sequence[bytes] = (),
    ) -> AnalysisResult:
        language = resolve_output_language(transcript, output_language)
        if not needs_model(transcript):
            # Frames alone would let a model describe a silent video; the pipeline
            # promises analyses of what is said, so a silent video says just that.
            return silent_analysis(
                transcript, language=language, analyzer=self.name, model=self.hook.model, prompt_version=PROMPT_VERSION
            )
        plan = self.plan(transcript, title=title, language=language, images=images)
        return self.answer(transcript, plan, images)

    def answer(self, transcript: Transcript, plan: AnalysisPlan, images: Sequence[bytes]) -> AnalysisResult:
        """The analysis of a planned transcript: one online call per chunk (the Gemini batch path overrides it)."""
        # A budget is checked for the whole analysis before its first call, so a
        # video is analysed entirely or not at all (never half, then stopped).
        begin = getattr(self.hook, "begin_analysis", None)
        if begin is not None:
            begin([f"{p.system}\n{p.user}" for p in plan.prompts])
        try:
            answers = [
                self.hook.generate_json(
                    prompt=prompt.user,
                    system_instruction=prompt.system,
                    response_schema=MODEL_RESPONSE_SCHEMA,
                    validate=validate_model_answer,
                    images=images,
                )
                for prompt in plan.prompts
            ]
            return self.assemble(transcript, plan, answers)
        finally:
            end = getattr(self.hook, "end_analysis", None)
            if end is not None:
                end()

    def assemble(
        self, transcript: Transcript, plan: AnalysisPlan, answers: Sequence[tuple[dict[str, Any], Usage]]
    ) -> AnalysisResult:
        """The analysis from each chunk's valid answer (and what it cost): grounded, merged, flagged.

        However the answers were obtained (one call each, or one Gemini batch for all),
        what counts as the analysis is decided here.
        """
        parts: list[dict[str, Any]] = []
        flags: list[str] = []
        usage = Usage()
        language = plan.language
        for chunk, (data, call_usage) in zip(plan.chunks, answers, strict=True):
            grounded, chunk_flags = ground_analysis(
                {"schema_version": SCHEMA_VERSION, **data},
                transcript,
                language=language,
                chunk=chunk if len(plan.chunks) > 1 else None,
            )
            parts.append(grounded)
            flags.extend(f for f in chunk_flags if f not in flags)
            usage = usage + call_usage
        merged, merge_flags = ground_analysis(merge_analyses(parts, language=language), transcript, language=language)
        flags.extend(f for f in merge_flags if f not in flags)
        if len(plan.chunks) > 1:
            flags.append("chunked")
        if transcript.quality == TranscriptQuality.SUSPECT:
            flags.append("transcript_suspect")
        return AnalysisResult(
            analyzer=self.name,
            model=self.hook.model,
            prompt_version=plan.prompts[-1].version if plan.prompts else PROMPT_VERSION,
            language=language,
            data=merged,
            flags=tuple(flags),
            usage=usage,
        )
