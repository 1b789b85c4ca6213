"""The analysis of a transcript: its schema, prompts, chunking, grounding and result.

Everything here is pure so that both analyzers (Gemini and the offline one) and
the tests share one definition of what a valid analysis is:

* ``ANALYSIS_SCHEMA`` is a JSON Schema that validates stored analyses;
  ``MODEL_RESPONSE_SCHEMA`` is the same minus ``schema_version`` (which we stamp,
  not the model) and is sent to Gemini as ``response_json_schema``.
* ``ground_analysis`` makes a schema-valid analysis agree with the transcript:
  chapters inside the video and on segment boundaries, quotes that were really
  said, list caps. What it changes is reported as flags, never silently.
* Long transcripts are split into chunks by an estimated token count (scaled
  by the provider's own count when it has one); chunk analyses are merged
  deterministically (no extra model call).
* ``ModelAnalyzer`` runs all of that against any ``StructuredModel`` (Gemini,
  Vertex AI, an OpenAI-compatible server): the providers differ only in how
  they are called, never in what counts as a valid analysis.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import logging
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import jsonschema

from include.video_pipeline.core.transcript import Segment, Transcript, TranscriptQuality

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PROMPT_VERSION = "analysis_v1"
# Told to the model when frames of the video come with the transcript. Its own
# versioned file, so the text-only prompt (and every analysis made with it)
# keeps its version; a multimodal analysis records "analysis_v1+images_v1".
IMAGES_PROMPT_VERSION = "images_v1"
PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"

AnalyzerName = Literal["gemini", "vertex", "openai-compatible", "offline"]

# Caps on list lengths. They are told to the model in the prompt and enforced by
# ground_analysis (truncation + a flag) rather than by the schema, so that one
# item too many costs nothing instead of a failed, paid-for call.
LIMITS: dict[str, int] = {
    "key_points": 8,
    "topics": 8,
    "tags": 12,
    "entities": 20,  # per kind
    "chapters": 20,
    "action_items": 15,
    "quotes": 5,
}
MAX_TITLE_CHARS = 120

_STRING_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}}

ANALYSIS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "VideoAnalysis",
    "type": "object",
    "properties": {
        "schema_version": {"type": "integer", "enum": [SCHEMA_VERSION]},
        "title_suggestion": {"type": "string", "description": "Short, specific title for the video."},
        "summary": {"type": "string", "description": "Summary of what is said in the video."},
        "key_points": {**_STRING_LIST, "description": "Main points, one sentence each."},
        "topics": {**_STRING_LIST, "description": "Broad subjects discussed."},
        "tags": {**_STRING_LIST, "description": "Short lowercase search tags."},
        "entities": {
            "type": "object",
            "properties": {
                "people": _STRING_LIST,
                "organizations": _STRING_LIST,
                "places": _STRING_LIST,
            },
            "required": ["people", "organizations", "places"],
            "additionalProperties": False,
        },
        "chapters": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "start": {"type": "number", "description": "Seconds from the start of the video."},
                    "end": {"type": "number", "description": "Seconds from the start of the video."},
                    "title": {"type": "string"},
                    "summary": {"type": "string"},
                },
                "required": ["start", "end", "title", "summary"],
                "additionalProperties": False,
            },
        },
        "action_items": {**_STRING_LIST, "description": "Tasks, decisions and follow-ups; empty if none."},
        "quotes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "Verbatim, in the transcript's language."},
                    "start": {"type": "number", "description": "Start of the quoted line, in seconds."},
                },
                "required": ["text", "start"],
                "additionalProperties": False,
            },
        },
        "language": {"type": "string", "description": "ISO 639-1 code of the analysis text."},
    },
    "required": [
        "schema_version",
        "title_suggestion",
        "summary",
        "key_points",
        "topics",
        "tags",
        "entities",
        "chapters",
        "action_items",
        "quotes",
        "language",
    ],
    "additionalProperties": False,
}


def _model_response_schema() -> dict[str, Any]:
    schema = copy.deepcopy(ANALYSIS_SCHEMA)
    del schema["$schema"]
    del schema["properties"]["schema_version"]
    schema["required"].remove("schema_version")
    # Gemini emits properties in this order; summary before chapters reads better
    # and makes a truncated answer lose the least useful fields.
    schema["propertyOrdering"] = list(schema["required"])
    return schema


MODEL_RESPONSE_SCHEMA: dict[str, Any] = _model_response_schema()

_VALIDATOR = jsonschema.Draft202012Validator(ANALYSIS_SCHEMA)


class AnalysisValidationError(ValueError):
    """An analysis does not match ``ANALYSIS_SCHEMA``; ``errors`` lists where and why."""

    def __init__(self, errors: Sequence[str]):
        super().__init__("analysis does not match the schema: " + "; ".join(errors[:5]))
        self.errors = list(errors)


def schema_errors(data: Any) -> list[str]:
    """Every way ``data`` violates ``ANALYSIS_SCHEMA``, as ``path: message`` strings."""
    found = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def validate_analysis(data: Any) -> dict[str, Any]:
    """Return ``data`` unchanged if it is a valid analysis, else raise AnalysisValidationError."""
    errors = schema_errors(data)
    if errors:
        raise AnalysisValidationError(errors)
    return dict(data)


# --------------------------------------------------------------------------- languages

# English names: what the prompt asks for ("write in Russian") and what an English report shows.
LANGUAGE_NAMES: dict[str, str] = {
    "ru": "Russian",
    "en": "English",
    "uk": "Ukrainian",
    "be": "Belarusian",
    "kk": "Kazakh",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "pl": "Polish",
    "tr": "Turkish",
    "zh": "Chinese",
    "ja": "Japanese",
}
DEFAULT_LANGUAGE = "en"


def normalize_language(code: str | None) -> str | None:
    """``"ru-RU"`` / ``"RU"`` -> ``"ru"``; empty -> None."""
    if not code or not code.strip():
        return None
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]


def resolve_output_language(transcript: Transcript, requested: str | None = None) -> str:
    """The language the analysis is written in: an explicit request, else the transcript's.

    Russian videos get Russian analysis unless someone asks otherwise.
    """
    return normalize_language(requested) or normalize_language(transcript.language) or DEFAULT_LANGUAGE


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


# --------------------------------------------------------------------------- results


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


# The models the pipeline asks for when VIDEO_PIPELINE_GEMINI_MODEL is unset, in
# order: the first that exists is used, a retired one is skipped. Chosen for this
# job (summary, chapters, tags of Russian and English transcripts as one JSON
# answer, then grounded against the transcript): 3.1 Flash-Lite scores above
# 2.5 Flash, the model this pipeline was tuned on, at 0.6x its price; 3.5 Flash
# is the fallback (6x Flash-Lite's price) so a Flash-Lite retirement does not stop
# analyses. docs/analysis-providers.md has the numbers behind the choice.
DEFAULT_GEMINI_MODELS: tuple[str, ...] = ("gemini-3.1-flash-lite", "gemini-3.5-flash")

# USD per million tokens: (input, output[, cached input]). Output includes
# thinking tokens; cached input is what the ``cachedContentTokenCount`` part of
# a prompt costs instead of the input rate (an entry without it bills cached
# tokens at CACHED_INPUT_SHARE of its input price, Google's rate for every 2.5
# and 3.x model). Keys are model-name prefixes; the longest matching prefix
# wins, so dated or "-preview" ids get their family's price.
#
# Paid tier, prompts up to 200k tokens, as of PRICES_AS_OF, from
#   https://ai.google.dev/gemini-api/docs/pricing (Gemini Developer API)
#   https://cloud.google.com/vertex-ai/generative-ai/pricing (Vertex AI, global endpoint)
#   https://ai.google.dev/gemini-api/docs/deprecations (the 2.5 family retired 2026-12-01)
# Correct or extend it with VIDEO_PIPELINE_PRICES_JSON without a release.
PRICES_AS_OF = "2026-12-02"
PRICES_PER_MILLION_TOKENS: dict[str, tuple[float, ...]] = {
    "gemini-3.5-flash": (1.50, 9.00, 0.15),
    "gemini-3.1-flash-lite": (0.25, 1.50, 0.025),
    "gemini-3.1-pro": (2.00, 12.00, 0.20),
    "gemini-3-flash": (0.50, 3.00, 0.05),
    # Retired on 2026-12-01; kept so analyses made with them keep their price (a
    # re-routed request is billed by the model that answered: its modelVersion).
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}
CACHED_INPUT_SHARE = 0.10
# What one analysis call is expected to write (answer plus thinking), for the
# budget's estimate before the call: analyses of up to 30k-token chunks come
# back in 1-3k tokens, and thinking models add about as much again.
EXPECTED_OUTPUT_TOKENS_PER_CALL = 4_000

PriceTable = Mapping[str, tuple[float, ...]]
PriceOverride = tuple[str, float, float] | tuple[str, float, float, float]


def price_table(overrides: Iterable[PriceOverride] = ()) -> dict[str, tuple[float, ...]]:
    """The built-in prices with ``(model prefix, input, output[, cached input])`` overrides on top."""
    table = dict(PRICES_PER_MILLION_TOKENS)
    table.update({override[0]: tuple(float(p) for p in override[1:]) for override in overrides})
    return table


def model_price(model: str, prices: PriceTable | None = None) -> tuple[float, float, float] | None:
    """(input, output, cached input) USD per million tokens for ``model``; None when unpriced."""
    table = PRICES_PER_MILLION_TOKENS if prices is None else prices
    # Vertex reports "publishers/google/models/x", the Gemini API "models/x",
    # OpenRouter "vendor/x": the price is keyed by the last part.
    name = model.rsplit("/", 1)[-1]
    matches = [prefix for prefix in table if name.startswith(prefix) or model.startswith(prefix)]
    if not matches:
        return None
    entry = table[max(matches, key=len)]
    cached = entry[2] if len(entry) > 2 else entry[0] * CACHED_INPUT_SHARE
    return entry[0], entry[1], cached


def estimate_cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    prices: PriceTable | None = None,
    thinking_tokens: int = 0,
    cached_tokens: int = 0,
) -> float | None:
    """Estimated price of a call, or None for a model missing from the price table.

    ``input_tokens`` includes ``cached_tokens``, as ``promptTokenCount`` does;
    thinking tokens are billed as output.
    """
    price = model_price(model, prices)
    if price is None:
        return None
    price_in, price_out, price_cached = price
    cached = min(max(cached_tokens, 0), input_tokens)
    total = (input_tokens - cached) * price_in + cached * price_cached + (output_tokens + thinking_tokens) * price_out
    return round(total / 1_000_000, 6)


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


# --------------------------------------------------------------------------- silent videos

_SILENT_TEXT: dict[str, dict[TranscriptQuality, tuple[str, str]]] = {
    "en": {
        TranscriptQuality.NO_AUDIO: ("No audio", "The video has no audio track, so there is nothing to transcribe."),
        TranscriptQuality.NO_SPEECH: ("No speech", "No speech was detected in the video's audio."),
    },
    "ru": {
        TranscriptQuality.NO_AUDIO: ("Без звука", "В видео нет звуковой дорожки, поэтому расшифровывать нечего."),
        TranscriptQuality.NO_SPEECH: ("Без речи", "В звуке видео не обнаружено речи."),
    },
}


def needs_model(transcript: Transcript) -> bool:
    """False when there is nothing to analyse: a model could only invent a summary."""
    return transcript.quality not in (TranscriptQuality.NO_AUDIO, TranscriptQuality.NO_SPEECH) and (
        not transcript.is_empty
    )


def silent_analysis(
    transcript: Transcript, *, language: str, analyzer: AnalyzerName, model: str, prompt_version: str
) -> AnalysisResult:
    """The honest analysis of a video without speech: it says so and claims nothing else."""
    quality = transcript.quality if transcript.quality == TranscriptQuality.NO_AUDIO else TranscriptQuality.NO_SPEECH
    texts = _SILENT_TEXT.get(language) or _SILENT_TEXT[DEFAULT_LANGUAGE]
    text_language = language if language in _SILENT_TEXT else DEFAULT_LANGUAGE
    title, summary = texts[quality]
    data = empty_analysis(text_language)
    data.update(title_suggestion=title, summary=summary)
    return AnalysisResult(
        analyzer=analyzer,
        model=model,
        prompt_version=prompt_version,
        language=text_language,
        data=validate_analysis(data),
        flags=(quality.value,),
        usage=Usage(),
    )


def empty_analysis(language: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "title_suggestion": "",
        "summary": "",
        "key_points": [],
        "topics": [],
        "tags": [],
        "entities": {"people": [], "organizations": [], "places": []},
        "chapters": [],
        "action_items": [],
        "quotes": [],
        "language": language,
    }


# --------------------------------------------------------------------------- tokens and chunks

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def estimate_tokens(text: str) -> int:
    """A conservative token estimate, without a tokenizer.

    Gemini's tokenizer averages about 4 characters per token for English but
    splits Cyrillic much finer (about 2.5), so counting them apart keeps Russian
    chunks from overflowing what an English-tuned ratio would allow.
    """
    cyrillic = len(_CYRILLIC.findall(text))
    return math.ceil(cyrillic / 2.5 + (len(text) - cyrillic) / 4)


def format_timestamp(seconds: float) -> str:
    return f"{seconds:.1f}"


def render_transcript(segments: Iterable[Segment]) -> str:
    """One line per segment, ``[12.3-15.0] text``: the model sees timing it can cite."""
    return "\n".join(
        f"[{format_timestamp(s.start)}-{format_timestamp(s.end)}] {s.text.strip()}" for s in segments if s.text.strip()
    )


@dataclass(frozen=True)
class Chunk:
    """A run of consecutive segments analysed in one call."""

    index: int
    count: int
    segments: tuple[Segment, ...]

    @property
    def start(self) -> float:
        return self.segments[0].start

    @property
    def end(self) -> float:
        return self.segments[-1].end


def chunk_transcript(transcript: Transcript, *, max_tokens: int, token_scale: float = 1.0) -> list[Chunk]:
    """Split at segment boundaries so each chunk's rendered lines fit ``max_tokens``.

    A single segment longer than the budget becomes a chunk of its own rather
    than being cut mid-sentence (Whisper segments are at most ~30 s of speech).
    ``token_scale`` corrects the estimate: the provider's real count of the whole
    transcript divided by ``estimate_tokens`` of it.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    if not (math.isfinite(token_scale) and token_scale > 0):
        raise ValueError("token_scale must be a positive number")
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    used = 0.0
    for segment in transcript.segments:
        if not segment.text.strip():
            continue
        cost = (estimate_tokens(render_transcript([segment])) + 1) * token_scale  # + the newline
        if current and used + cost > max_tokens:
            groups.append(current)
            current, used = [], 0.0
        current.append(segment)
        used += cost
    if current:
        groups.append(current)
    return [Chunk(index=i, count=len(groups), segments=tuple(g)) for i, g in enumerate(groups)]


# --------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Prompt:
    version: str
    system: str
    user: str


def _read_prompt_file(version: str) -> str:
    path = PROMPTS_DIR / f"{version}.txt"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return "\n".join(lines)


def load_prompt_template(version: str = PROMPT_VERSION) -> tuple[string.Template, string.Template]:
    """The (system, user) templates of a prompt version from ``prompts/<version>.txt``."""
    path = PROMPTS_DIR / f"{version}.txt"
    text = _read_prompt_file(version)
    match = re.fullmatch(r"\s*\[system\]\n(?P<system>.*?)\n\[user\]\n(?P<user>.*)", text, flags=re.DOTALL)
    if not match:
        raise ValueError(f"{path} must have a [system] section followed by a [user] section")
    return string.Template(match["system"].strip()), string.Template(match["user"].strip() + "\n")


def build_prompt(
    transcript: Transcript,
    *,
    title: str,
    language: str,
    chunk: Chunk | None = None,
    version: str = PROMPT_VERSION,
    images: int = 0,
) -> Prompt:
    """Fill the versioned templates for the whole transcript or one chunk of it.

    ``images``: how many frames of the video are sent with the prompt; when
    there are any, the images note is added and the version says so.
    """
    system_template, user_template = load_prompt_template(version)
    segments = chunk.segments if chunk else transcript.segments
    if chunk and chunk.count > 1:
        part_note = (
            f"This is part {chunk.index + 1} of {chunk.count} of the transcript, from "
            f"{format_timestamp(chunk.start)} to {format_timestamp(chunk.end)} seconds. Analyse only this part; "
            "chapters must lie within it. The title should still fit the whole video."
        )
        summary_length = "2-4 sentences about this part."
    else:
        part_note = ""
        summary_length = "3-6 sentences about the whole video."
    quality_note = (
        "Note: the speech recognition flagged this transcript as unreliable (repetitions or low "
        "confidence); be conservative and skip passages that look garbled."
        if transcript.quality == TranscriptQuality.SUSPECT
        else ""
    )
    values = {
        "language": language,
        "language_name": language_name(language),
        "title": title.strip() or "(none)",
        "duration": format_timestamp(transcript_duration(transcript)),
        "part_note": part_note,
        "quality_note": quality_note,
        "summary_length": summary_length,
        "max_key_points": LIMITS["key_points"],
        "max_topics": LIMITS["topics"],
        "max_tags": LIMITS["tags"],
        "max_chapters": LIMITS["chapters"],
        "max_quotes": LIMITS["quotes"],
        "transcript": render_transcript(segments),
    }
    user = re.sub(r"\n{3,}", "\n\n", user_template.substitute(values))
    if images:
        note = string.Template(_read_prompt_file(IMAGES_PROMPT_VERSION).strip())
        user = note.substitute(images=images) + "\n\n" + user
        version = f"{version}+{IMAGES_PROMPT_VERSION}"
    return Prompt(version=version, system=system_template.substitute(values), user=user)


# --------------------------------------------------------------------------- grounding


def transcript_duration(transcript: Transcript) -> float:
    last_end = max((s.end for s in transcript.segments), default=0.0)
    return max(transcript.duration, last_end)


_NON_WORD = re.compile(r"[\W_]+", flags=re.UNICODE)


def normalize_for_match(text: str) -> str:
    """Casefolded words separated by single spaces; punctuation and ``ё``/``е`` differences ignored.

    Models re-punctuate and re-case quotes; what must match is the words.
    """
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return " ".join(_NON_WORD.sub(" ", text).split())


@dataclass(frozen=True)
class _TranscriptIndex:
    text: str  # normalised segments joined by single spaces
    offsets: tuple[int, ...]  # where each segment starts in ``text``
    segments: tuple[Segment, ...]

    @classmethod
    def build(cls, segments: Sequence[Segment]) -> _TranscriptIndex:
        parts: list[str] = []
        offsets: list[int] = []
        kept: list[Segment] = []
        position = 0
        for segment in segments:
            normalized = normalize_for_match(segment.text)
            if not normalized:
                continue
            offsets.append(position)
            parts.append(normalized)
            kept.append(segment)
            position += len(normalized) + 1
        return cls(" ".join(parts), tuple(offsets), tuple(kept))

    def find(self, quote: str) -> Segment | None:
        """The segment where ``quote`` begins, matching on word boundaries, or None."""
        needle = normalize_for_match(quote)
        if not needle:
            return None
        haystack = f" {self.text} "
        at = haystack.find(f" {needle} ")
        if at < 0:
            return None
        return self.segments[bisect.bisect_right(self.offsets, at) - 1]


def _clean_strings(values: Iterable[Any], *, limit: int, casefold_dedupe: bool = True) -> tuple[list[str], bool]:
    seen: set[str] = set()
    result: list[str] = []
    for value in values:
        text = " ".join(str(value).split())
        key = text.casefold() if casefold_dedupe else text
        if text and key not in seen:
            seen.add(key)
            result.append(text)
    return result[:limit], len(result) > limit


def _snap(value: float, boundaries: Sequence[float]) -> float:
    at = bisect.bisect_left(boundaries, value)
    candidates = boundaries[max(0, at - 1) : at + 1]
    return min(candidates, key=lambda b: (abs(b - value), b)) if candidates else value


def ground_analysis(
    data: dict[str, Any],
    transcript: Transcript,
    *,
    language: str,
    chunk: Chunk | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Make a schema-valid analysis agree with the transcript; return it and what was changed.

    ``chunk`` limits chapters and quotes to that part of the transcript (used
    when a long transcript is analysed in parts). Flags are stable codes, each
    listed once, in the order the checks run.
    """
    result = copy.deepcopy(data)
    flags: list[str] = []

    def flag(code: str) -> None:
        if code not in flags:
            flags.append(code)

    result["schema_version"] = SCHEMA_VERSION
    if normalize_language(result.get("language")) != language:
        flag("language_corrected")
    result["language"] = language

    title = " ".join(result["title_suggestion"].split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
        flag("title_truncated")
    result["title_suggestion"] = title
    result["summary"] = result["summary"].strip()

    for key in ("key_points", "topics", "tags", "action_items"):
        result[key], truncated = _clean_strings(result[key], limit=LIMITS[key])
        if truncated:
            flag(f"{key}_truncated")
    result["tags"], _ = _clean_strings((t.lower() for t in result["tags"]), limit=LIMITS["tags"])
    for kind in ("people", "organizations", "places"):
        result["entities"][kind], truncated = _clean_strings(result["entities"][kind], limit=LIMITS["entities"])
        if truncated:
            flag("entities_truncated")

    segments = chunk.segments if chunk else tuple(s for s in transcript.segments if s.text.strip())
    window_start, window_end = (chunk.start, chunk.end) if chunk else (0.0, transcript_duration(transcript))
    result["chapters"] = _ground_chapters(result["chapters"], segments, window_start, window_end, flag)
    result["quotes"] = _ground_quotes(result["quotes"], segments, flag)
    return validate_analysis(result), flags


def _ground_chapters(
    chapters: list[dict[str, Any]],
    segments: Sequence[Segment],
    window_start: float,
    window_end: float,
    flag: Callable[[str], None],
) -> list[dict[str, Any]]:
    if not segments:
        if chapters:
            flag("chapters_dropped_no_speech")
        return []
    starts = sorted({s.start for s in segments})
    ends = sorted({s.end for s in segments})
    cleaned: list[dict[str, Any]] = []
    for chapter in chapters:
        start, end = float(chapter["start"]), float(chapter["end"])
        if not (math.isfinite(start) and math.isfinite(end)):
            flag("chapter_dropped_invalid_time")
            continue
        if end < start:
            start, end = end, start
            flag("chapter_times_swapped")
        if start < window_start or end > window_end:
            flag("chapter_clamped")
            start, end = max(start, window_start), min(end, window_end)
            if start >= end:
                flag("chapter_dropped_out_of_range")
                continue
        cleaned.append(
            {
                "start": _snap(start, starts),
                "end": _snap(end, ends),
                "title": " ".join(str(chapter["title"]).split()),
                "summary": str(chapter["summary"]).strip(),
            }
        )
    if any(a["start"] > b["start"] for a, b in itertools.pairwise(cleaned)):
        flag("chapters_reordered")
    cleaned.sort(key=lambda c: (c["start"], c["end"]))
    grounded: list[dict[str, Any]] = []
    for i, chapter in enumerate(cleaned):
        if grounded and chapter["start"] < grounded[-1]["end"]:
            flag("chapters_overlap_fixed")
            # End the earlier chapter on the last segment end before the later
            # one starts, so both still sit on segment boundaries.
            earlier = [e for e in ends if e <= chapter["start"]]
            grounded[-1]["end"] = earlier[-1] if earlier else grounded[-1]["start"]
            if grounded[-1]["end"] <= grounded[-1]["start"]:
                grounded.pop()
        if chapter["end"] <= chapter["start"]:
            # Snapping can collapse a chapter shorter than one segment; extend it
            # to the end of the segment it starts in when that is still free.
            following = [e for e in ends if e > chapter["start"]]
            next_start = cleaned[i + 1]["start"] if i + 1 < len(cleaned) else math.inf
            if following and following[0] <= next_start:
                chapter["end"] = following[0]
            else:
                flag("chapter_dropped_empty")
                continue
        grounded.append(chapter)
    if len(grounded) > LIMITS["chapters"]:
        flag("chapters_truncated")
    return grounded[: LIMITS["chapters"]]


def _ground_quotes(
    quotes: list[dict[str, Any]], segments: Sequence[Segment], flag: Callable[[str], None]
) -> list[dict[str, Any]]:
    index = _TranscriptIndex.build(segments)
    grounded: list[dict[str, Any]] = []
    seen: set[str] = set()
    for quote in quotes:
        text = " ".join(str(quote["text"]).split()).strip("\"'«»“”„ ")
        segment = index.find(text)
        if segment is None:
            flag("quote_not_in_transcript")
            continue
        key = normalize_for_match(text)
        if key in seen:
            continue
        seen.add(key)
        # The timestamp comes from where the words are, not from the model.
        if abs(float(quote["start"]) - segment.start) > 1.0:
            flag("quote_start_corrected")
        grounded.append({"text": text, "start": segment.start})
    if len(grounded) > LIMITS["quotes"]:
        flag("quotes_truncated")
    return grounded[: LIMITS["quotes"]]


# --------------------------------------------------------------------------- merging chunks


def _round_robin(lists: Sequence[Sequence[str]]) -> list[str]:
    """Interleave so that a cap keeps items from every chunk, not just the first ones."""
    merged: list[str] = []
    for row in range(max((len(items) for items in lists), default=0)):
        merged.extend(items[row] for items in lists if row < len(items))
    return merged


def _ranked(lists: Sequence[Sequence[str]]) -> list[str]:
    """Items named by more chunks first; ties keep first appearance. Deterministic."""
    counts: Counter[str] = Counter()
    first_seen: dict[str, tuple[int, str]] = {}
    for items in lists:
        for item in dict.fromkeys(i.casefold() for i in items):
            counts[item] += 1
        for item in items:
            first_seen.setdefault(item.casefold(), (len(first_seen), item))
    order = sorted(first_seen, key=lambda k: (-counts[k], first_seen[k][0]))
    return [first_seen[k][1] for k in order]


def merge_analyses(parts: Sequence[dict[str, Any]], *, language: str) -> dict[str, Any]:
    """Combine grounded chunk analyses, in chunk order, into one (then ground it again)."""
    if not parts:
        raise ValueError("nothing to merge")
    if len(parts) == 1:
        return copy.deepcopy(dict(parts[0]))
    merged = empty_analysis(language)
    merged["title_suggestion"] = next((p["title_suggestion"] for p in parts if p["title_suggestion"]), "")
    merged["summary"] = " ".join(p["summary"].strip() for p in parts if p["summary"].strip())
    # Caps are applied here, quietly: dropping the excess of a merge is expected,
    # not a repair of what the model said.
    for key in ("key_points", "action_items"):
        merged[key] = _clean_strings(_round_robin([p[key] for p in parts]), limit=LIMITS[key])[0]
    for key in ("topics", "tags"):
        merged[key] = _ranked([p[key] for p in parts])[: LIMITS[key]]
    for kind in ("people", "organizations", "places"):
        merged["entities"][kind] = _ranked([p["entities"][kind] for p in parts])[: LIMITS["entities"]]
    merged["chapters"] = [c for p in parts for c in p["chapters"]]
    merged["quotes"] = _round_robin_dicts([p["quotes"] for p in parts])
    return merged


def _round_robin_dicts(lists: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    picked = [items[row] for row in range(max(map(len, lists), default=0)) for items in lists if row < len(items)]
    return sorted(picked[: LIMITS["quotes"]], key=lambda q: q["start"])


# --------------------------------------------------------------------------- the model analyzer

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
        chunks = self.plan_chunks(transcript)
        if len(chunks) > 1:
            log.info(
                "Transcript of %d segments split into %d parts for analysis", len(transcript.segments), len(chunks)
            )
        parts: list[dict[str, Any]] = []
        flags: list[str] = []
        usage = Usage()
        prompts = [
            build_prompt(transcript, title=title, language=language, chunk=chunk, images=len(images))
            for chunk in chunks
        ]
        # A budget is checked for the whole analysis before its first call, so a
        # video is analysed entirely or not at all (never half, then stopped).
        begin = getattr(self.hook, "begin_analysis", None)
        if begin is not None:
            begin([f"{p.system}\n{p.user}" for p in prompts])
        try:
            return self._analyze_chunks(transcript, chunks, prompts, language, images, parts, flags, usage)
        finally:
            end = getattr(self.hook, "end_analysis", None)
            if end is not None:
                end()

    def _analyze_chunks(
        self,
        transcript: Transcript,
        chunks: Sequence[Chunk],
        prompts: Sequence[Prompt],
        language: str,
        images: Sequence[bytes],
        parts: list[dict[str, Any]],
        flags: list[str],
        usage: Usage,
    ) -> AnalysisResult:
        prompt_version = PROMPT_VERSION
        for chunk, prompt in zip(chunks, prompts, strict=True):
            prompt_version = prompt.version
            data, call_usage = self.hook.generate_json(
                prompt=prompt.user,
                system_instruction=prompt.system,
                response_schema=MODEL_RESPONSE_SCHEMA,
                validate=validate_model_answer,
                images=images,
            )
            grounded, chunk_flags = ground_analysis(
                {"schema_version": SCHEMA_VERSION, **data},
                transcript,
                language=language,
                chunk=chunk if len(chunks) > 1 else None,
            )
            parts.append(grounded)
            flags.extend(f for f in chunk_flags if f not in flags)
            usage = usage + call_usage
        merged, merge_flags = ground_analysis(merge_analyses(parts, language=language), transcript, language=language)
        flags.extend(f for f in merge_flags if f not in flags)
        if len(chunks) > 1:
            flags.append("chunked")
        if transcript.quality == TranscriptQuality.SUSPECT:
            flags.append("transcript_suspect")
        return AnalysisResult(
            analyzer=self.name,
            model=self.hook.model,
            prompt_version=prompt_version,
            language=language,
            data=merged,
            flags=tuple(flags),
            usage=usage,
        )


def image_mime_type(data: bytes) -> str:
    """The MIME type of a JPEG, PNG or WebP image from its magic bytes; ValueError otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError("not a JPEG, PNG or WebP image")
