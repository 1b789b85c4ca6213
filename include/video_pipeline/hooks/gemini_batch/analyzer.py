"""GeminiBatchAnalyzer: one video's analysis as one Gemini batch, found again by every attempt.

``analyze`` is run once per execution of the analyze task and finds where the
video's batch stands in ``gemini_batches``:

1. no batch yet: the estimate (at the Batch API's price) is held against the
   budgets, the row is written, the batch (one request per transcript chunk) is
   submitted, and ``BatchPending`` says to wait;
2. a row without a batch name (the attempt that wrote it died while submitting):
   Google's list is searched for its display name before it is submitted again;
3. submitted and still running: ``BatchPending`` again;
4. succeeded: each answer is read at the batch price, checked as an online answer
   is (an invalid one is asked for again online), grounded and merged; the spend is
   recorded by the first attempt that collects it only;
5. failed, cancelled or expired: ``BatchUnavailable`` with the reason, and the
   video completes with its analysis marked unavailable.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, NoReturn

from include.video_pipeline.core.analysis import (
    DEFAULT_MAX_CHUNK_TOKENS,
    MODEL_RESPONSE_SCHEMA,
    AnalysisPlan,
    AnalysisResult,
    AnalyzerName,
    Usage,
    validate_model_answer,
)
from include.video_pipeline.core.errors import PermanentError, PipelineError, QuotaExhausted
from include.video_pipeline.core.transcript import Transcript
from include.video_pipeline.hooks.gemini import GeminiAnalyzer, GeminiHook
from include.video_pipeline.hooks.gemini_batch import jobs
from include.video_pipeline.hooks.llm_base import parse_json_object
from include.video_pipeline.hooks.results_db.gemini_batches import GeminiBatches

log = logging.getLogger(__name__)

# Marks an analysis whose answers came from the Batch API (listed as a processing note in the report).
BATCH_FLAG = "gemini_batch"


class GeminiBatchAnalyzer(GeminiAnalyzer):
    """Analysis through the Gemini Batch API: half the price, answers within hours.

    :param hook: the configured ``GeminiHook`` (API key: Vertex AI has no inline batches).
    :param batches: where the video's batch is kept (the results database).
    :param video_id: the video analysed.
    :param run_id: the run that waits for the batch.
    """

    def __init__(
        self,
        hook: GeminiHook,
        *,
        batches: GeminiBatches,
        video_id: str,
        run_id: str,
        name: AnalyzerName | None = None,
        max_chunk_tokens: int = DEFAULT_MAX_CHUNK_TOKENS,
    ):
        super().__init__(hook, name=name, max_chunk_tokens=max_chunk_tokens)
        self.batches = batches
        self.video_id = video_id
        self.run_id = run_id

    def answer(self, transcript: Transcript, plan: AnalysisPlan, images: Sequence[bytes]) -> AnalysisResult:
        """The planned chunks' answers from this video's one batch: found, or submitted (then ``BatchPending``)."""
        key = jobs.request_key(plan.prompts, images)
        row = self.batches.find_gemini_batch(video_id=self.video_id, request_key=key, run_id=self.run_id)
        if row is None:
            row = self._claim(plan, key, images)  # raises BatchPending once submitted
        if row["batch_name"] is None:
            row = self._recover(row, plan, images)
        # Also a batch that ended before is asked about again: the same end, never a second batch.
        job = jobs.fetch(self.hook, row["batch_name"])
        state = jobs.job_state(job.state)
        if state != row["state"]:
            self.batches.gemini_batch_state(row["id"], state)
            log.info("Gemini batch %s of %s: %s", job.name, self.video_id, state)
        if state in ("pending", "running"):
            raise jobs.BatchPending(row["batch_name"], state)
        if state != "succeeded":
            failure = jobs.ended_without_answers(job, state)
            self.batches.gemini_batch_state(row["id"], state, str(failure))
            self.batches.collect_gemini_batch(row["id"])
            raise failure
        return self._collect(transcript, plan, images, row, job)

    # -- submitting ------------------------------------------------------------

    def _claim(self, plan: AnalysisPlan, key: str, images: Sequence[bytes]) -> dict[str, Any]:
        """Hold the estimate, write the row, submit; raises ``BatchPending`` (or the submission's error)."""
        # Budgets are checked for the whole analysis before anything is paid for, as online.
        estimate = self.hook.begin_analysis([f"{p.system}\n{p.user}" for p in plan.prompts], batch=True)
        try:
            row = self.batches.claim_gemini_batch(
                video_id=self.video_id,
                run_id=self.run_id,
                request_key=key,
                model=self.hook.model,
                request_count=len(plan.prompts),
                estimate_usd=estimate,
            )
            if row is None:
                # Another attempt wrote its row between the lookup and this one: wait for that batch.
                row = self.batches.find_gemini_batch(video_id=self.video_id, request_key=key, run_id=self.run_id)
                if row is None:
                    raise PipelineError(f"the Gemini batch of {self.video_id} is neither new nor found")
                return row
            self._submit(row, plan, images)
        finally:
            # From here the row's estimate holds the budget (provider_state counts open batches).
            self.hook.end_analysis()

    def _recover(self, row: dict[str, Any], plan: AnalysisPlan, images: Sequence[bytes]) -> dict[str, Any]:
        """A row whose submission was not recorded: adopt the batch Google has under its name, or submit it."""
        job = jobs.find(self.hook, row["display_name"])
        if job is None or not job.name:
            log.warning(
                "Gemini batch %r of %s was never accepted (its attempt ended first); submitting it now",
                row["display_name"],
                self.video_id,
            )
            self._submit(row, plan, images)
        state = jobs.job_state(job.state)
        log.info("Found Gemini batch %s (%s) that an earlier attempt submitted; not submitting again", job.name, state)
        self.batches.gemini_batch_submitted(row["id"], batch_name=job.name, state=state, model=self.hook.model)
        return {**row, "batch_name": job.name, "state": state}

    def _submit(self, row: dict[str, Any], plan: AnalysisPlan, images: Sequence[bytes]) -> NoReturn:
        try:
            job = jobs.submit(self.hook, jobs.inline_requests(self.hook, plan.prompts, images), row["display_name"])
        except Exception as exc:
            if _refused(exc):
                # Google answered and created nothing: the row must not hold budget or look in flight.
                self.batches.gemini_batch_state(row["id"], "failed", f"not submitted: {type(exc).__name__}")
            raise
        state = jobs.job_state(job.state)
        self.batches.gemini_batch_submitted(row["id"], batch_name=str(job.name), state=state, model=self.hook.model)
        log.info(
            "Submitted Gemini batch %s (%d request(s), %s) for %s; its answers arrive within hours",
            job.name,
            len(plan.prompts),
            self.hook.model,
            self.video_id,
        )
        raise jobs.BatchPending(str(job.name), state)

    # -- collecting ------------------------------------------------------------

    def _collect(
        self, transcript: Transcript, plan: AnalysisPlan, images: Sequence[bytes], row: dict[str, Any], job: Any
    ) -> AnalysisResult:
        # Only the first attempt to collect records the spend; a retry reads the same answers for free.
        first = self.batches.collect_gemini_batch(row["id"])
        self.hook.model = row["model"]
        answers: list[tuple[dict[str, Any], Usage]] = []
        for prompt, entry in zip(plan.prompts, jobs.answers_by_chunk(job, len(plan.prompts)), strict=True):
            text, record = jobs.read_answer(self.hook, job, entry, model=row["model"], record_spend=first)
            usage = record.usage
            data, problems = parse_json_object(text)
            if data is not None:
                problems = validate_model_answer(data)
            if data is None or problems:
                # As online: an answer that is not a valid analysis is asked for again (online,
                # at the online price: one more batch would add hours for one chunk).
                log.warning("Gemini batch answer is not a valid analysis (%s); asking online", "; ".join(problems[:3]))
                data, online = self.hook.generate_json(
                    prompt=prompt.user,
                    system_instruction=prompt.system,
                    response_schema=MODEL_RESPONSE_SCHEMA,
                    validate=validate_model_answer,
                    images=images,
                )
                usage = usage + online
            answers.append((data, usage))
        result = self.assemble(transcript, plan, answers)
        return dataclasses.replace(result, flags=(*result.flags, BATCH_FLAG))


def _refused(exc: BaseException) -> bool:
    """Whether a failed submission was Google refusing it (4xx, 429: nothing created).

    A lost connection or a 5xx may have created the batch all the same, so its row
    stays as it is and the next attempt looks for it by name before submitting.
    """
    return isinstance(exc, (PermanentError, QuotaExhausted))
