"""The bodies of the DAG's run-level tasks (claim and reconcile), kept out of the DAG file.

The work is the service layer's (``pipeline/claims.py``, ``pipeline/lifecycle.py``,
``pipeline/run_summary.py``); here its results become Airflow outcomes.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from include.video_pipeline.config import load_settings
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.pipeline import claims
from include.video_pipeline.pipeline.lifecycle import VideoLifecycle


def _lifecycle() -> tuple[VideoLifecycle, ResultsDbHook]:
    settings = load_settings()
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    store = ObjectStoreHook(settings=settings).get_store()
    return VideoLifecycle(settings, store, db), db


def reprocess_mode(context: Any) -> str:
    """What this run processes (see ``pipeline.claims.reprocess_mode``)."""
    run_type = str(getattr(context.get("dag_run"), "run_type", "") or "")
    return claims.reprocess_mode(run_type, context["params"])


def claim_uploads(context: Any) -> list[dict[str, Any]]:
    lifecycle, db = _lifecycle()
    try:
        db.migrate()
        claimed = claims.claim_for_run(
            lifecycle,
            db,
            context["run_id"],
            mode=reprocess_mode(context),
            params=context["params"],
            data_interval=(context.get("data_interval_start"), context.get("data_interval_end")),
        )
    except claims.BadReprocessRequest as exc:
        raise AirflowFailException(str(exc)) from exc
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
