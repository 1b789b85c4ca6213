"""Running one stage for one video: ownership, lease, ledger, timing and duplicates' results.

``StageRunner.run`` does what every per-video stage shares and returns a
``StageOutcome``; the operator (``operators/base.py``) only maps it to Airflow.
How a video's problems show:

* bad input (``InputRejected``): the failure and its reason are recorded and the
  outcome is ``REJECTED``; the operator skips, the rest of the video's group is
  skipped, the video moves to ``failed/`` with its reason, and the run stays
  green: nothing an operator can fix.
* provider quota exhausted (``QuotaExhausted``): ``REQUEUED``; the stage skips
  and the video goes back to ``pending/`` for the next run.
* ``PermanentError`` (e.g. an invalid API key): ``FAILED_PERMANENT``, fails at
  once, no retries.
* anything else: ``FAILED_TRANSIENT``, an infrastructure error; Airflow retries
  it, and when retries run out the video moves to ``failed/`` and ``reconcile``
  turns the run red.

A stage with a cache input reuses the result a duplicate upload (same bytes)
computed, or waits for it (``WAITING``) while the duplicate holds the lead on it
(see ``pipeline/cache.py``). A stage whose work runs at a provider that answers
later (``WorkPending``: a Gemini batch) is ``AWAITING_PROVIDER``: nothing is
recorded, it keeps its lead, and its next execution finds the same job.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from include.video_pipeline.config import Settings
from include.video_pipeline.core.errors import (
    FailureReport,
    InputRejected,
    PermanentError,
    QuotaExhausted,
    WorkPending,
)
from include.video_pipeline.core.stage_outputs import StageOutput
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.pipeline.cache import (
    LEAD_SECONDS,
    DuplicateInProgress,
    restore_cached_result,
    stage_cache_key,
)
from include.video_pipeline.pipeline.lifecycle import ClaimedVideo
from include.video_pipeline.storage.base import ObjectStore

log = logging.getLogger(__name__)

# What a stage computes: a typed result, or (a stage of its own, as in tests) the dict itself.
StageResult = StageOutput | Mapping[str, Any]
# (SHA-256 of the stage's input, settings that shape its output), or None if not cacheable.
CacheInput = tuple[str, dict[str, Any]] | None


class StageContext:
    """The hooks and facts a stage needs, built once per task execution."""

    def __init__(
        self,
        settings: Settings,
        video: ClaimedVideo,
        run_id: str,
        try_number: int,
        params: dict[str, Any],
        run_type: str = "manual",
    ):
        self.settings = settings
        self.video = video
        self.run_id = run_id
        self.try_number = try_number
        self.params = params
        self.run_type = run_type  # scheduled, manual, backfill... (what reprocess_mode reads)
        self.db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
        self._store: ObjectStore | None = None

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = ObjectStoreHook(settings=self.settings).get_store()
        return self._store


class Outcome(enum.StrEnum):
    """How one execution of a stage ended."""

    DONE = "done"  # computed; ``result`` is recorded
    REUSED = "reused"  # a duplicate upload's result, copied; ``reused_from`` names who computed it
    WAITING = "waiting"  # a duplicate computes the same result right now: look again later
    AWAITING_PROVIDER = "awaiting_provider"  # the work runs at a provider (a Gemini batch): run again when done
    SKIPPED = "skipped"  # no longer this run's video, or another stage already decided its fate
    REJECTED = "rejected"  # the upload can never succeed: the video is failed with its reason
    REQUEUED = "requeued"  # a provider quota ran out: the video goes back to pending/
    FAILED_PERMANENT = "failed_permanent"  # no retry can help
    FAILED_TRANSIENT = "failed_transient"  # an infrastructure error: worth retrying


@dataclass(frozen=True)
class StageOutcome:
    """What ``StageRunner.run`` found; ``error`` is the exception behind a failure, rejection or requeue."""

    kind: Outcome
    message: str = ""
    result: dict[str, Any] | None = None
    reused_from: str | None = None
    error: BaseException | None = None
    report: FailureReport | None = None


def _not_cacheable(ctx: StageContext) -> CacheInput:
    return None


def _as_dict(result: StageResult) -> dict[str, Any]:
    """The result as it crosses XCom and is recorded in the ledger."""
    return result.to_dict() if isinstance(result, StageOutput) else dict(result)


def failure_report(stage: str, exc: BaseException, ctx: StageContext) -> FailureReport:
    report = FailureReport.from_exception(exc, stage=stage, attempt=ctx.try_number)
    return FailureReport(**{**report.to_dict(), "video_id": ctx.video.video_id, "source_key": ctx.video.rel_key})


@dataclass(frozen=True)
class StageRunner:
    """Runs ``compute`` for one video as stage ``stage``, exactly as the ledger allows.

    :param compute: the stage's work; returns the small result that crosses XCom.
    :param cache_input: what identifies the stage's result for reuse by a duplicate
        upload (see ``pipeline/cache.py``); None (the default) if not cacheable.
    """

    stage: str
    compute: Callable[[StageContext], StageResult]
    cache_input: Callable[[StageContext], CacheInput] = _not_cacheable

    def run(self, ctx: StageContext) -> StageOutcome:
        """Check the video is still this run's, run the stage (or reuse), record how it went."""
        try:
            return self._run(ctx)
        finally:
            ctx.db.close()

    def _run(self, ctx: StageContext) -> StageOutcome:
        video, db = ctx.video, ctx.db
        row = db.get_video(video.video_id)
        if row is None or row["state"] != "processing" or row["claim_run_id"] != ctx.run_id:
            return StageOutcome(Outcome.SKIPPED, f"{video.name}: no longer claimed by this run; nothing to do")
        if row["outcome"] in {"failed", "requeue"}:
            return StageOutcome(Outcome.SKIPPED, f"{video.name}: already {row['outcome']} in another stage")
        db.renew_lease(video.video_id, ctx.settings.processing_lease_seconds)

        started_at = datetime.now(UTC)
        started = time.monotonic()

        def record(status: str, details: dict[str, Any] | None = None, cache_key: str | None = None) -> None:
            db.record_stage(
                video_id=video.video_id,
                stage=self.stage,
                run_id=ctx.run_id,
                try_number=ctx.try_number,
                status=status,
                started_at=started_at,
                seconds=time.monotonic() - started,
                details=details,
                cache_key=cache_key,
            )

        try:
            result, cache_key, reused_from = self.run_or_reuse(ctx)
        except DuplicateInProgress as wait:
            return StageOutcome(Outcome.WAITING, f"{video.name}: {wait}", error=wait)
        except WorkPending as pending:
            # Nothing failed and nothing is recorded yet: the next execution finds the same job.
            return StageOutcome(Outcome.AWAITING_PROVIDER, f"{video.name}: {pending}", error=pending)
        except InputRejected as exc:
            report = failure_report(self.stage, exc, ctx)
            db.record_error(video.video_id, report)
            db.set_outcome(video.video_id, "failed", report)
            record("rejected", {"reason": exc.reason.value})
            message = f"{video.name} rejected ({exc.reason.value}): {exc.message}"
            return StageOutcome(Outcome.REJECTED, message, error=exc, report=report)
        except QuotaExhausted as exc:
            report = failure_report(self.stage, exc, ctx)
            db.record_error(video.video_id, report)
            db.set_outcome(video.video_id, "requeue")
            record("requeued")
            message = f"{video.name}: {exc}; back to pending/ for the next run"
            return StageOutcome(Outcome.REQUEUED, message, error=exc, report=report)
        except PermanentError as exc:
            report = failure_report(self.stage, exc, ctx)
            db.record_error(video.video_id, report)
            record("failed")
            return StageOutcome(Outcome.FAILED_PERMANENT, f"{video.name}: {exc}", error=exc, report=report)
        except Exception as exc:
            report = failure_report(self.stage, exc, ctx)
            db.record_error(video.video_id, report)
            record("failed")
            return StageOutcome(Outcome.FAILED_TRANSIENT, f"{video.name}: {exc}", error=exc, report=report)
        # A result that says it must not be reused (an analysis the provider could not
        # make) is recorded without its cache key, so no duplicate upload inherits it.
        record(
            "success",
            {"result": result, "reused_from": reused_from},
            cache_key if result.get("cacheable", True) else None,
        )
        if cache_key is not None and reused_from is None:
            db.release_stage_lead(cache_key, video.video_id)  # after the record: duplicates now find it
        kind = Outcome.DONE if reused_from is None else Outcome.REUSED
        return StageOutcome(kind, result=result, reused_from=reused_from)

    def run_or_reuse(self, ctx: StageContext) -> tuple[dict[str, Any], str | None, str | None]:
        """Run the stage, or reuse a duplicate's result; returns (result, cache key, reused from).

        Raises ``DuplicateInProgress`` while another video computes the same result
        (see ``include.video_pipeline.pipeline.cache``); a computing stage holds the lead on
        its key until ``run`` has recorded its result.
        """
        cache_input = self.cache_input(ctx)
        if cache_input is None:
            return _as_dict(self.compute(ctx)), None, None
        key = stage_cache_key(self.stage, *cache_input)
        vid = ctx.video.video_id
        hit = ctx.db.cached_stage_result(self.stage, key, exclude_video_id=vid)
        if hit is not None:
            try:
                result = restore_cached_result(ctx.store, ctx.settings, vid, hit)
                if hit.get("media") and self.stage == "transcode":
                    ctx.db.save_media(vid, hit["media"])  # the report's size and duration facts
                # Named by the video that computed it, also when the hit itself was a reuse.
                return result, key, (hit["details"] or {}).get("reused_from") or hit["video_id"]
            except Exception:
                # The earlier outputs may have been deleted or expired: compute instead.
                log.warning("Cached result of %s is unusable; running the stage", hit["video_id"], exc_info=True)
        else:
            leader = ctx.db.take_stage_lead(
                cache_key=key, stage=self.stage, video_id=vid, run_id=ctx.run_id, lease_seconds=LEAD_SECONDS
            )
            if leader is not None:
                raise DuplicateInProgress(leader)
        try:
            return _as_dict(self.compute(ctx)), key, None
        except WorkPending:
            raise  # the lead stays: the result is still being computed, at the provider
        except BaseException:
            ctx.db.release_stage_lead(key, vid)
            raise
