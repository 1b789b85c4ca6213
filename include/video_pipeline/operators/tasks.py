"""The bodies of the DAG's run-level tasks (claim and reconcile), kept out of the DAG file."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from include.video_pipeline.config import load_settings
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.pipeline.lifecycle import VideoLifecycle

log = logging.getLogger(__name__)


def _lifecycle() -> tuple[VideoLifecycle, ResultsDbHook]:
    settings = load_settings()
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    store = ObjectStoreHook(settings=settings).get_store()
    return VideoLifecycle(settings, store, db), db


def reprocess_mode(context: Any) -> str:
    """What a run processes: new uploads, or finished videos again.

    * ``backfill``: a run made by ``airflow backfill create`` reprocesses the
      completed videos that arrived within its data interval;
    * ``failed`` / ``video``: the ``reprocess`` param of a manual run;
    * ``none``: the normal case, uploads waiting in pending/.
    """
    run_type = str(getattr(context.get("dag_run"), "run_type", "") or "")
    if "backfill" in run_type.lower():
        return "backfill"
    return str(context["params"].get("reprocess") or "none")


def claim_uploads(context: Any) -> list[dict[str, Any]]:
    lifecycle, db = _lifecycle()
    params = context["params"]
    run_id = context["run_id"]
    try:
        db.migrate()
        batch = int(params.get("batch_size") or lifecycle.settings.batch_size)
        mode = reprocess_mode(context)
        if mode == "none":
            claimed = lifecycle.claim_batch(run_id, limit=batch)
        else:
            if mode == "backfill":
                rows = db.finished_videos(
                    states=("completed",),
                    uploaded_from=context["data_interval_start"],
                    uploaded_to=context["data_interval_end"],
                    limit=batch,
                )
            elif mode == "failed":
                from include.video_pipeline.hooks.provider_state import videos_without_analysis

                rows = db.finished_videos(states=("failed",), limit=batch)
                # Completed while the analysis provider was down: they get their analysis now.
                rows += videos_without_analysis(db, limit=batch - len(rows))
            elif mode == "video":
                video_id = str(params.get("video_id") or "").strip()
                rows = db.finished_videos(states=("completed", "failed"), video_id=video_id, limit=1)
                if not rows:
                    raise AirflowFailException(f"no completed or failed video with id {video_id!r} to reprocess")
            else:
                raise AirflowFailException(f"unknown reprocess mode {mode!r}")
            log.info("Reprocessing (%s): %d video(s) selected", mode, len(rows))
            claimed = lifecycle.reclaim_finished(run_id, rows)
    finally:
        db.close()
    return [video.to_xcom() for video in claimed]


def reconcile(context: Any) -> dict[str, Any]:
    from include.video_pipeline.pipeline.notifications import notify_run
    from include.video_pipeline.pipeline.run_summary import build_run_summary, write_run_summary

    lifecycle, db = _lifecycle()
    try:
        db.migrate()
        report = lifecycle.reconcile(context["run_id"])
        # Logged as tables and written to outputs/_runs/<run id>.json.
        summary = build_run_summary(report, db)
        write_run_summary(lifecycle.store, lifecycle.settings, summary)
    finally:
        db.close()
    notify_run(lifecycle.settings, summary)  # never raises; no DB connection held while it retries
    check = summary.get("provider_check") or {}
    if check.get("ok") is False:
        # Nothing was claimed; the run is red with the preflight's reason, not green and empty.
        raise AirflowFailException(str(check.get("message")))
    if report.errors:
        raise RuntimeError("reconcile could not settle every video (will retry): " + "; ".join(report.errors))
    if report.infrastructure_failures:
        names = ", ".join(f["source_key"] for f in report.infrastructure_failures)
        raise AirflowFailException(
            f"{len(report.infrastructure_failures)} video(s) failed on infrastructure errors: "
            f"{names}; see failed/*.error.json"
        )
    counts: dict[str, Any] = report.to_dict()["counts"]
    return counts
