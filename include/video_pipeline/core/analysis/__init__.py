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

The package re-exports its public API, so ``from include.video_pipeline.core.analysis
import X`` works for every name below; the code lives in one module per job:

* ``schema``: ``SCHEMA_VERSION``, ``LIMITS``, ``ANALYSIS_SCHEMA``,
  ``MODEL_RESPONSE_SCHEMA``, ``schema_errors``, ``validate_analysis``, ``empty_analysis``.
* ``languages``: ``LANGUAGE_NAMES``, ``normalize_language``, ``resolve_output_language``.
* ``pricing``: ``DEFAULT_GEMINI_MODELS``, ``PRICES_PER_MILLION_TOKENS``,
  ``BATCH_PRICE_SHARE``, ``price_table``, ``model_price``, ``estimate_cost_usd``.
* ``results``: ``Usage``, ``AnalysisResult``, ``analysis_made_by``,
  ``unavailable_analysis``, the ``Analyzer`` protocol.
* ``silent``: ``needs_model``, ``silent_analysis`` (videos without speech).
* ``chunking``: ``estimate_tokens``, ``render_transcript``, ``Chunk``, ``chunk_transcript``.
* ``prompts``: ``PROMPT_VERSION``, ``PROMPTS_DIR``, ``load_prompt_template``, ``build_prompt``.
* ``grounding``: ``ground_analysis``, ``normalize_for_match``, ``transcript_duration``.
* ``merge``: ``merge_analyses`` (chunk analyses into one).
* ``model_analyzer``: ``ModelAnalyzer``, ``AnalysisPlan``, ``StructuredModel``, ``validate_model_answer``.
* ``images``: ``image_mime_type``.

Tests that patch a module attribute must patch the submodule that holds it:
the names here are only re-exports.
"""

from include.video_pipeline.core.analysis.chunking import (
    Chunk,
    chunk_transcript,
    estimate_tokens,
    format_timestamp,
    render_transcript,
)
from include.video_pipeline.core.analysis.grounding import ground_analysis, normalize_for_match, transcript_duration
from include.video_pipeline.core.analysis.images import image_mime_type
from include.video_pipeline.core.analysis.languages import (
    DEFAULT_LANGUAGE,
    LANGUAGE_NAMES,
    language_name,
    normalize_language,
    resolve_output_language,
)
from include.video_pipeline.core.analysis.merge import merge_analyses
from include.video_pipeline.core.analysis.model_analyzer import (
    DEFAULT_MAX_CHUNK_TOKENS,
    AnalysisPlan,
    ModelAnalyzer,
    StructuredModel,
    validate_model_answer,
)
from include.video_pipeline.core.analysis.pricing import (
    BATCH_PRICE_SHARE,
    CACHED_INPUT_SHARE,
    DEFAULT_GEMINI_MODELS,
    EXPECTED_OUTPUT_TOKENS_PER_CALL,
    PRICES_AS_OF,
    PRICES_PER_MILLION_TOKENS,
    PriceOverride,
    PriceTable,
    estimate_cost_usd,
    model_price,
    price_table,
)
from include.video_pipeline.core.analysis.prompts import (
    IMAGES_PROMPT_VERSION,
    PROMPT_VERSION,
    PROMPTS_DIR,
    Prompt,
    build_prompt,
    load_prompt_template,
)
from include.video_pipeline.core.analysis.results import (
    ANALYSIS_UNAVAILABLE_FLAG,
    MADE_BY_NOTE,
    AnalysisResult,
    Analyzer,
    AnalyzerName,
    MadeBy,
    Usage,
    analysis_made_by,
    unavailable_analysis,
)
from include.video_pipeline.core.analysis.schema import (
    ANALYSIS_SCHEMA,
    LIMITS,
    MAX_TITLE_CHARS,
    MODEL_RESPONSE_SCHEMA,
    SCHEMA_VERSION,
    AnalysisValidationError,
    empty_analysis,
    schema_errors,
    validate_analysis,
)
from include.video_pipeline.core.analysis.silent import needs_model, silent_analysis

__all__ = [
    "ANALYSIS_SCHEMA",
    "ANALYSIS_UNAVAILABLE_FLAG",
    "BATCH_PRICE_SHARE",
    "CACHED_INPUT_SHARE",
    "DEFAULT_GEMINI_MODELS",
    "DEFAULT_LANGUAGE",
    "DEFAULT_MAX_CHUNK_TOKENS",
    "EXPECTED_OUTPUT_TOKENS_PER_CALL",
    "IMAGES_PROMPT_VERSION",
    "LANGUAGE_NAMES",
    "LIMITS",
    "MADE_BY_NOTE",
    "MAX_TITLE_CHARS",
    "MODEL_RESPONSE_SCHEMA",
    "PRICES_AS_OF",
    "PRICES_PER_MILLION_TOKENS",
    "PROMPTS_DIR",
    "PROMPT_VERSION",
    "SCHEMA_VERSION",
    "AnalysisPlan",
    "AnalysisResult",
    "AnalysisValidationError",
    "Analyzer",
    "AnalyzerName",
    "Chunk",
    "MadeBy",
    "ModelAnalyzer",
    "PriceOverride",
    "PriceTable",
    "Prompt",
    "StructuredModel",
    "Usage",
    "analysis_made_by",
    "build_prompt",
    "chunk_transcript",
    "empty_analysis",
    "estimate_cost_usd",
    "estimate_tokens",
    "format_timestamp",
    "ground_analysis",
    "image_mime_type",
    "language_name",
    "load_prompt_template",
    "merge_analyses",
    "model_price",
    "needs_model",
    "normalize_for_match",
    "normalize_language",
    "price_table",
    "render_transcript",
    "resolve_output_language",
    "schema_errors",
    "silent_analysis",
    "transcript_duration",
    "unavailable_analysis",
    "validate_analysis",
    "validate_model_answer",
]
