"""How a language-model call fails: the pipeline errors the hooks raise and the ``Retryable`` they retry.

``ProviderUnavailable`` carries one of the reason codes below, which also appear in
error reports and ``analysis.json``; ``ModelNotFound`` and ``Retryable`` never leave
the hooks.
"""

from __future__ import annotations

from include.video_pipeline.core.errors import PermanentError, PipelineError, QuotaExhausted


class InvalidModelOutput(PipelineError):
    """The model answered twice with text that is not a valid analysis; Airflow may retry."""

    reason = "invalid_model_output"


class ProviderUnavailable(PermanentError):
    """The provider cannot serve anyone as configured (key, model, region, endpoint).

    Not the video's fault: the preflight stops a run on it before any upload is
    claimed, and a video that meets it mid-run completes with its analysis
    marked unavailable. ``reason`` is one of the codes below.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# ProviderUnavailable.reason codes (also in error reports and analysis.json).
PROVIDER_AUTH = "provider_auth"  # key invalid, revoked, or without access
MODEL_UNAVAILABLE = "model_unavailable"  # every configured model retired or unknown
LOCATION_UNSUPPORTED = "location_unsupported"  # "User location is not supported for the API use."
PROVIDER_MISCONFIGURED = "provider_misconfigured"  # no key, no URL, no project, no price for a budget
PROVIDER_UNREACHABLE = "provider_unreachable"  # a self-hosted server that does not answer
# A Gemini Batch API job that ended without answers (BatchUnavailable.reason).
BATCH_FAILED = "batch_failed"  # BATCH_STATE_FAILED: Google could not run it
BATCH_EXPIRED = "batch_expired"  # BATCH_STATE_EXPIRED: Google could not finish it in time
BATCH_CANCELLED = "batch_cancelled"  # BATCH_STATE_CANCELLED: someone cancelled it
BATCH_REQUEST_FAILED = "batch_request_failed"  # the batch ran, but this video's request got an error


class BatchUnavailable(ProviderUnavailable):
    """The video's Gemini batch ended without an analysis (failed, expired, cancelled, or its request failed).

    Handled as a provider outage, not as the video's fault: the video completes with its
    media and transcript and its analysis marked unavailable with the reason above;
    ``reprocess=failed`` analyses it again (a new batch, or online with ``gemini_batch=online``).
    No online call is made in its place: a batch was asked for to halve the price, and a
    cancelled one was stopped on purpose.
    """


class BudgetExceeded(QuotaExhausted):
    """The analysis would cross a spending cap: the video waits in pending/ for a later run."""

    reason = "budget_exceeded"


class ModelNotFound(Exception):
    """The provider does not serve the current model (retired, renamed, never existed)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Retryable(Exception):
    """A failed attempt worth another try, with the wait the server asked for, if any."""

    def __init__(self, description: str, *, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
        self.rate_limited = rate_limited
