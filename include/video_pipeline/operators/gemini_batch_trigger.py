"""GeminiBatchTrigger: the triggerer waits for a video's Gemini batch, so no worker slot does.

The analyze task defers on it after submitting (or finding) the video's batch; the
trigger asks ``GET batches/{name}`` every ``poll_seconds`` (``client.aio.batches``,
without blocking the triggerer's loop) and fires one event, after which the task
runs again and looks for itself:

* ``ended``: the batch finished (succeeded, failed, cancelled, expired); the task
  collects the answers, or marks the analysis unavailable;
* ``still running`` after ``resume_after_seconds``: the task renews the video's
  lease and its lead on the result (a batch may take a day), and defers again;
* ``polling failed`` after more than ``max_failures`` polls in a row failed: the
  task asks Google itself, where the error is classified and retried as any call is.

The event carries names and states only: the answers are read by the task, and the
API key never leaves its connection (it is looked up here, in the triggerer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from include.video_pipeline.hooks.gemini import GeminiHook
from include.video_pipeline.hooks.gemini_batch import job_state
from include.video_pipeline.hooks.llm_base import redact
from include.video_pipeline.hooks.results_db.gemini_batches import FINISHED_BATCH_STATES


class GeminiBatchTrigger(BaseTrigger):
    """Fires when the Gemini batch ``batch_name`` ended, or when the task should look in anyway.

    :param batch_name: ``batches/{id}``.
    :param gemini_conn_id: the connection holding the API key (else ``GEMINI_API_KEY``).
    :param base_url: the API endpoint; None for Google's.
    :param poll_seconds: the wait between two polls.
    :param resume_after_seconds: fire ``still running`` after this long.
    :param max_failures: failed polls in a row tolerated before firing ``polling failed``.
    :param timeout_seconds: limit for one poll.
    """

    def __init__(
        self,
        batch_name: str,
        *,
        gemini_conn_id: str,
        base_url: str | None,
        poll_seconds: float,
        resume_after_seconds: float,
        max_failures: int,
        timeout_seconds: float = 120,
    ):
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        self.batch_name = batch_name
        self.gemini_conn_id = gemini_conn_id
        self.base_url = base_url
        self.poll_seconds = poll_seconds
        self.resume_after_seconds = resume_after_seconds
        self.max_failures = max_failures
        self.timeout_seconds = timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_name": self.batch_name,
                "gemini_conn_id": self.gemini_conn_id,
                "base_url": self.base_url,
                "poll_seconds": self.poll_seconds,
                "resume_after_seconds": self.resume_after_seconds,
                "max_failures": self.max_failures,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    def _event(self, why: str, state: str | None, **extra: Any) -> TriggerEvent:
        payload = {"batch": self.batch_name, "why": why, "state": state, **extra}
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]  # so is its TriggerEvent

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from google import genai
        from google.genai import types

        key = await GeminiHook(self.gemini_conn_id).aget_api_key()
        if not key:
            # The task, on a worker, reports the missing key as it would for any call.
            yield self._event("polling failed", None, error="no Gemini API key in the triggerer")
            return
        options = types.HttpOptions(base_url=self.base_url, timeout=int(self.timeout_seconds * 1000))
        client = genai.Client(api_key=key, http_options=options)
        started = time.monotonic()
        failures = 0
        state: str | None = None
        try:
            while True:
                try:
                    job = await client.aio.batches.get(name=self.batch_name)
                except Exception as exc:
                    failures += 1
                    error = redact(f"{type(exc).__name__}: {exc}", key)
                    if failures > self.max_failures:
                        yield self._event("polling failed", state, error=error)
                        return
                    self.log.warning("Polling Gemini batch %s failed (%s); trying again", self.batch_name, error)
                else:
                    failures = 0
                    state = job_state(job.state)
                    if state in FINISHED_BATCH_STATES:
                        yield self._event("ended", state)
                        return
                    self.log.info("Gemini batch %s is %s", self.batch_name, state)
                if time.monotonic() - started >= self.resume_after_seconds:
                    yield self._event("still running", state)
                    return
                await asyncio.sleep(self.poll_seconds)
        finally:
            await client.aio.aclose()
