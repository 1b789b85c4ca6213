"""Google Gemini: the hook that calls it and the analyzer built on it.

``GeminiHook`` owns everything about talking to the Gemini API: the key,
structured output, images, token counts, and how each failure maps onto the
pipeline's errors (the retry loop itself is ``ModelHook``'s, shared with the
other providers):

=====================================  ====================================================
answer                                 what happens
=====================================  ====================================================
invalid JSON / schema violation        one more call, then ``InvalidModelOutput``
429 rate limit, 503, 500, timeouts     exponential backoff with jitter, honouring
                                       ``Retry-After`` / ``RetryInfo``, total wait capped
429 daily quota, or 429s that outlast  ``QuotaExhausted``: the video waits for the next run
the retries
404 NOT_FOUND (a retired model)        ``ModelNotFound``: the next configured model is used
400 API_KEY_INVALID, 401, 403          ``ProviderUnavailable(provider_auth)`` (the key never
                                       appears in it)
400 FAILED_PRECONDITION "User          ``ProviderUnavailable(location_unsupported)``, with
location is not supported"             what to use instead
blocked prompt / SAFETY finish         ``InputRejected(CONTENT_BLOCKED)``
=====================================  ====================================================

``preflight`` checks key, model, region and quota before a run claims anything
(``models.get`` and ``countTokens``, both free); see ``operators/preflight.py``.

``VertexGeminiHook`` (``hooks/vertex.py``) is the same API through Vertex AI.
``GeminiAnalyzer`` turns a transcript into an ``AnalysisResult`` with either;
``hooks/analyzers.py`` chooses the provider from ``AnalysisSettings``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from include.video_pipeline.core.analysis import (
    DEFAULT_GEMINI_MODELS,
    DEFAULT_MAX_CHUNK_TOKENS,
    AnalyzerName,
    ModelAnalyzer,
    image_mime_type,
)
from include.video_pipeline.core.errors import (
    InputRejected,
    PermanentError,
    PipelineError,
    QuotaExhausted,
    RejectReason,
)
from include.video_pipeline.hooks.llm_base import (
    LOCATION_UNSUPPORTED,
    PROVIDER_AUTH,
    PROVIDER_MISCONFIGURED,
    CallRecord,
    InvalidModelOutput,
    ModelHook,
    ModelNotFound,
    ProviderUnavailable,
    Retryable,
    next_quota_reset,
    parse_retry_after,
    redact,
)

if TYPE_CHECKING:
    from google import genai

__all__ = [
    "API_KEY_ENV_VARS",
    "DEFAULT_MAX_CHUNK_TOKENS",
    "CallRecord",
    "GeminiAnalyzer",
    "GeminiHook",
    "InvalidModelOutput",
]

log = logging.getLogger(__name__)

# The old Node.js pipeline read GOOGLE_API_KEY; GEMINI_API_KEY is what Google's
# SDKs document today. Both work so an existing .env keeps working.
API_KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

# Finish reasons after which the candidate holds no usable answer because a
# filter stopped it: the content, not the infrastructure, is the problem.
BLOCKING_FINISH_REASONS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


def _error_details(details: Any) -> list[dict[str, Any]]:
    """The ``google.rpc`` detail objects of an error body, whatever shape the SDK kept."""
    if isinstance(details, dict):
        details = details.get("error", details).get("details", [])
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_info_delay(details: list[dict[str, Any]]) -> float | None:
    for detail in details:
        if detail.get("@type", "").endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _is_daily_quota(details: list[dict[str, Any]], message: str) -> bool:
    # A per-day violation means nothing will succeed before the quota resets
    # (midnight Pacific); per-minute ones clear in seconds and are retried.
    for detail in details:
        for violation in detail.get("violations", []) if isinstance(detail, dict) else []:
            quota = f"{violation.get('quotaId', '')} {violation.get('quotaMetric', '')}".lower()
            if "perday" in quota or "per_day" in quota:
                return True
    return "per day" in message.lower() or "daily" in message.lower()


def _has_reason(details: list[dict[str, Any]], reason: str) -> bool:
    return any(d.get("reason") == reason for d in details)


# What Google answers from a country the Gemini API does not serve (Russia among
# them): 400 FAILED_PRECONDITION "User location is not supported for the API use."
_LOCATION_MESSAGE = "location is not supported"
# A retired model answers 404 NOT_FOUND; some retirements answer 400 with a message instead.
_RETIRED_WORDS = ("is not found", "not found for api version", "no longer available", "has been retired", "deprecated")

LOCATION_ADVICE = (
    "The Gemini API refuses requests from this server's country. Use Gemini on Vertex AI in an EU region "
    "(VIDEO_PIPELINE_ANALYZER=vertex, VIDEO_PIPELINE_VERTEX_LOCATION=europe-west4) or an OpenAI-compatible "
    "provider (VIDEO_PIPELINE_ANALYZER=openai-compatible); see docs/analysis-providers.md."
)


def _api_key(conn: Any) -> str | None:
    key = (conn.password or conn.extra_dejson.get("api_key")) if conn is not None else None
    if key:
        return str(key).strip()
    return next((v.strip() for name in API_KEY_ENV_VARS if (v := os.environ.get(name, "")).strip()), None)


class GeminiHook(ModelHook):
    """Calls the Gemini API through ``google-genai`` and returns validated JSON.

    The API key is the password of the Airflow connection ``gemini_conn_id``
    (``AIRFLOW_CONN_GEMINI_DEFAULT='{"conn_type": "generic", "password": "..."}'``),
    else the environment variable ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``.

    :param gemini_conn_id: Airflow connection holding the API key.
    :param model: Gemini model name, e.g. ``gemini-3.5-flash``.
    :param base_url: API endpoint; None for Google's. Proxies and the test server set it.
    :param kwargs: retries, backoff, timeout, prices and ``sleep``: see ``ModelHook``.
    """

    conn_name_attr = "gemini_conn_id"
    default_conn_name = "gemini_default"
    conn_type = "generic"
    hook_name = "Google Gemini"
    provider_label = "Gemini"

    def __init__(
        self,
        gemini_conn_id: str = default_conn_name,
        *,
        model: str = DEFAULT_GEMINI_MODELS[0],
        base_url: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(model=model, **kwargs)
        self.gemini_conn_id = gemini_conn_id
        self.base_url = base_url
        self._client: genai.Client | None = None
        self._api_key: str | None = None

    # -- credentials and client ---------------------------------------------

    def get_api_key(self) -> str | None:
        """The API key from the connection, else the environment; None when there is none."""
        try:
            conn = self.get_connection(self.gemini_conn_id)
        except Exception as exc:
            # Missing connection, or no Airflow context to ask (e.g. outside a
            # task): both mean "use the environment", so never fail here.
            log.debug("No usable Airflow connection %r (%s); trying the environment", self.gemini_conn_id, type(exc))
            conn = None
        return _api_key(conn)

    async def aget_api_key(self) -> str | None:
        """``get_api_key`` for the triggerer's event loop (the connection is fetched without blocking it)."""
        try:
            conn = await self.aget_connection(self.gemini_conn_id)
        except Exception as exc:
            log.debug("No usable Airflow connection %r (%s); trying the environment", self.gemini_conn_id, type(exc))
            conn = None
        return _api_key(conn)

    def has_api_key(self) -> bool:
        return self.get_api_key() is not None

    def get_conn(self) -> genai.Client:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _http_options(self) -> Any:
        from google.genai import types

        # The SDK's own retries stay off (retry_options unset): this hook retries
        # so that quota and key errors are told apart first.
        return types.HttpOptions(base_url=self.base_url, timeout=int(self.timeout_seconds * 1000))

    def _make_client(self) -> genai.Client:
        from google import genai

        key = self.get_api_key()
        if not key:
            raise ProviderUnavailable(
                PROVIDER_MISCONFIGURED,
                f"No Gemini API key: set the password of Airflow connection {self.gemini_conn_id!r} "
                f"or the environment variable {API_KEY_ENV_VARS[0]}",
            )
        self._api_key = key
        return genai.Client(api_key=key, http_options=self._http_options())

    # -- calls ---------------------------------------------------------------

    def preflight(self) -> str:
        """Key, model, region and quota, checked with free calls; returns the model analyses will use.

        Each configured model is looked up with ``models.get`` (a retired one is
        skipped, with one warning); the first that exists counts one token with
        ``countTokens``, which goes through the same key, region and project
        checks as a paid call. Transient errors are retried as for any call.
        """
        client = self.get_conn()
        # self.model is read at each attempt: a 404 moves it to the next configured model.
        self.call_with_retries(lambda: client.models.get(model=self.model))
        self.call_with_retries(lambda: client.models.count_tokens(model=self.model, contents="ping"))
        return self.model

    def count_tokens(self, text: str) -> int | None:
        """Gemini's own count of ``text`` (free, one attempt); errors come back redacted."""
        client = self.get_conn()
        try:
            response = client.models.count_tokens(model=self.model, contents=text)
        except Exception as exc:
            raise PipelineError(
                f"{self.provider_label} countTokens failed: {redact(f'{type(exc).__name__}: {exc}', self._api_key)}"
            ) from None
        return int(response.total_tokens) if response.total_tokens is not None else None

    def _contents(self, prompt: str, images: Sequence[bytes]) -> Any:
        from google.genai import types

        if not images:
            return prompt
        # Images first, then the text that refers to them, as Google recommends.
        parts = [types.Part.from_bytes(data=bytes(image), mime_type=image_mime_type(image)) for image in images]
        parts.append(types.Part.from_text(text=prompt))
        return [types.Content(role="user", parts=parts)]

    def _generate_once(
        self,
        *,
        prompt: str,
        system_instruction: str,
        response_schema: dict[str, Any],
        temperature: float,
        images: Sequence[bytes],
    ) -> tuple[str, CallRecord]:
        from google.genai import types

        client = self.get_conn()
        config = types.GenerateContentConfig(
            system_instruction=system_instruction,
            temperature=temperature,
            response_mime_type="application/json",
            response_json_schema=response_schema,
        )
        started = time.monotonic()
        response = client.models.generate_content(
            model=self.model, contents=self._contents(prompt, images), config=config
        )
        latency = time.monotonic() - started
        self._raise_if_blocked(response)
        usage = response.usage_metadata
        # promptTokenCount includes the cached part; thinking is billed as output.
        record = self._record(
            model=response.model_version or self.model,
            input_tokens=(usage.prompt_token_count or 0) if usage else 0,
            output_tokens=(usage.candidates_token_count or 0) if usage else 0,
            thinking_tokens=(usage.thoughts_token_count or 0) if usage else 0,
            cached_tokens=(usage.cached_content_token_count or 0) if usage else 0,
            latency=latency,
        )
        return response.text or "", record

    def _auth_failure(self, code: int | None, status: str | None, message: str) -> PermanentError:
        return ProviderUnavailable(
            PROVIDER_AUTH,
            f"Gemini rejected the API key from connection {self.gemini_conn_id!r} or "
            f"{'/'.join(API_KEY_ENV_VARS)} (HTTP {code} {status}): {message}. "
            "Check the key and that the Generative Language API is enabled for its project.",
        )

    def _classify(self, exc: Exception) -> Retryable:
        """Map an SDK or transport error to a retry, or raise the pipeline error it means."""
        if isinstance(exc, InputRejected):
            raise exc
        import httpx
        from google.genai import errors as genai_errors

        if isinstance(exc, httpx.TransportError):  # timeouts, refused or reset connections
            return Retryable(redact(f"{type(exc).__name__}: {exc}", self._api_key))
        if not isinstance(exc, genai_errors.APIError):
            raise exc
        code = exc.code
        message = redact(str(exc.message or exc.status or ""), self._api_key)
        details = _error_details(exc.details)
        description = f"HTTP {code} {exc.status or ''}: {message}".strip()
        if code == 429:
            if _is_daily_quota(details, message):
                reset = next_quota_reset()
                raise QuotaExhausted(
                    f"{self.provider_label} daily quota exhausted for {self.model} until "
                    f"{reset:%H:%M} Pacific ({reset.astimezone(UTC):%H:%M} UTC): {message}"
                ) from None
            header = exc.response.headers.get("retry-after") if exc.response is not None else None
            retry_after = parse_retry_after(header)
            if retry_after is None:
                retry_after = _retry_info_delay(details)
            return Retryable(description, retry_after=retry_after, rate_limited=True)
        if code in (408, 500, 502, 503, 504):
            header = exc.response.headers.get("retry-after") if exc.response is not None else None
            return Retryable(description, retry_after=parse_retry_after(header))
        if (code == 400 and _has_reason(details, "API_KEY_INVALID")) or code in (401, 403):
            raise self._auth_failure(code, exc.status, message) from None
        if code == 400 and _LOCATION_MESSAGE in message.lower():
            raise ProviderUnavailable(
                LOCATION_UNSUPPORTED, f"{self.provider_label}: {message} (HTTP 400 {exc.status}). {LOCATION_ADVICE}"
            ) from None
        if code == 404 or (code == 400 and any(word in message.lower() for word in _RETIRED_WORDS)):
            raise ModelNotFound(f"HTTP {code} {exc.status or ''}: {message}".strip()) from None
        # Any other 4xx is a request we built wrong; sending it again cannot help.
        raise PermanentError(f"{self.provider_label} refused the request: {description}") from None

    def _raise_if_blocked(self, response: Any) -> None:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = getattr(feedback.block_reason, "value", str(feedback.block_reason))
            raise InputRejected(
                RejectReason.CONTENT_BLOCKED,
                f"{self.provider_label} blocked the transcript ({reason})",
                details={"block_reason": reason, "model": self.model},
            )
        candidates = response.candidates or []
        finish = candidates[0].finish_reason if candidates else None
        finish_name = getattr(finish, "value", str(finish)) if finish is not None else None
        if finish_name in BLOCKING_FINISH_REASONS:
            raise InputRejected(
                RejectReason.CONTENT_BLOCKED,
                f"{self.provider_label} stopped its answer for content reasons ({finish_name})",
                details={"finish_reason": finish_name, "model": self.model},
            )


class GeminiAnalyzer(ModelAnalyzer):
    """Analysis by Gemini (API key or Vertex AI): prompt per chunk, grounding, deterministic merge.

    :param hook: the configured ``GeminiHook`` or ``VertexGeminiHook``.
    :param max_chunk_tokens: transcript tokens per call (counted by Gemini's
        countTokens, estimated when that fails); longer transcripts are analysed in parts.
    """

    name: AnalyzerName = "gemini"

    def __init__(
        self,
        hook: GeminiHook,
        *,
        name: AnalyzerName | None = None,
        max_chunk_tokens: int = DEFAULT_MAX_CHUNK_TOKENS,
    ):
        super().__init__(hook, name=name, max_chunk_tokens=max_chunk_tokens)
        self.hook: GeminiHook = hook
