"""ModelHook: the base every language-model hook extends (retries, backoff, model fallback, budgets, costs).

A provider implements ``_generate_once`` and ``_classify``; everything the package
docstring promises about retries, invalid answers, retired models and the shared
budget is done here, once for every provider.
"""

from __future__ import annotations

import abc
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from airflow.sdk import BaseHook

from include.video_pipeline.core.analysis import (
    EXPECTED_OUTPUT_TOKENS_PER_CALL,
    Usage,
    estimate_cost_usd,
    estimate_tokens,
)
from include.video_pipeline.core.errors import PipelineError, QuotaExhausted
from include.video_pipeline.hooks.llm_base.answers import parse_json_object
from include.video_pipeline.hooks.llm_base.errors import (
    MODEL_UNAVAILABLE,
    PROVIDER_MISCONFIGURED,
    BudgetExceeded,
    InvalidModelOutput,
    ModelNotFound,
    ProviderUnavailable,
    Retryable,
)
from include.video_pipeline.hooks.llm_base.state import CallRecord, SharedProviderState

log = logging.getLogger(__name__)

T = TypeVar("T")


# Models this process already warned about, so a retired model costs one warning
# per run, not one per video.
_WARNED_MODELS: set[str] = set()


class ModelHook(BaseHook, abc.ABC):
    """Base of the language-model hooks; subclasses send one request and read its errors.

    :param model: the model name as the provider knows it.
    :param timeout_seconds: limit for one HTTP call.
    :param max_retries: further attempts after a retryable failure (429, 5xx, timeouts).
    :param backoff_base_seconds: first backoff wait; doubles per attempt, with jitter.
    :param backoff_max_seconds: cap on one wait.
    :param max_total_wait_seconds: cap on all waits of one call together; a server
        asking for longer ends the retries early.
    :param prices: USD per million (input, output[, cached]) tokens by model-name
        prefix; None for the built-in Gemini prices.
    :param sleep: how to wait; tests pass a recorder so they need not sleep.
    :param fallback_models: models to use, in order, when ``model`` is retired.
    :param state: the rate limit, model skips and spend shared by every worker;
        None for none (a single call from a script or a test).
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
        prices: Mapping[str, tuple[float, ...]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        fallback_models: Sequence[str] = (),
        state: SharedProviderState | None = None,
    ):
        super().__init__()
        self.models = list(dict.fromkeys([model, *fallback_models]))
        self.model = model
        self.state = state
        if state is not None:
            skipped = state.skipped_models()
            usable = [m for m in self.models if m not in skipped]
            for gone in (m for m in self.models if m in skipped):
                log.info("%s %s was found retired earlier in this run; skipping it", self.provider_label, gone)
            if not usable:
                raise self._no_model_left(skipped)
            self.models = usable
            self.model = usable[0]
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

    def preflight(self) -> str:
        """Check once, with the provider's cheap calls, that analyses can work; returns the model to use.

        Raises ``ProviderUnavailable`` with a message for the user when they cannot.
        """
        return self.model

    # -- models, budgets -------------------------------------------------------

    def skip_current_model(self, message: str) -> None:
        """The current model is gone: warn once, remember it for the run, move to the next one."""
        gone = self.model
        first_report = self.state.skip_model(gone, message) if self.state is not None else True
        remaining = [m for m in self.models if m != gone]
        nxt = remaining[0] if remaining else None
        if gone not in _WARNED_MODELS and first_report:
            _WARNED_MODELS.add(gone)
            log.warning(
                "%s model %s is retired or unknown (%s); %s for the rest of this run",
                self.provider_label,
                gone,
                message,
                f"using {nxt}" if nxt else "no configured model is left",
            )
        else:
            log.info("%s model %s is retired or unknown; using %s", self.provider_label, gone, nxt)
        if nxt is None:
            raise self._no_model_left({gone: message})
        self.models = remaining
        self.model = nxt

    def _no_model_left(self, skipped: Mapping[str, str]) -> ProviderUnavailable:
        from include.video_pipeline.core.analysis import DEFAULT_GEMINI_MODELS

        names = ", ".join(skipped) or self.model
        return ProviderUnavailable(
            MODEL_UNAVAILABLE,
            f"{self.provider_label}: no configured model is served any more ({names} retired or unknown). "
            f"Set VIDEO_PIPELINE_GEMINI_MODEL to a current model, e.g. {','.join(DEFAULT_GEMINI_MODELS)}.",
        )

    def begin_analysis(self, prompts: Sequence[str], *, batch: bool = False) -> float | None:
        """Before an analysis' first call: hold its estimated cost against the spending caps.

        The estimate is the provider's token count of every prompt times the input
        price plus ``EXPECTED_OUTPUT_TOKENS_PER_CALL`` per prompt times the output price
        (the Batch API's price with ``batch``). Returns the estimate held; None without a cap.
        """
        if self.state is None or not self.state.budget_enabled:
            return None
        input_tokens = 0
        for prompt in prompts:
            counted: int | None = None
            try:
                counted = self.count_tokens(prompt)
            except Exception as exc:  # a failed count must not block: the estimate stands in
                log.info("Token count for the budget failed (%s); using the estimate", type(exc).__name__)
            input_tokens += counted if counted else estimate_tokens(prompt)
        output_tokens = EXPECTED_OUTPUT_TOKENS_PER_CALL * len(prompts)
        estimate = estimate_cost_usd(self.model, input_tokens, output_tokens, prices=self.prices, batch=batch)
        if estimate is None:
            raise ProviderUnavailable(
                PROVIDER_MISCONFIGURED,
                f"A budget is set but {self.model} has no price: add it to VIDEO_PIPELINE_PRICES_JSON "
                '(e.g. {"' + self.model + '": [input, output]} in USD per million tokens).',
            )
        log.info(
            "Analysis estimate: %d input tokens (counted), %d output tokens (expected), $%.6f with %s%s",
            input_tokens,
            output_tokens,
            estimate,
            self.model,
            " (Batch API price)" if batch else "",
        )
        self.state.reserve(self.model, estimate)
        return estimate

    def end_analysis(self) -> None:
        if self.state is not None and self.state.budget_enabled:
            self.state.release()

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
                ),
                tokens=estimate_tokens(system_instruction + prompt) + EXPECTED_OUTPUT_TOKENS_PER_CALL,
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

    def call_with_retries(self, call: Callable[[], T], *, tokens: int = 0) -> T:
        """``call()``, retried on what ``_classify`` calls retryable, within the wait budget.

        ``tokens`` is what the call is expected to use, for the shared tokens-per-minute budget.
        """
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            self._attempt = attempt
            if self.state is not None:
                self.state.acquire(tokens)
            try:
                try:
                    return call()
                finally:
                    if self.state is not None:
                        self.state.call_done()
            except Exception as exc:
                try:
                    failure = self._classify(exc)
                except ModelNotFound as gone:
                    self.skip_current_model(gone.message)  # raises when no model is left
                    attempt -= 1  # the next model gets its own attempts
                    continue
                except QuotaExhausted as exhausted:
                    if self.state is not None and not isinstance(exhausted, BudgetExceeded):
                        self.state.quota_exhausted(str(exhausted))
                    raise
            if failure.rate_limited and failure.retry_after and self.state is not None:
                # The limit is the project's: every worker waits, not only this one.
                self.state.hold_off(failure.retry_after)
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

    def _record(
        self,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        latency: float,
        thinking_tokens: int = 0,
        cached_tokens: int = 0,
        batch: bool = False,
        record_spend: bool = True,
    ) -> CallRecord:
        """What a call cost (at the Batch API's price with ``batch``), kept and recorded as spend.

        ``record_spend`` is False for a batch answer read again by a retry: its spend is recorded once.
        """
        record = CallRecord(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_seconds=round(latency, 3),
            attempts=getattr(self, "_attempt", 1),
            cost_usd=estimate_cost_usd(
                model,
                input_tokens,
                output_tokens,
                prices=self.prices,
                thinking_tokens=thinking_tokens,
                cached_tokens=cached_tokens,
                batch=batch,
            ),
            thinking_tokens=thinking_tokens,
            cached_tokens=cached_tokens,
        )
        self.calls.append(record)
        if self.state is not None and record_spend:
            self.state.spend(record)
        log.info(
            "%s%s %s: %d input tokens (%d cached), %d output tokens, %d thinking tokens, %.2fs, attempt %d, $%s",
            self.provider_label,
            " batch" if batch else "",
            record.model,
            record.input_tokens,
            record.cached_tokens,
            record.output_tokens,
            record.thinking_tokens,
            record.latency_seconds,
            record.attempts,
            "-" if record.cost_usd is None else f"{record.cost_usd:.6f}",
        )
        return record
