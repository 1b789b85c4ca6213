"""What every per-video stage shares: outcome bookkeeping, timings and the state-move callbacks.

How a video's problems show in a run:

* bad input (``InputRejected``): the stage records the reason and *skips*; the
  rest of the video's group is skipped, the video moves to ``failed/`` with its
  reason, and the run stays green: nothing an operator can fix.
* provider quota exhausted (``QuotaExhausted``): the stage skips and the video
  goes back to ``pending/`` for the next run.
* ``PermanentError`` (e.g. an invalid API key): fails at once, no retries.
* anything else: an infrastructure error; Airflow retries it, and when retries
  run out the video moves to ``failed/`` and ``reconcile`` turns the run red.
"""

from __future__ import annotations

import abc
import inspect
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.video_pipeline.config import Settings, load_settings
from include.video_pipeline.core.errors import FailureReport, InputRejected, PermanentError, QuotaExhausted
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.operators.links import VideoOutputsLink
from include.video_pipeline.pipeline.cache import WAIT_POLL_SECONDS, DuplicateInProgress
from include.video_pipeline.pipeline.lifecycle import ClaimedVideo, VideoLifecycle
from include.video_pipeline.storage.base import ObjectStore

log = logging.getLogger(__name__)


class StageContext:
    """The hooks and facts a stage needs, built once per task execution."""

    def __init__(self, settings: Settings, video: ClaimedVideo, run_id: str, try_number: int, params: dict[str, Any]):
        self.settings = settings
        self.video = video
        self.run_id = run_id
        self.try_number = try_number
        self.params = params
        self.db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
        self._store: ObjectStore | None = None

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = ObjectStoreHook(settings=self.settings).get_store()
        return self._store


class VideoStageOperator(BaseOperator):
    """Base for the per-video stages; subclasses implement ``run_stage``.

    :param video: the claimed video (a ``ClaimedVideo`` as a dict, from the claim task).
    """

    stage: str = "stage"
    template_fields: Sequence[str] = ("video",)
    ui_color = "#e8f1fb"
    operator_extra_links = (VideoOutputsLink(),)

    def __init__(self, *, video: Any, **kwargs: Any):
        kwargs.setdefault("map_index_template", "{{ video_label }}")
        kwargs.setdefault("doc_md", inspect.cleandoc(type(self).__doc__ or ""))  # shown on the task in the UI
        kwargs.setdefault("on_failure_callback", settle_after_failure)
        kwargs.setdefault("on_skipped_callback", settle_video)
        super().__init__(**kwargs)
        self.video = video

    @abc.abstractmethod
    def run_stage(self, ctx: StageContext) -> dict[str, Any]:
        """The stage's work; returns the small result that crosses XCom."""

    def cache_input(self, ctx: StageContext) -> tuple[str, dict[str, Any]] | None:
        """(SHA-256 of the stage's input, settings that shape its output), or None if not cacheable."""
        return None

    def _run_or_reuse(self, ctx: StageContext) -> tuple[dict[str, Any], str | None, str | None]:
        """Run the stage, or reuse a duplicate's result; returns (result, cache key, reused from).

        Raises ``DuplicateInProgress`` while another video computes the same result
        (see ``include.video_pipeline.pipeline.cache``); a computing stage holds the lead on
        its key until ``execute`` has recorded its result.
        """
        from include.video_pipeline.pipeline.cache import (
            LEAD_SECONDS,
            DuplicateInProgress,
            restore_cached_result,
            stage_cache_key,
        )

        cache_input = self.cache_input(ctx)
        if cache_input is None:
            return self.run_stage(ctx), None, None
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
                self.log.warning("Cached result of %s is unusable; running the stage", hit["video_id"], exc_info=True)
        else:
            leader = ctx.db.take_stage_lead(
                cache_key=key, stage=self.stage, video_id=vid, run_id=ctx.run_id, lease_seconds=LEAD_SECONDS
            )
            if leader is not None:
                raise DuplicateInProgress(leader)
        try:
            return self.run_stage(ctx), key, None
        except BaseException:
            ctx.db.release_stage_lead(key, vid)
            raise

    def resume_after_duplicate(self, context: Any, event: Any = None, **_: Any) -> dict[str, Any]:
        """Back from waiting for a duplicate's result: look again (reuse it, or compute)."""
        return self.execute(context)

    def execute(self, context: Any) -> dict[str, Any]:
        video = ClaimedVideo.from_xcom(self.video)
        context["video_label"] = _label(video.name)  # the grid shows the file name, not a map index
        ti = context["ti"]
        ctx = StageContext(load_settings(), video, context["run_id"], ti.try_number, dict(context["params"]))
        row = ctx.db.get_video(video.video_id)
        if row is None or row["state"] != "processing" or row["claim_run_id"] != ctx.run_id:
            raise AirflowSkipException(f"{video.name}: no longer claimed by this run; nothing to do")
        if row["outcome"] in {"failed", "requeue"}:
            raise AirflowSkipException(f"{video.name}: already {row['outcome']} in another stage")
        ctx.db.renew_lease(video.video_id, ctx.settings.processing_lease_seconds)

        started_at = datetime.now(UTC)
        started = time.monotonic()

        def record(status: str, details: dict[str, Any] | None = None, cache_key: str | None = None) -> None:
            ctx.db.record_stage(
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
            result, cache_key, reused_from = self._run_or_reuse(ctx)
        except DuplicateInProgress as wait:
            # Deferring frees the worker and pool slots while the duplicate works, so the
            # wait never holds up unrelated videos; the task resumes and looks again.
            self.log.info("%s: %s; waiting %d s for its result", video.name, wait, WAIT_POLL_SECONDS)
            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.defer(
                trigger=TimeDeltaTrigger(timedelta(seconds=WAIT_POLL_SECONDS)), method_name="resume_after_duplicate"
            )
        except InputRejected as exc:
            report = self._report(exc, ctx)
            ctx.db.record_error(video.video_id, report)
            ctx.db.set_outcome(video.video_id, "failed", report)
            record("rejected", {"reason": exc.reason.value})
            raise AirflowSkipException(f"{video.name} rejected ({exc.reason.value}): {exc.message}") from exc
        except QuotaExhausted as exc:
            ctx.db.record_error(video.video_id, self._report(exc, ctx))
            ctx.db.set_outcome(video.video_id, "requeue")
            record("requeued")
            raise AirflowSkipException(f"{video.name}: {exc}; back to pending/ for the next run") from exc
        except PermanentError as exc:
            ctx.db.record_error(video.video_id, self._report(exc, ctx))
            record("failed")
            raise AirflowFailException(f"{video.name}: {exc}") from exc
        except Exception as exc:
            ctx.db.record_error(video.video_id, self._report(exc, ctx))
            record("failed")
            raise
        finally:
            ctx.db.close()
        # A result that says it must not be reused (an analysis the provider could not
        # make) is recorded without its cache key, so no duplicate upload inherits it.
        record(
            "success",
            {"result": result, "reused_from": reused_from},
            cache_key if result.get("cacheable", True) else None,
        )
        if cache_key is not None and reused_from is None:
            ctx.db.release_stage_lead(cache_key, video.video_id)  # after the record: duplicates now find it
        ctx.db.close()
        return result

    def _report(self, exc: BaseException, ctx: StageContext) -> FailureReport:
        report = FailureReport.from_exception(exc, stage=self.stage, attempt=ctx.try_number)
        return FailureReport(**{**report.to_dict(), "video_id": ctx.video.video_id, "source_key": ctx.video.rel_key})


# Airflow stores the rendered map index in a varchar(250): a longer file name would
# make every task of the video fail after its work was done.
MAX_LABEL_CHARS = 250


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"


# -- callbacks: move the upload as soon as its fate is known --------------------------


def _video_from_context(context: Any) -> ClaimedVideo | None:
    video = getattr(context.get("task"), "video", None)
    if isinstance(video, dict):
        return ClaimedVideo.from_xcom(video)
    log.warning("Callback could not find the video of %s; reconcile will settle it", context.get("task"))
    return None


def _lifecycle(settings: Settings) -> tuple[VideoLifecycle, ResultsDbHook]:
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    store = ObjectStoreHook(settings=settings).get_store()
    return VideoLifecycle(settings, store, db), db


def settle_video(context: Any) -> None:
    """On success of publish, or on a skip: move the upload as its recorded outcome says."""
    video = _video_from_context(context)
    if video is None:
        return
    lifecycle, db = _lifecycle(load_settings())
    try:
        lifecycle.settle(video.video_id)
    finally:
        db.close()


def settle_after_failure(context: Any) -> None:
    """On a final failure (retries exhausted): the video goes to failed/ with the last error."""
    video = _video_from_context(context)
    if video is None:
        return
    settings = load_settings()
    lifecycle, db = _lifecycle(settings)
    try:
        row = db.get_video(video.video_id) or {}
        last = row.get("last_error") or {}
        report = (
            FailureReport.from_dict(last)
            if last
            else FailureReport(
                stage=getattr(context.get("task"), "stage", "unknown"),
                error_class="TaskFailed",
                message=str(context.get("exception") or "the task failed"),
                attempt=getattr(context.get("ti"), "try_number", 0),
                reason="task_failed",
                video_id=video.video_id,
                source_key=video.rel_key,
            )
        )
        lifecycle.fail(video.video_id, report)
    finally:
        db.close()
