"""The Gemini Batch API part of the loopback Gemini server: inline batches that finish after a delay.

Shapes follow https://ai.google.dev/api/batch-api as google-genai reads them
(``google/genai/batches.py``): ``POST /v1beta/models/{model}:batchGenerateContent``
with ``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request",
"metadata"}]}}}}`` answers a long-running ``Operation`` whose ``name`` is
``batches/{id}`` and whose ``metadata`` is the ``GenerateContentBatch`` (``state``
``BATCH_STATE_PENDING``...); ``GET /v1beta/batches/{id}`` answers the same operation,
``done`` with ``metadata.output.inlinedResponses.inlinedResponses`` (one ``response``
or ``error`` per request, in request order) once it ended; ``GET /v1beta/batches``
lists them newest first (``operations``, ``nextPageToken``) and ``POST
/v1beta/batches/{id}:cancel`` cancels one.

A batch is pending for the first third of ``delay_seconds``, running until it has
passed, then ends as ``outcome`` decides (succeeded unless told otherwise). The
answers of a succeeded batch are built when it ends, each from the next reply
queued with ``FakeGeminiServer.enqueue`` (or a grounded analysis), as online calls are.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"
FINISHED = frozenset({"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"})
# What the operation's error says when a batch ends without answers (google.rpc codes).
_ENDINGS = {
    "BATCH_STATE_FAILED": (13, "The batch could not be processed."),
    "BATCH_STATE_CANCELLED": (1, "The batch was cancelled."),
    "BATCH_STATE_EXPIRED": (4, "The batch did not complete within 48 hours and expired."),
}


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeBatch:
    """One submitted batch: what was asked, when, and how it ends."""

    name: str
    model: str
    display_name: str
    requests: list[dict[str, Any]]  # the inline requests as sent: {"request": {...}, "metadata": {...}}
    outcome: str
    delay_seconds: float
    created: float = field(default_factory=time.time)
    cancelled: bool = False
    answers: list[dict[str, Any]] | None = None  # built once, when it ends

    def state(self, now: float) -> str:
        if self.cancelled:
            return "BATCH_STATE_CANCELLED"
        age = now - self.created
        if age < self.delay_seconds / 3:
            return "BATCH_STATE_PENDING"
        if age < self.delay_seconds:
            return "BATCH_STATE_RUNNING"
        return self.outcome


class FakeBatches:
    """The batches one fake server holds, and the counts tests assert on.

    :param answer: turns one inline request (its ``request`` and the batch's model) into
        its ``{"response": ...}`` or ``{"error": ...}`` entry; the server passes its reply queue.
    """

    def __init__(self, answer: Callable[[dict[str, Any], str], dict[str, Any]]):
        self._answer = answer
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.batches: dict[str, FakeBatch] = {}
        self.submissions = 0  # batchGenerateContent calls accepted (each one would be billed)
        self.polls = 0  # GET batches/{id} answered
        self.delay_seconds = 0.0
        # Decides how a batch ends from its inline requests; None: it succeeds.
        self.outcome: Callable[[list[dict[str, Any]]], str] | None = None

    def create(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        batch = body.get("batch") or {}
        requests = list(((batch.get("inputConfig") or {}).get("requests") or {}).get("requests") or [])
        outcome = self.outcome(requests) if self.outcome is not None else "BATCH_STATE_SUCCEEDED"
        with self._lock:
            name = f"batches/fake{next(self._ids):04d}"
            self.batches[name] = FakeBatch(
                name=name,
                model=model,
                display_name=str(batch.get("displayName") or ""),
                requests=requests,
                outcome=outcome,
                delay_seconds=self.delay_seconds,
            )
            self.submissions += 1
            return self._operation(self.batches[name])

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            batch = self.batches.get(name)
            if batch is None:
                return None
            self.polls += 1
            return self._operation(batch)

    def list(self, page_size: int, page_token: str | None) -> dict[str, Any]:
        with self._lock:
            newest_first = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
            start = int(page_token or 0)
            page = newest_first[start : start + page_size]
            listed: dict[str, Any] = {"operations": [self._operation(b) for b in page]}
            if start + page_size < len(newest_first):
                listed["nextPageToken"] = str(start + page_size)
            return listed

    def cancel(self, name: str) -> bool:
        with self._lock:
            batch = self.batches.get(name)
            if batch is None or batch.state(time.time()) in FINISHED:
                return False
            batch.cancelled = True
            return True

    def finish_all(self) -> None:
        """End every batch now (as if the delay had passed)."""
        with self._lock:
            for batch in self.batches.values():
                batch.delay_seconds = 0.0

    # -- the operation a create, get or list answers ------------------------------

    def _operation(self, batch: FakeBatch) -> dict[str, Any]:
        now = time.time()
        state = batch.state(now)
        count = len(batch.requests)
        metadata: dict[str, Any] = {
            "@type": BATCH_TYPE,
            "name": batch.name,
            "model": f"models/{batch.model}",
            "displayName": batch.display_name,
            "createTime": _timestamp(batch.created),
            "updateTime": _timestamp(now),
            "state": state,
            "batchStats": {"requestCount": str(count), "pendingRequestCount": str(count)},
        }
        operation: dict[str, Any] = {"name": batch.name, "metadata": metadata}
        if state not in FINISHED:
            return operation
        operation["done"] = True
        metadata["endTime"] = _timestamp(batch.created + batch.delay_seconds)
        if state != "BATCH_STATE_SUCCEEDED":
            code, message = _ENDINGS[state]
            operation["error"] = {"code": code, "message": message}
            metadata["batchStats"] = {"requestCount": str(count), "failedRequestCount": str(count)}
            return operation
        if batch.answers is None:
            batch.answers = [
                {**self._answer(item.get("request") or {}, batch.model), "metadata": item.get("metadata") or {}}
                for item in batch.requests
            ]
        failed = sum(1 for answer in batch.answers if "error" in answer)
        metadata["batchStats"] = {
            "requestCount": str(count),
            "successfulRequestCount": str(count - failed),
            "failedRequestCount": str(failed),
        }
        output = {"inlinedResponses": {"inlinedResponses": batch.answers}}
        metadata["output"] = output
        operation["response"] = {"@type": OUTPUT_TYPE, **output}
        return operation
