"""The bodies of the DAG's run-level tasks (claim and reconcile), kept out of the DAG file."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from include.video_pipeline.config import load_settings
from include.video_pipeline.hooks.object_store import ObjectStoreHook
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.lifecycle import ReconcileReport, VideoLifecycle

log = logging.getLogger(__name__)


def _lifecycle() -> tuple[VideoLifecycle, ResultsDbHook]:
    settings = load_settings()
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    store = ObjectStoreHook(settings=settings).get_store()
    return VideoLifecycle(settings, store, db), db


def claim_uploads(context: Any) -> list[dict[str, Any]]:
    lifecycle, db = _lifecycle()
    try:
        db.migrate()
        batch = int(context["params"].get("batch_size") or lifecycle.settings.batch_size)
        claimed = lifecycle.claim_batch(context["run_id"], limit=batch)
    finally:
        db.close()
    return [video.to_xcom() for video in claimed]


def format_report(report: ReconcileReport) -> str:
    """The run summary as a small table for the task log."""
    counts = report.to_dict()["counts"]
    lines = [f"Run {report.run_id}", "outcome            videos"]
    lines += [f"{name:<18} {count:>6}" for name, count in counts.items()]
    for failure in report.failed:
        lines.append(
            f"  failed: {failure['source_key']} at {failure['stage']}: "
            f"{failure['reason'] or 'error'}: {failure['message']}"
        )
    return "\n".join(lines)


def reconcile(context: Any) -> dict[str, Any]:
    lifecycle, db = _lifecycle()
    try:
        db.migrate()
        report = lifecycle.reconcile(context["run_id"])
    finally:
        db.close()
    log.info("%s", format_report(report))
    if report.errors:
        raise RuntimeError("reconcile could not settle every video (will retry): " + "; ".join(report.errors))
    if report.infrastructure_failures:
        names = ", ".join(f["source_key"] for f in report.infrastructure_failures)
        raise AirflowFailException(f"{len(report.infrastructure_failures)} video(s) failed on infrastructure errors: "
                                   f"{names}; see failed/*.error.json")
    return report.to_dict()["counts"]
