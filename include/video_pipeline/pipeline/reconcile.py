"""Reconcile: at the end of every run, make the bucket agree with the ledger, then sweep.

Callbacks settle a video as soon as its fate is known, but they are best effort
in Airflow 3 (their exceptions are only logged, and they do not run when a task
is marked from the UI). The reconcile task settles again whatever a callback
missed, decides the fate of a video nothing decided, returns claims whose lease
expired (their worker or run died) and orphans in ``processing/`` to
``pending/``, and reports what the run did.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from include.video_pipeline.config import Settings
from include.video_pipeline.core.errors import FailureReport, RejectReason
from include.video_pipeline.core.states import InvalidKey, Prefixes, VideoState, move_keys, relative_key
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.storage.base import ObjectMissing, ObjectStore, move_object

log = logging.getLogger(__name__)


class Settles(Protocol):
    """What reconcile needs of ``VideoLifecycle`` (which it cannot import: lifecycle imports this)."""

    settings: Settings
    store: ObjectStore
    db: ResultsDbHook
    prefixes: Prefixes

    def settle(self, vid: str) -> VideoState | None: ...


@dataclass
class ReconcileReport:
    run_id: str
    completed: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    orphans_returned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def infrastructure_failures(self) -> list[dict[str, Any]]:
        """Failures that were not the upload's fault: these make the run red.

        Only a rejected upload (a ``RejectReason``) is the upload's fault; an
        error that no retry can heal (refused bucket keys, a store's checksum) is
        not retried, but it still needs an operator, so it turns the run red too.
        """
        rejected = {reason.value for reason in RejectReason}
        return [f for f in self.failed if f.get("reason") not in rejected]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = {
            "completed": len(self.completed),
            "failed": len(self.failed),
            "requeued": len(self.requeued),
            "swept": len(self.swept),
            "orphans_returned": len(self.orphans_returned),
        }
        return data


def reconcile(lifecycle: Settles, run_id: str) -> ReconcileReport:
    """Make the bucket agree with the ledger for ``run_id``, then sweep what others left."""
    db = lifecycle.db
    report = ReconcileReport(run_id=run_id)
    for row in db.videos_for_run(run_id):
        vid = row["video_id"]
        try:
            if row["state"] == VideoState.PROCESSING.value and row["outcome"] is None:
                # Every task of this video is finished (reconcile runs last), yet
                # nothing decided its fate: a task failed without its callback,
                # or was marked failed/skipped from the UI.
                last = row["last_error"] or {}
                db.set_outcome(
                    vid,
                    "failed",
                    FailureReport(
                        stage=last.get("stage", "unknown"),
                        error_class=last.get("error_class", "Incomplete"),
                        message=last.get("message", "the run ended before this video finished all stages"),
                        attempt=int(last.get("attempt", 0)),
                        reason=last.get("reason") or "incomplete",
                        video_id=vid,
                        source_key=row["source_key"],
                        details={"reconciled": True},
                    ),
                )
            lifecycle.settle(vid)
        except Exception as exc:  # keep reconciling the others
            log.exception("Could not reconcile %s", vid)
            report.errors.append(f"{vid}: {type(exc).__name__}: {exc}")
        final = db.get_video(vid) or {}
        state = final.get("state")
        if state == VideoState.COMPLETED.value:
            report.completed.append(vid)
        elif state == VideoState.FAILED.value:
            error = final.get("error") or {}
            report.failed.append(
                {
                    "video_id": vid,
                    "source_key": final.get("source_key"),
                    "stage": error.get("stage"),
                    "reason": error.get("reason"),
                    "message": error.get("message"),
                    "retryable": error.get("retryable", True),
                }
            )
        elif state == VideoState.PENDING.value:
            report.requeued.append(vid)
    sweep(lifecycle, run_id, report)
    return report


def sweep(lifecycle: Settles, run_id: str, report: ReconcileReport) -> None:
    """Return claims whose lease expired (their worker or run died) and orphans to pending/."""
    db, store, prefixes = lifecycle.db, lifecycle.store, lifecycle.prefixes
    for row in db.stale_claims(exclude_run_id=run_id):
        vid = row["video_id"]
        try:
            db.set_outcome(vid, "requeue")
            lifecycle.settle(vid)
            report.swept.append(vid)
        except Exception as exc:
            log.exception("Could not sweep %s", vid)
            report.errors.append(f"{vid}: {type(exc).__name__}: {exc}")

    # Anything in processing/ without an active claim has no owner (a lost
    # ledger, or a file put there by hand): give it back to pending/. The
    # listing comes first: a claim writes its row before moving the object.
    listed = list(store.list(prefixes.processing))
    active = db.active_source_keys()
    for obj in listed:
        try:
            rel = relative_key(obj.key, VideoState.PROCESSING, prefixes)
        except InvalidKey:
            continue
        if rel in active:
            continue
        try:
            _, destination = move_keys(rel, VideoState.PROCESSING, VideoState.PENDING, prefixes)
            move_object(store, obj.key, destination)
            report.orphans_returned.append(rel)
        except ObjectMissing:
            continue
    purge_old_work_dirs(lifecycle.settings)


def purge_old_work_dirs(settings: Settings) -> None:
    """Remove work folders untouched for longer than a processing lease."""
    root = settings.work_dir
    if not root.is_dir():
        return
    cutoff = time.time() - settings.processing_lease_seconds
    for entry in root.iterdir():
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            continue
