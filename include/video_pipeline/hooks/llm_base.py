"""What every language-model hook shares: structured answers, retries, cost records.

The provider hooks (``GeminiHook``, ``VertexGeminiHook``,
``OpenAICompatibleHook``) differ in how a request is sent and how an error is
read; what a retry is, how long to wait, when to give up and what an invalid
answer costs is decided once, here, so every provider behaves the same:

* ``_classify`` (per provider) turns a failed attempt into ``Retryable`` or
  raises the pipeline error it means (``QuotaExhausted``, ``PermanentError``,
  ``InputRejected``);
* retryable failures back off exponentially with jitter, a server's
  ``Retry-After`` is a floor, and all waits of one call are capped;
* an answer that is not valid JSON or not a valid analysis is asked for once
  more, then ``InvalidModelOutput``.
"""

from __future__ import annotations

import abc
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from airflow.sdk import BaseHook

from include.video_pipeline.core.analysis import Usage, estimate_cost_usd
from include.video_pipeline.core.errors import PipelineError, QuotaExhausted

log = logging.getLogger(__name__)

T = TypeVar("T")


class InvalidModelOutput(PipelineError):
    """The model answered twice with text that is not a valid analysis; Airflow may retry."""


@dataclass(frozen=True)
class CallRecord:
    """One successful model call, for cost tracking and logs."""

    model: str
    input_tokens: int
    output_tokens: int
    latency_seconds: float
    attempts: int
    cost_usd: float | None = None

    @property
    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_seconds=self.latency_seconds,
            calls=1,
            cost_usd=self.cost_usd,
        )


class Retryable(Exception):
    """A failed attempt worth another try, with the wait the server asked for, if any."""

    def __init__(self, description: str, *, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
        self.rate_limited = rate_limited


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
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


_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(?P<body>.*?)\n?```\s*$", flags=re.DOTALL)
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", flags=re.DOTALL)


def parse_json_object(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The JSON object in a model's answer, or None and why not.

    Self-hosted models in JSON mode still sometimes wrap the object in a
    Markdown fence or lead with a ``<think>`` block; both are peeled off rather
    than paid for again.
    """
    text = _THINK.sub("", text or "", count=1)
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"not JSON ({exc.msg} at char {exc.pos})"]
    if not isinstance(data, dict):
        return None, [f"JSON {type(data).__name__}, not an object"]
    return data, []


class ModelHook(BaseHook, abc.ABC):
    """Base of the language-model hooks; subclasses send one request and read its errors.

    :param model: the model name as the provider knows it.
    :param timeout_seconds: limit for one HTTP call.
    :param max_retries: further attempts after a retryable failure (429, 5xx, timeouts).
    :param backoff_base_seconds: first backoff wait; doubles per attempt, with jitter.
    :param backoff_max_seconds: cap on one wait.
    :param max_total_wait_seconds: cap on all waits of one call together; a server
        asking for longer ends the retries early.
    :param prices: USD per million (input, output) tokens by model-name prefix;
        None for the built-in Gemini prices.
    :param sleep: how to wait; tests pass a recorder so they need not sleep.
    """

    provider_label = "model"

    def __init__(
        self,
        *,
        model: str,
        timeout_seconds: float = 120,
        max_retries: int = 5,
        backoff_base_seconds: float = 2.0,
        backoff_max_seconds: float = 60.0,
        max_total_wait_seconds: float = 300.0,
        prices: Mapping[str, tuple[float, float]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__()
        self.model = model
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.max_total_wait_seconds = max_total_wait_seconds
        self.prices = prices
        self.sleep = sleep
        self.calls: list[CallRecord] = []

    # -- what a provider implements ------------------------------------------

    @abc.abstractmethod
    def _generate_once(
        self,
        *,
        prompt: str,
        system_instruction: str,
        response_schema: dict[str, Any],
        temperature: float,
        images: Sequence[bytes],
    ) -> tuple[str, CallRecord]:
        """One request (retried by the caller): the answer's text and what it cost."""

    @abc.abstractmethod
    def _classify(self, exc: Exception) -> Retryable:
        """A failed attempt as a retry, or raise the pipeline error it means."""

    def count_tokens(self, text: str) -> int | None:
        """The provider's token count of ``text``; None where the provider has no counting endpoint."""
        return None

    # -- shared ----------------------------------------------------------------

    def generate_json(
        self,
        *,
        prompt: str,
        system_instruction: str,
        response_schema: dict[str, Any],
        validate: Callable[[Any], list[str]],
        temperature: float = 0.2,
        images: Sequence[bytes] = (),
    ) -> tuple[dict[str, Any], Usage]:
        """One structured-output request; returns the parsed JSON object and what it cost.

        ``validate`` returns the object's problems; an answer that does not parse
        or has problems is asked for once more, then ``InvalidModelOutput``.
        """
        problems: list[str] = []
        usage = Usage()  # a rejected answer was still paid for
        for attempt in range(2):
            if attempt:
                log.warning(
                    "%s answer was not a valid analysis (%s); asking once more",
                    self.provider_label,
                    "; ".join(problems[:3]),
                )
            text, record = self.call_with_retries(
                lambda: self._generate_once(
                    prompt=prompt,
                    system_instruction=system_instruction,
                    response_schema=response_schema,
                    temperature=temperature,
                    images=images,
                )
            )
            usage = usage + record.usage
            data, problems = parse_json_object(text)
            if data is None:
                continue
            problems = validate(data)
            if not problems:
                return data, usage
        raise InvalidModelOutput(
            f"{self.provider_label} {self.model} returned an invalid analysis twice: {'; '.join(problems[:5])}"
        )

    def call_with_retries(self, call: Callable[[], T]) -> T:
        """``call()``, retried on what ``_classify`` calls retryable, within the wait budget."""
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            self._attempt = attempt
            try:
                return call()
            except Exception as exc:
                failure = self._classify(exc)
            if attempt > self.max_retries:
                self._give_up(failure, attempt)
            delay = self._backoff(attempt, failure.retry_after)
            if waited + delay > self.max_total_wait_seconds:
                log.warning(
                    "%s asked to wait %.1fs, past the %.0fs retry budget (%.1fs used)",
                    self.provider_label,
                    delay,
                    self.max_total_wait_seconds,
                    waited,
                )
                self._give_up(failure, attempt)
            log.warning(
                "%s call failed (%s), attempt %d of %d; retrying in %.2fs",
                self.provider_label,
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

    def _give_up(self, failure: Retryable, attempts: int) -> None:
        message = f"{self.provider_label} {self.model} still failing after {attempts} attempt(s): {failure.description}"
        if failure.rate_limited:
            # Persistent rate limiting is not the video's fault: send it back to
            # pending for a later run instead of failing it.
            raise QuotaExhausted(message) from None
        raise PipelineError(message) from None

    def _record(self, *, model: str, input_tokens: int, output_tokens: int, latency: float) -> CallRecord:
        record = CallRecord(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_seconds=round(latency, 3),
            attempts=getattr(self, "_attempt", 1),
            cost_usd=estimate_cost_usd(model, input_tokens, output_tokens, prices=self.prices),
        )
        self.calls.append(record)
        log.info(
            "%s %s: %d input tokens, %d output tokens, %.2fs, attempt %d",
            self.provider_label,
            record.model,
            record.input_tokens,
            record.output_tokens,
            record.latency_seconds,
            record.attempts,
        )
        return record
