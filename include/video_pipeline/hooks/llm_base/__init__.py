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
  more, then ``InvalidModelOutput``;
* a model the provider no longer serves (``ModelNotFound``) is skipped for the
  rest of the run, with one warning, and the call goes to the next model in the
  configured list; with none left, ``ProviderUnavailable``;
* with a ``SharedProviderState`` (the results database, see
  ``hooks/provider_state.py``) every call first takes its share of one
  requests- and tokens-per-minute budget that all tasks and workers draw from,
  a whole analysis is checked against the spending caps before its first call,
  and every paid call is recorded as spend.

Which submodule holds what (everything below is importable from this package):

* ``model_hook``: :class:`ModelHook`, the base class that does all of the above;
* ``errors``: :class:`InvalidModelOutput`, :class:`ProviderUnavailable` and its reason
  codes, :class:`BatchUnavailable`, :class:`BudgetExceeded`, :class:`ModelNotFound`, :class:`Retryable`;
* ``state``: the :class:`SharedProviderState` protocol and :class:`CallRecord`;
* ``timing``: :func:`parse_retry_after` and :func:`next_quota_reset`;
* ``answers``: :func:`parse_json_object` and :func:`redact`.
"""

from __future__ import annotations

from include.video_pipeline.hooks.llm_base.answers import parse_json_object, redact
from include.video_pipeline.hooks.llm_base.errors import (
    BATCH_CANCELLED,
    BATCH_EXPIRED,
    BATCH_FAILED,
    BATCH_REQUEST_FAILED,
    LOCATION_UNSUPPORTED,
    MODEL_UNAVAILABLE,
    PROVIDER_AUTH,
    PROVIDER_MISCONFIGURED,
    PROVIDER_UNREACHABLE,
    BatchUnavailable,
    BudgetExceeded,
    InvalidModelOutput,
    ModelNotFound,
    ProviderUnavailable,
    Retryable,
)
from include.video_pipeline.hooks.llm_base.model_hook import ModelHook
from include.video_pipeline.hooks.llm_base.state import CallRecord, SharedProviderState
from include.video_pipeline.hooks.llm_base.timing import next_quota_reset, parse_retry_after

__all__ = [
    "BATCH_CANCELLED",
    "BATCH_EXPIRED",
    "BATCH_FAILED",
    "BATCH_REQUEST_FAILED",
    "LOCATION_UNSUPPORTED",
    "MODEL_UNAVAILABLE",
    "PROVIDER_AUTH",
    "PROVIDER_MISCONFIGURED",
    "PROVIDER_UNREACHABLE",
    "BatchUnavailable",
    "BudgetExceeded",
    "CallRecord",
    "InvalidModelOutput",
    "ModelHook",
    "ModelNotFound",
    "ProviderUnavailable",
    "Retryable",
    "SharedProviderState",
    "next_quota_reset",
    "parse_json_object",
    "parse_retry_after",
    "redact",
]
