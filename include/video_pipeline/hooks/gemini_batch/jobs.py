"""The Gemini Batch API through ``GeminiHook``: inline requests, submitting, finding, reading answers.

Each call goes through the hook's retries and error mapping, as an online call
does (429 backs off, a bad key is ``ProviderUnavailable``...). The REST shapes are
``POST models/{model}:batchGenerateContent`` (inline ``GenerateContentRequest`` s,
answered with a long-running operation named ``batches/{id}``) and ``GET
batches/{id}`` (``state``, and once it succeeded ``inlinedResponses`` in request
order); ``google-genai``'s ``client.batches`` builds and reads them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from include.video_pipeline.core.analysis import MODEL_RESPONSE_SCHEMA, SCHEMA_VERSION, Prompt
from include.video_pipeline.core.errors import WorkPending
from include.video_pipeline.hooks.llm_base import (
    BATCH_CANCELLED,
    BATCH_EXPIRED,
    BATCH_FAILED,
    BATCH_REQUEST_FAILED,
    BatchUnavailable,
    CallRecord,
)

if TYPE_CHECKING:
    from google.genai import types

    from include.video_pipeline.hooks.gemini import GeminiHook

# The temperature an online analysis call uses (ModelHook.generate_json's default).
TEMPERATURE = 0.2
# Google lists batches newest first; a batch this pipeline submitted minutes or hours
# ago is near the top, so a lost one is looked for in the first pages only.
FIND_PAGE_SIZE = 100
FIND_MAX_PAGES = 5
# The states the results table keeps, from the SDK's JobState (JOB_STATE_*) or the
# REST BatchState (BATCH_STATE_*); anything else counts as still running.
_STATES = {
    "UNSPECIFIED": "pending",
    "QUEUED": "pending",
    "PENDING": "pending",
    "RUNNING": "running",
    "CANCELLING": "running",
    "PAUSED": "running",
    "UPDATING": "running",
    "SUCCEEDED": "succeeded",
    "PARTIALLY_SUCCEEDED": "succeeded",  # each request's own error is read with its answer
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
}
ENDED_WITHOUT_ANSWERS = {"failed": BATCH_FAILED, "cancelled": BATCH_CANCELLED, "expired": BATCH_EXPIRED}


class BatchPending(WorkPending):
    """The video's batch has not finished: wait (deferred) and look again."""

    def __init__(self, batch_name: str, state: str):
        super().__init__(batch_name, f"Gemini batch {batch_name} is {state}")
        self.batch_name = batch_name
        self.state = state


def job_state(state: Any) -> str:
    """``pending``, ``running``, ``succeeded``, ``failed``, ``cancelled`` or ``expired``."""
    name = str(getattr(state, "value", state) or "")
    return _STATES.get(name.rsplit("_STATE_", 1)[-1], "running")


def request_key(prompts: Sequence[Prompt], images: Sequence[bytes]) -> str:
    """What identifies a batch's requests: the prompts, the images and the answer's schema.

    The model is not part of it: the same request, answered by the next configured
    model after a retirement, is still the batch a retry must find.
    """
    payload = {
        "prompts": [[p.system, p.user, p.version] for p in prompts],
        "images": [hashlib.sha256(bytes(image)).hexdigest() for image in images],
        "schema": SCHEMA_VERSION,
        "temperature": TEMPERATURE,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def inline_requests(hook: GeminiHook, prompts: Sequence[Prompt], images: Sequence[bytes]) -> list[Any]:
    """One ``InlinedRequest`` per chunk, as the online call would send it; ``metadata`` numbers them."""
    from google.genai import types

    return [
        types.InlinedRequest(
            contents=hook._contents(prompt.user, images),
            config=types.GenerateContentConfig(
                system_instruction=prompt.system,
                temperature=TEMPERATURE,
                response_mime_type="application/json",
                response_json_schema=MODEL_RESPONSE_SCHEMA,
            ),
            metadata={"chunk": str(index)},
        )
        for index, prompt in enumerate(prompts)
    ]


def submit(hook: GeminiHook, requests: Sequence[Any], display_name: str) -> types.BatchJob:
    """Create the batch with the hook's current model (retried, errors mapped as online)."""
    client = hook.get_conn()
    # hook.model is read at each attempt: a 404 moves it to the next configured model.
    return hook.call_with_retries(
        lambda: client.batches.create(model=hook.model, src=list(requests), config={"display_name": display_name})
    )


def fetch(hook: GeminiHook, batch_name: str) -> types.BatchJob:
    """The batch as Google has it now: state and, once it succeeded, the answers."""
    client = hook.get_conn()
    return hook.call_with_retries(lambda: client.batches.get(name=batch_name))


def find(hook: GeminiHook, display_name: str) -> types.BatchJob | None:
    """The batch Google lists under ``display_name`` (one a dead attempt submitted), or None."""
    client = hook.get_conn()
    pager = hook.call_with_retries(lambda: client.batches.list(config={"page_size": FIND_PAGE_SIZE}))
    for _ in range(FIND_MAX_PAGES):
        for job in pager.page:
            if job.display_name == display_name:
                return job
        if not pager.config.get("page_token"):
            return None
        hook.call_with_retries(pager.next_page)
    return None


def ended_without_answers(job: types.BatchJob, state: str) -> BatchUnavailable:
    """What a failed, cancelled or expired batch means for the analysis."""
    return BatchUnavailable(
        ENDED_WITHOUT_ANSWERS[state],
        f"Gemini batch {job.name} ended {state} without answers; the video keeps its media and transcript, "
        "and reprocess=failed analyses it again",
    )


def answers_by_chunk(job: types.BatchJob, count: int) -> list[Any]:
    """The batch's answers in chunk order (by the requests' ``metadata``, else as listed)."""
    entries = list((job.dest.inlined_responses if job.dest else None) or [])
    if len(entries) != count:
        raise BatchUnavailable(
            BATCH_REQUEST_FAILED, f"Gemini batch {job.name} returned {len(entries)} answers for {count} requests"
        )
    numbered = {str((entry.metadata or {}).get("chunk")): entry for entry in entries}
    if set(numbered) == {str(i) for i in range(count)}:
        return [numbered[str(i)] for i in range(count)]
    return entries


def read_answer(
    hook: GeminiHook, job: types.BatchJob, entry: Any, *, model: str, record_spend: bool
) -> tuple[str, CallRecord]:
    """One answer's text and what it cost at the Batch API's price; blocked content raises as online."""
    if entry.error is not None or entry.response is None:
        error = entry.error
        detail = f"{getattr(error, 'code', None)} {getattr(error, 'message', None) or ''}".strip()
        raise BatchUnavailable(BATCH_REQUEST_FAILED, f"Gemini batch {job.name}: a request failed ({detail})")
    response = entry.response
    hook._raise_if_blocked(response)
    usage = response.usage_metadata
    # The time the analysis waited for its batch: from submission to the batch's end.
    waited = (job.end_time - job.create_time).total_seconds() if job.end_time and job.create_time else 0.0
    record = hook._record(
        model=response.model_version or model,
        input_tokens=(usage.prompt_token_count or 0) if usage else 0,
        output_tokens=(usage.candidates_token_count or 0) if usage else 0,
        thinking_tokens=(usage.thoughts_token_count or 0) if usage else 0,
        cached_tokens=(usage.cached_content_token_count or 0) if usage else 0,
        latency=max(waited, 0.0),
        batch=True,
        record_spend=record_spend,
    )
    return response.text or "", record
