"""The result of an analysis: what it says, who made it, what it cost.

``AnalysisResult`` is what every analyzer returns and ``to_dict`` is what
``analysis.json`` stores; ``Usage`` adds up tokens, latency and cost over calls.
``unavailable_analysis`` is the empty result of a provider that failed for
everyone, and ``Analyzer`` is the interface the analyze operator needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from include.video_pipeline.core.analysis.languages import resolve_output_language
from include.video_pipeline.core.analysis.prompts import PROMPT_VERSION
from include.video_pipeline.core.analysis.schema import SCHEMA_VERSION, empty_analysis, validate_analysis
from include.video_pipeline.core.transcript import Transcript

AnalyzerName = Literal["gemini", "vertex", "openai-compatible", "offline"]


@dataclass(frozen=True)
class Usage:
    """What producing an analysis cost. ``cost_usd`` is an estimate; None when unpriced.

    ``input_tokens`` is the whole prompt (``promptTokenCount``), of which
    ``cached_tokens`` (``cachedContentTokenCount``) were billed at the cache rate;
    ``output_tokens`` is the answer and ``thinking_tokens`` (``thoughtsTokenCount``)
    the model's reasoning, billed at the output rate.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    latency_seconds: float = 0.0
    calls: int = 0
    cost_usd: float | None = None
    thinking_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = round((self.cost_usd or 0.0) + (other.cost_usd or 0.0), 6)
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            latency_seconds=self.latency_seconds + other.latency_seconds,
            calls=self.calls + other.calls,
            cost_usd=cost,
            thinking_tokens=self.thinking_tokens + other.thinking_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True)
class AnalysisResult:
    """A validated, grounded analysis plus how it was made."""

    analyzer: AnalyzerName
    model: str
    prompt_version: str
    language: str
    data: dict[str, Any]
    flags: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    # Set when the provider could not be used (key, model, region): why, as
    # {"reason": code, "message": text}; data is then an empty analysis.
    unavailable: dict[str, str] | None = None

    @property
    def made_by(self) -> MadeBy:
        return analysis_made_by(self.analyzer, self.usage.calls)

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["flags"] = list(self.flags)
        result["schema_version"] = SCHEMA_VERSION
        result["made_by"] = self.made_by
        result["made_by_note"] = (
            "no model answered: the analysis provider was unavailable (see unavailable)"
            if self.unavailable is not None
            else MADE_BY_NOTE[self.made_by]
        )
        if self.made_by == "no_model" and self.unavailable is None:
            # Nothing was sent to a model (no speech): naming one would claim it wrote this.
            result["model"] = None
        if self.unavailable is None:
            del result["unavailable"]
        return result


# Who wrote an analysis, in words a reader of analysis.json, the report and `make run` sees.
MadeBy = Literal["ai_model", "offline_extractive", "no_model"]
MADE_BY_NOTE: dict[str, str] = {
    "ai_model": "written by an AI model from the transcript",
    "offline_extractive": "extracted by the built-in offline analyzer (keywords and sentences of the transcript); "
    "no AI model was used",
    "no_model": "no model was asked: there was no speech to analyse",
}


def analysis_made_by(analyzer: str | None, calls: int | None) -> MadeBy:
    """``ai_model`` when a model answered, ``offline_extractive`` for the offline analyzer, else ``no_model``."""
    if analyzer == "offline":
        return "offline_extractive"
    return "ai_model" if (calls or 0) > 0 else "no_model"


ANALYSIS_UNAVAILABLE_FLAG = "analysis_unavailable"


def unavailable_analysis(
    transcript: Transcript,
    *,
    analyzer: AnalyzerName,
    model: str,
    reason: str,
    message: str,
    output_language: str | None = None,
) -> AnalysisResult:
    """The analysis of a video whose provider failed for everyone (key, model, region).

    The video is not at fault, so it still completes with its media and
    transcript; the empty analysis says why it is empty, and reprocessing adds
    the real one once the provider works again.
    """
    language = resolve_output_language(transcript, output_language)
    return AnalysisResult(
        analyzer=analyzer,
        model=model,
        prompt_version=PROMPT_VERSION,
        language=language,
        data=validate_analysis(empty_analysis(language)),
        flags=(ANALYSIS_UNAVAILABLE_FLAG,),
        unavailable={"reason": reason, "message": message},
    )


class Analyzer(Protocol):
    """What the analyze operator needs; ``build_analyzer`` picks the implementation."""

    name: AnalyzerName

    def analyze(
        self,
        transcript: Transcript,
        *,
        title: str,
        output_language: str | None = None,
        images: Sequence[bytes] = (),
    ) -> AnalysisResult: ...
