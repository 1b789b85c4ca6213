"""What every per-video stage shares: connections, outcome mapping and the state-move callbacks.

The work of a stage execution (ownership, lease, ledger, timings, duplicates'
results) is the service layer's ``StageRunner`` (``pipeline/stage_runner.py``,
which also says how each kind of problem shows in a run); here its
``StageOutcome`` becomes an Airflow outcome:

* done or reused: the result dict is the return value (XCom);
* waiting for a duplicate's result: the task defers and looks again;
* waiting for a provider's job (a Gemini batch): the task defers on the stage's
  own trigger (``await_provider``) and runs again when the job is done;
* skipped, rejected, requeued: ``AirflowSkipException``;
* failed permanently: ``AirflowFailException`` (no retries);
* failed transiently: the error itself, so Airflow retries it.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.video_pipeline.config import Settings, load_settings
from include.video_pipeline.core.errors import FailureReport
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.operators.links import VideoOutputsLink
from include.video_pipeline.pipeline.cache import WAIT_POLL_SECONDS
from include.video_pipeline.pipeline.lifecycle import ClaimedVideo, VideoLifecycle
from include.video_pipeline.pipeline.stage_runner import (
    CacheInput,
    Outcome,
    StageContext,
    StageOutcome,
    StageResult,
    StageRunner,
)

__all__ = ["StageContext", "VideoStageOperator", "settle_after_failure", "settle_video"]

log = logging.getLogger(__name__)


class VideoStageOperator(BaseOperator):
    """Base for the per-video stages; subclasses implement ``run_stage``.

    :param video: the claimed video (a ``ClaimedVideo`` as a dict, from the claim task).
    :param aws_conn_id: the Airflow connection of the S3 bucket (S3 storage).
    :param gcp_conn_id: the Airflow connection of the GCS bucket (GCS storage).
    :param postgres_conn_id: the Airflow connection of the results database (the ledger).

    The connection ids default to the settings' (``VIDEO_PIPELINE_AWS_CONN_ID``,
    ``VIDEO_PIPELINE_GCP_CONN_ID``, ``VIDEO_PIPELINE_RESULTS_CONN_ID``).
    """

    stage: str = "stage"
    template_fields: Sequence[str] = ("video", "aws_conn_id", "gcp_conn_id", "postgres_conn_id")
    ui_color = "#e8f1fb"
    operator_extra_links = (VideoOutputsLink(),)

    def __init__(
        self,
        *,
        video: Any,
        aws_conn_id: str | None = None,
        gcp_conn_id: str | None = None,
        postgres_conn_id: str | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("map_index_template", "{{ video_label }}")
        kwargs.setdefault("doc_md", inspect.cleandoc(type(self).__doc__ or ""))  # shown on the task in the UI
        kwargs.setdefault("on_failure_callback", settle_after_failure)
        kwargs.setdefault("on_skipped_callback", settle_video)
        super().__init__(**kwargs)
        self.video = video
        if aws_conn_id is None or gcp_conn_id is None or postgres_conn_id is None:
            defaults = load_settings()  # environment only: no I/O at parse time
            aws_conn_id = defaults.aws_conn_id if aws_conn_id is None else aws_conn_id
            gcp_conn_id = defaults.analysis.gcp_conn_id if gcp_conn_id is None else gcp_conn_id
            postgres_conn_id = defaults.results_conn_id if postgres_conn_id is None else postgres_conn_id
        self.aws_conn_id = aws_conn_id
        self.gcp_conn_id = gcp_conn_id
        self.postgres_conn_id = postgres_conn_id

    @abc.abstractmethod
    def run_stage(self, ctx: StageContext) -> StageResult:
        """The stage's work; returns the small result that crosses XCom (as its ``to_dict``)."""

    def cache_input(self, ctx: StageContext) -> CacheInput:
        """(SHA-256 of the stage's input, settings that shape its output), or None if not cacheable."""
        return None

    def runner(self) -> StageRunner:
        return StageRunner(self.stage, compute=self.run_stage, cache_input=self.cache_input)

    def stage_settings(self) -> Settings:
        """The pipeline settings, with this task's connections."""
        return with_connections(load_settings(), self)

    def _run_or_reuse(self, ctx: StageContext) -> tuple[dict[str, Any], str | None, str | None]:
        """Run the stage, or reuse a duplicate's result (see ``StageRunner.run_or_reuse``)."""
        return self.runner().run_or_reuse(ctx)

    def resume_after_duplicate(self, context: Any, event: Any = None, **_: Any) -> dict[str, Any]:
        """Back from waiting for a duplicate's result: look again (reuse it, or compute)."""
        return self.execute(context)

    def execute(self, context: Any) -> dict[str, Any]:
        video = ClaimedVideo.from_xcom(self.video)
        context["video_label"] = _label(video.name)  # the grid shows the file name, not a map index
        ctx = StageContext(
            self.stage_settings(),
            video,
            context["run_id"],
            context["ti"].try_number,
            dict(context["params"]),
            run_type=str(getattr(context.get("dag_run"), "run_type", "") or "manual"),
        )
        outcome = self.runner().run(ctx)
        if outcome.kind in (Outcome.DONE, Outcome.REUSED):
            assert outcome.result is not None
            return outcome.result
        if outcome.kind is Outcome.WAITING:
            # Deferring frees the worker and pool slots while the duplicate works, so the
            # wait never holds up unrelated videos; the task resumes and looks again.
            self.log.info("%s; waiting %d s for its result", outcome.message, WAIT_POLL_SECONDS)
            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.defer(
                trigger=TimeDeltaTrigger(timedelta(seconds=WAIT_POLL_SECONDS)), method_name="resume_after_duplicate"
            )
        if outcome.kind is Outcome.AWAITING_PROVIDER:
            self.await_provider(outcome)
        _raise_for(outcome)

    def await_provider(self, outcome: StageOutcome) -> NoReturn:
        """Defer until the provider job the stage handed its work to is done (a stage that has one overrides)."""
        raise RuntimeError(f"{self.stage} has no provider job to wait for: {outcome.message}")


def _raise_for(outcome: StageOutcome) -> NoReturn:
    """An outcome that is not a result, as Airflow understands it."""
    if outcome.kind in (Outcome.SKIPPED, Outcome.REJECTED, Outcome.REQUEUED):
        raise AirflowSkipException(outcome.message) from outcome.error
    if outcome.kind is Outcome.FAILED_PERMANENT:
        raise AirflowFailException(outcome.message) from outcome.error
    if outcome.kind is Outcome.FAILED_TRANSIENT and outcome.error is not None:
        raise outcome.error  # Airflow retries it; the traceback is the stage's own
    raise RuntimeError(f"unexpected stage outcome {outcome.kind}: {outcome.message}")


def with_connections(settings: Settings, task: Any) -> Settings:
    """``settings`` with the connection ids a stage task was given (the settings' own where it has none)."""
    gcp_conn_id = getattr(task, "gcp_conn_id", None) or settings.analysis.gcp_conn_id
    return dataclasses.replace(
        settings,
        aws_conn_id=getattr(task, "aws_conn_id", None) or settings.aws_conn_id,
        results_conn_id=getattr(task, "postgres_conn_id", None) or settings.results_conn_id,
        analysis=dataclasses.replace(settings.analysis, gcp_conn_id=gcp_conn_id),
    )


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


def _lifecycle(context: Any) -> tuple[VideoLifecycle, ResultsDbHook]:
    settings = with_connections(load_settings(), context.get("task"))
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    store = ObjectStoreHook(settings=settings).get_store()
    return VideoLifecycle(settings, store, db), db


def settle_video(context: Any) -> None:
    """On success of publish, or on a skip: move the upload as its recorded outcome says."""
    video = _video_from_context(context)
    if video is None:
        return
    lifecycle, db = _lifecycle(context)
    try:
        lifecycle.settle(video.video_id)
    finally:
        db.close()


def settle_after_failure(context: Any) -> None:
    """On a final failure (retries exhausted): the video goes to failed/ with the last error."""
    video = _video_from_context(context)
    if video is None:
        return
    lifecycle, db = _lifecycle(context)
    try:
        lifecycle.fail_with_last_error(
            video.video_id,
            # Only when no stage recorded an error (it failed before it could).
            FailureReport(
                stage=getattr(context.get("task"), "stage", "unknown"),
                error_class="TaskFailed",
                message=str(context.get("exception") or "the task failed"),
                attempt=getattr(context.get("ti"), "try_number", 0),
                reason="task_failed",
                video_id=video.video_id,
                source_key=video.rel_key,
            ),
        )
    finally:
        db.close()
