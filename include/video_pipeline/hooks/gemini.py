"""Google Gemini: the hook that calls it and the analyzer built on it.

``GeminiHook`` owns everything about talking to the API: the key, structured
output, retries and how each failure maps onto the pipeline's errors:

=====================================  ====================================================
answer                                 what happens
=====================================  ====================================================
invalid JSON / schema violation        one more call, then ``InvalidModelOutput``
429 rate limit, 503, 500, timeouts     exponential backoff with jitter, honouring
                                       ``Retry-After`` / ``RetryInfo``, total wait capped
429 daily quota, or 429s that outlast  ``QuotaExhausted``: the video waits for the next run
the retries
400 API_KEY_INVALID, 401, 403, 404     ``PermanentError`` (the key never appears in it)
blocked prompt / SAFETY finish         ``InputRejected(CONTENT_BLOCKED)``
=====================================  ====================================================

``GeminiAnalyzer`` turns a transcript into an ``AnalysisResult`` with it:
prompt, chunking of long transcripts, grounding, merge. ``build_analyzer``
chooses between it and the offline analyzer from ``AnalysisSettings``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from include.video_pipeline.config import AnalysisSettings
from include.video_pipeline.core.analysis import (
    MODEL_RESPONSE_SCHEMA,
    PROMPT_VERSION,
    SCHEMA_VERSION,
    AnalysisResult,
    Analyzer,
    AnalyzerName,
    Usage,
    build_prompt,
    chunk_transcript,
    estimate_cost_usd,
    ground_analysis,
    merge_analyses,
    needs_model,
    resolve_output_language,
    schema_errors,
    silent_analysis,
)
from include.video_pipeline.core.errors import (
    InputRejected,
    PermanentError,
    PipelineError,
    QuotaExhausted,
    RejectReason,
)
from include.video_pipeline.core.offline_analyzer import OfflineAnalyzer
from include.video_pipeline.core.transcript import Transcript, TranscriptQuality

if TYPE_CHECKING:
    from google import genai

log = logging.getLogger(__name__)

# The old Node.js pipeline read GOOGLE_API_KEY; GEMINI_API_KEY is what Google's
# SDKs document today. Both work so an existing .env keeps working.
API_KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

# Finish reasons after which the candidate holds no usable answer because a
# filter stopped it: the content, not the infrastructure, is the problem.
BLOCKING_FINISH_REASONS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"})

# Gemini 2.5 Flash handles far more, but analysis quality on one enormous prompt
# drops and one call's output cap (chapters for four hours) is easier to hit. This
# is roughly two hours of speech per call.
DEFAULT_MAX_CHUNK_TOKENS = 30_000


class InvalidModelOutput(PipelineError):
    """The model answered twice with text that is not a valid analysis; Airflow may retry."""


@dataclass(frozen=True)
class CallRecord:
    """One successful generateContent call, for cost tracking and logs."""

    model: str
    input_tokens: int
    output_tokens: int
    latency_seconds: float
    attempts: int

    @property
    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_seconds=self.latency_seconds,
            calls=1,
            cost_usd=estimate_cost_usd(self.model, self.input_tokens, self.output_tokens),
        )


class _Retryable(Exception):
    """A failed attempt worth another try, with the wait the server asked for, if any."""

    def __init__(self, description: str, *, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
        self.rate_limited = rate_limited


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp()))


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


class GeminiHook(BaseHook):
    """Calls the Gemini API through ``google-genai`` and returns validated JSON.

    The API key is the password of the Airflow connection ``gemini_conn_id``
    (``AIRFLOW_CONN_GEMINI_DEFAULT='{"conn_type": "generic", "password": "..."}'``),
    else the environment variable ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``.

    :param gemini_conn_id: Airflow connection holding the API key.
    :param model: Gemini model name, e.g. ``gemini-2.5-flash``.
    :param base_url: API endpoint; None for Google's. Proxies and the test server set it.
    :param timeout_seconds: limit for one HTTP call.
    :param max_retries: further attempts after a retryable failure (429, 5xx, timeouts).
    :param backoff_base_seconds: first backoff wait; doubles per attempt, with jitter.
    :param backoff_max_seconds: cap on one wait.
    :param max_total_wait_seconds: cap on all waits of one call together; a server
        asking for longer ends the retries early.
    :param sleep: how to wait; tests pass a recorder so they need not sleep.
    """

    conn_name_attr = "gemini_conn_id"
    default_conn_name = "gemini_default"
    conn_type = "generic"
    hook_name = "Google Gemini"

    def __init__(
        self,
        gemini_conn_id: str = default_conn_name,
        *,
        model: str = "gemini-2.5-flash",
        base_url: str | None = None,
        timeout_seconds: float = 120,
        max_retries: int = 5,
        backoff_base_seconds: float = 2.0,
        backoff_max_seconds: float = 60.0,
        max_total_wait_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__()
        self.gemini_conn_id = gemini_conn_id
        self.model = model
        self.base_url = base_url
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.max_total_wait_seconds = max_total_wait_seconds
        self.sleep = sleep
        self.calls: list[CallRecord] = []
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
        else:
            key = conn.password or conn.extra_dejson.get("api_key")
            if key:
                return str(key).strip()
        for name in API_KEY_ENV_VARS:
            value = os.environ.get(name, "").strip()
            if value:
                return value
        return None

    def has_api_key(self) -> bool:
        return self.get_api_key() is not None

    def get_conn(self) -> genai.Client:
        if self._client is None:
            from google import genai
            from google.genai import types

            key = self.get_api_key()
            if not key:
                raise PermanentError(
                    f"No Gemini API key: set the password of Airflow connection {self.gemini_conn_id!r} "
                    f"or the environment variable {API_KEY_ENV_VARS[0]}"
                )
            self._api_key = key
            self._client = genai.Client(
                api_key=key,
                # The SDK's own retries stay off (retry_options unset): this hook
                # retries so that quota and key errors are told apart first.
                http_options=types.HttpOptions(base_url=self.base_url, timeout=int(self.timeout_seconds * 1000)),
            )
        return self._client

    # -- calls ---------------------------------------------------------------

    def generate_json(
        self,
        *,
        prompt: str,
        system_instruction: str,
        response_schema: dict[str, Any],
        validate: Callable[[Any], list[str]],
        temperature: float = 0.2,
    ) -> tuple[dict[str, Any], Usage]:
        """One structured-output request; returns the parsed JSON object and what it cost.

        ``validate`` returns the object's problems; an answer that does not parse
        or has problems is asked for once more, then ``InvalidModelOutput``.
        """
        problems: list[str] = []
        usage = Usage()  # a rejected answer was still paid for
        for attempt in range(2):
            if attempt:
                log.warning("Gemini answer was not a valid analysis (%s); asking once more", "; ".join(problems[:3]))
            response, record = self._generate_with_retries(prompt, system_instruction, response_schema, temperature)
            usage = usage + record.usage
            text = response.text or ""
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                problems = [f"not JSON ({exc.msg} at char {exc.pos})"]
                continue
            if not isinstance(data, dict):
                problems = [f"JSON {type(data).__name__}, not an object"]
                continue
            problems = validate(data)
            if not problems:
                return data, usage
        raise InvalidModelOutput(f"Gemini {self.model} returned an invalid analysis twice: {'; '.join(problems[:5])}")

    def _generate_with_retries(
        self, prompt: str, system_instruction: str, response_schema: dict[str, Any], temperature: float
    ) -> tuple[Any, CallRecord]:
        from google.genai import types

        client = self.get_conn()
        config = types.GenerateContentConfig(
            system_instruction=system_instruction,
            temperature=temperature,
            response_mime_type="application/json",
            response_json_schema=response_schema,
        )
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = client.models.generate_content(model=self.model, contents=prompt, config=config)
            except Exception as exc:
                failure = self._classify(exc)
            else:
                latency = time.monotonic() - started
                self._raise_if_blocked(response)
                record = self._record(response, latency, attempt)
                return response, record

            if attempt > self.max_retries:
                self._give_up(failure, attempt)
            delay = self._backoff(attempt, failure.retry_after)
            if waited + delay > self.max_total_wait_seconds:
                log.warning(
                    "Gemini asked to wait %.1fs, past the %.0fs retry budget (%.1fs used)",
                    delay,
                    self.max_total_wait_seconds,
                    waited,
                )
                self._give_up(failure, attempt)
            log.warning(
                "Gemini call failed (%s), attempt %d of %d; retrying in %.2fs",
                failure.description,
                attempt,
                self.max_retries + 1,
                delay,
            )
            self.sleep(delay)
            waited += delay

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Full jitter on the upper half keeps many workers hitting the same quota
        # from retrying in lockstep; a server's Retry-After is a floor, not a hint.
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
        return max(delay, retry_after or 0.0)

    def _give_up(self, failure: _Retryable, attempts: int) -> None:
        message = f"Gemini {self.model} still failing after {attempts} attempt(s): {failure.description}"
        if failure.rate_limited:
            # Persistent rate limiting is not the video's fault: send it back to
            # pending for a later run instead of failing it.
            raise QuotaExhausted(message) from None
        raise PipelineError(message) from None

    def _classify(self, exc: Exception) -> _Retryable:
        """Map an SDK or transport error to a retry, or raise the pipeline error it means."""
        import httpx
        from google.genai import errors as genai_errors

        if isinstance(exc, httpx.TransportError):  # timeouts, refused or reset connections
            return _Retryable(_redact(f"{type(exc).__name__}: {exc}", self._api_key))
        if not isinstance(exc, genai_errors.APIError):
            raise exc
        code = exc.code
        message = _redact(str(exc.message or exc.status or ""), self._api_key)
        details = _error_details(exc.details)
        description = f"HTTP {code} {exc.status or ''}: {message}".strip()
        if code == 429:
            if _is_daily_quota(details, message):
                raise QuotaExhausted(f"Gemini daily quota exhausted for {self.model}: {message}") from None
            header = exc.response.headers.get("retry-after") if exc.response is not None else None
            retry_after = _parse_retry_after(header)
            if retry_after is None:
                retry_after = _retry_info_delay(details)
            return _Retryable(description, retry_after=retry_after, rate_limited=True)
        if code in (408, 500, 502, 503, 504):
            header = exc.response.headers.get("retry-after") if exc.response is not None else None
            return _Retryable(description, retry_after=_parse_retry_after(header))
        if (code == 400 and _has_reason(details, "API_KEY_INVALID")) or code in (401, 403):
            raise PermanentError(
                f"Gemini rejected the API key from connection {self.gemini_conn_id!r} or "
                f"{'/'.join(API_KEY_ENV_VARS)} (HTTP {code} {exc.status}): {message}. "
                "Check the key and that the Generative Language API is enabled for its project."
            ) from None
        if code == 404:
            raise PermanentError(f"Gemini model {self.model!r} not found: {message}") from None
        # Any other 4xx is a request we built wrong; sending it again cannot help.
        raise PermanentError(f"Gemini refused the request: {description}") from None

    def _raise_if_blocked(self, response: Any) -> None:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = getattr(feedback.block_reason, "value", str(feedback.block_reason))
            raise InputRejected(
                RejectReason.CONTENT_BLOCKED,
                f"Gemini blocked the transcript ({reason})",
                details={"block_reason": reason, "model": self.model},
            )
        candidates = response.candidates or []
        finish = candidates[0].finish_reason if candidates else None
        finish_name = getattr(finish, "value", str(finish)) if finish is not None else None
        if finish_name in BLOCKING_FINISH_REASONS:
            raise InputRejected(
                RejectReason.CONTENT_BLOCKED,
                f"Gemini stopped its answer for content reasons ({finish_name})",
                details={"finish_reason": finish_name, "model": self.model},
            )

    def _record(self, response: Any, latency: float, attempts: int) -> CallRecord:
        usage = response.usage_metadata
        input_tokens = (usage.prompt_token_count or 0) if usage else 0
        # Thinking tokens are billed as output.
        output_tokens = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
        record = CallRecord(
            model=response.model_version or self.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_seconds=round(latency, 3),
            attempts=attempts,
        )
        self.calls.append(record)
        log.info(
            "Gemini %s: %d input tokens, %d output tokens, %.2fs, attempt %d",
            record.model,
            record.input_tokens,
            record.output_tokens,
            record.latency_seconds,
            attempts,
        )
        return record


def _validate_model_answer(data: Any) -> list[str]:
    # The model does not write schema_version; stamp it so the one stored
    # schema is what is checked.
    return schema_errors({"schema_version": SCHEMA_VERSION, **data} if isinstance(data, dict) else data)


class GeminiAnalyzer:
    """Analysis by Gemini: prompt per chunk, grounding, deterministic merge.

    :param hook: the configured ``GeminiHook``.
    :param max_chunk_tokens: estimated transcript tokens per call; longer
        transcripts are analysed in parts.
    """

    name: AnalyzerName = "gemini"

    def __init__(self, hook: GeminiHook, *, max_chunk_tokens: int = DEFAULT_MAX_CHUNK_TOKENS):
        self.hook = hook
        self.max_chunk_tokens = max_chunk_tokens

    def analyze(self, transcript: Transcript, *, title: str, output_language: str | None = None) -> AnalysisResult:
        language = resolve_output_language(transcript, output_language)
        if not needs_model(transcript):
            return silent_analysis(
                transcript, language=language, analyzer=self.name, model=self.hook.model, prompt_version=PROMPT_VERSION
            )
        chunks = chunk_transcript(transcript, max_tokens=self.max_chunk_tokens)
        if len(chunks) > 1:
            log.info(
                "Transcript of %d segments split into %d parts for analysis", len(transcript.segments), len(chunks)
            )
        parts: list[dict[str, Any]] = []
        flags: list[str] = []
        usage = Usage()
        for chunk in chunks:
            prompt = build_prompt(transcript, title=title, language=language, chunk=chunk)
            data, call_usage = self.hook.generate_json(
                prompt=prompt.user,
                system_instruction=prompt.system,
                response_schema=MODEL_RESPONSE_SCHEMA,
                validate=_validate_model_answer,
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
            prompt_version=PROMPT_VERSION,
            language=language,
            data=merged,
            flags=tuple(flags),
            usage=usage,
        )


def build_analyzer(
    settings: AnalysisSettings, *, max_chunk_tokens: int = DEFAULT_MAX_CHUNK_TOKENS, **hook_kwargs: Any
) -> Analyzer:
    """The analyzer ``settings.analyzer`` asks for.

    ``auto`` uses Gemini when a key is configured and the offline analyzer
    otherwise; ``gemini`` without a key is a configuration error, raised now
    rather than after transcoding and transcribing. ``hook_kwargs`` go to
    ``GeminiHook`` (e.g. ``backoff_base_seconds`` or ``sleep`` in tests).
    """
    if settings.analyzer == "offline":
        return OfflineAnalyzer()
    hook = GeminiHook(
        settings.gemini_conn_id,
        model=settings.gemini_model,
        base_url=settings.gemini_base_url,
        timeout_seconds=settings.timeout_seconds,
        max_retries=settings.max_retries,
        **hook_kwargs,
    )
    if hook.has_api_key():
        return GeminiAnalyzer(hook, max_chunk_tokens=max_chunk_tokens)
    if settings.analyzer == "gemini":
        raise PermanentError(
            f"VIDEO_PIPELINE_ANALYZER=gemini but no Gemini API key: set the password of Airflow connection "
            f"{settings.gemini_conn_id!r} or the environment variable {API_KEY_ENV_VARS[0]}"
        )
    log.info("No Gemini API key configured; using the offline analyzer")
    return OfflineAnalyzer()
