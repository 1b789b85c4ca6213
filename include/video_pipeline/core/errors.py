"""Errors the pipeline distinguishes, because each one is handled differently.

* ``InputRejected``: the upload itself can never succeed (zero bytes, not media,
  corrupt, over a limit). Not retried; the video goes to ``failed/`` with the
  reason and the rest of the batch goes on.
* ``QuotaExhausted``: a provider's daily quota is gone. Not the video's fault:
  it goes back to ``pending/`` for the next run.
* Anything else is an infrastructure error: retried by Airflow, and if retries
  run out the video goes to ``failed/`` and the run is marked failed.

``WorkPending`` is not an error: the stage's work runs at a provider that answers
later (a Gemini batch); the stage waits without a worker and runs again.
"""

from __future__ import annotations

import enum
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


class RejectReason(enum.StrEnum):
    """Stable, machine-readable codes for uploads that cannot be processed."""

    EMPTY_FILE = "empty_file"
    NOT_MEDIA = "not_media"
    CORRUPT = "corrupt"
    NO_STREAMS = "no_streams"
    TOO_LARGE = "too_large"
    TOO_LONG = "too_long"
    UNSUPPORTED_CODEC = "unsupported_codec"
    INVALID_KEY = "invalid_key"
    CONTENT_BLOCKED = "content_blocked"


class PipelineError(Exception):
    """Base class for errors raised on purpose by the pipeline."""


class InputRejected(PipelineError):
    """The upload can never succeed; ``reason`` says why in a stable code."""

    def __init__(self, reason: RejectReason, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details or {}


class PermanentError(PipelineError):
    """Retrying cannot help (e.g. an invalid API key): fail now, with a clear reason."""


class QuotaExhausted(PipelineError):
    """A provider quota is exhausted; the video should wait for a later run."""


class StageTimeout(PipelineError):
    """An external tool ran past its time budget."""


class WorkPending(Exception):
    """The stage handed its work to a service that answers later (a Gemini batch job).

    Not a failure, so not a ``PipelineError``: the stage records nothing and spends no
    retry; it waits (deferred, holding no worker) and runs again, when it finds the same
    job by ``job`` instead of starting another.
    """

    def __init__(self, job: str, message: str):
        super().__init__(message)
        self.job = job


# Error messages end up in the bucket and the database, so they are capped; the
# full traceback is in the task log.
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class FailureReport:
    """What ``failed/<name>.error.json`` holds; also stored in the ledger."""

    stage: str
    error_class: str
    message: str
    attempt: int
    reason: str | None = None  # a RejectReason value for rejected input, else failure_reason()
    retryable: bool = True
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    details: dict[str, Any] = field(default_factory=dict)
    video_id: str | None = None
    source_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailureReport:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_exception(cls, exc: BaseException, *, stage: str, attempt: int) -> FailureReport:
        message = str(exc) or exc.__class__.__name__
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        if isinstance(exc, InputRejected):
            return cls(
                stage=stage,
                error_class=type(exc).__name__,
                message=message,
                attempt=attempt,
                reason=exc.reason.value,
                retryable=False,
                details=exc.details,
            )
        return cls(
            stage=stage,
            error_class=type(exc).__name__,
            message=message,
            attempt=attempt,
            reason=failure_reason(exc),
            retryable=not isinstance(exc, (QuotaExhausted, PermanentError)),
            details={"traceback_tail": "".join(traceback.format_exception(exc)[-3:])[-1500:]},
        )


def failure_reason(exc: BaseException) -> str:
    """A stable code for any error, so no error report says ``"reason": null``.

    Errors that know their cause carry it as ``reason`` (a provider's
    ``provider_auth`` or ``model_unavailable``, ``budget_exceeded``, ...); the
    rest are named by their kind.
    """
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, QuotaExhausted):
        return "quota_exhausted"
    if isinstance(exc, StageTimeout) or isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, PermanentError):
        return "permanent_error"
    # Named by the library that raised it (no import of it here): which service failed.
    module = type(exc).__module__.split(".", 1)[0]
    if module in ("botocore", "boto3", "s3transfer", "urllib3"):
        return "storage_error"
    if module in ("psycopg", "psycopg2"):
        return "database_error"
    return "infrastructure_error"
