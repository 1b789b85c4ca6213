"""The life of an upload: claim, settle (move by outcome), reconcile, sweep.

The ledger decides, the bucket follows. A stage records an *outcome* in the
ledger (succeeded, failed with a report, requeue); ``settle`` then moves the
object to the prefix that outcome implies. Callbacks call ``settle`` right away;
the ``reconcile`` task calls it again at the end of every run for anything a
callback missed (callbacks are best effort in Airflow 3: their exceptions are
only logged, and they do not run when a task is marked from the UI); how it
does is ``pipeline/reconcile.py``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from include.video_pipeline.config import Settings
from include.video_pipeline.core.errors import FailureReport, RejectReason
from include.video_pipeline.core.states import (
    MAX_RELATIVE_KEY_BYTES,
    InvalidKey,
    VideoState,
    error_report_key,
    is_folder_marker,
    move_keys,
    relative_key,
    state_key,
    video_id,
)
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.pipeline.notifications import notify_video, video_event
from include.video_pipeline.pipeline.reconcile import ReconcileReport
from include.video_pipeline.pipeline.reconcile import reconcile as reconcile_run
from include.video_pipeline.storage.base import ObjectInfo, ObjectMissing, ObjectStore, move_object

log = logging.getLogger(__name__)

OUTCOME_TARGET = {
    "succeeded": VideoState.COMPLETED,
    "failed": VideoState.FAILED,
    "requeue": VideoState.PENDING,
}


@dataclass(frozen=True)
class ClaimedVideo:
    """What crosses XCom for one video: ids and keys, never media or text."""

    video_id: str
    rel_key: str
    name: str
    size: int
    etag: str

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> ClaimedVideo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


class VideoLifecycle:
    """Ledger + store operations on whole uploads. Every method is safe to repeat."""

    def __init__(self, settings: Settings, store: ObjectStore, db: ResultsDbHook):
        self.settings = settings
        self.store = store
        self.db = db
        self.prefixes = settings.prefixes

    # -- claim ----------------------------------------------------------------

    def claim_batch(self, run_id: str, limit: int | None = None) -> list[ClaimedVideo]:
        """Claim up to ``limit`` uploads from pending/, oldest first, and move them to processing/."""
        limit = limit or self.settings.batch_size
        busy = self.db.active_source_keys()
        listed_at = self.db.now()  # before listing: see ResultsDbHook.claim
        candidates = []
        too_long = []
        for obj in self.store.list(self.prefixes.pending):
            try:
                rel = relative_key(obj.key, VideoState.PENDING, self.prefixes)
            except InvalidKey as exc:
                rel = obj.key[len(self.prefixes.pending) :]
                if len(rel.encode("utf-8")) > MAX_RELATIVE_KEY_BYTES and rel not in busy:
                    too_long.append((obj, rel, str(exc)))
                elif not is_folder_marker(rel):  # markers are expected: consoles make them
                    log.warning("Ignoring %r in pending/: %s", obj.key, exc)
                continue
            if rel not in busy:
                candidates.append((obj.last_modified, obj.key, rel, obj))
        candidates.sort(key=lambda item: (item[0], item[1]))
        if len(candidates) > limit:
            log.info("%d uploads pending; claiming %d, the rest wait for the next run", len(candidates), limit)

        claimed: list[ClaimedVideo] = []
        for _, key, rel, obj in candidates:
            if len(claimed) >= limit:
                break
            vid = self._claim_in_ledger(run_id, obj, rel, listed_at)
            if vid is None:
                log.info("%s is claimed by another run; skipping", rel)
                continue
            try:
                _, destination = move_keys(rel, VideoState.PENDING, VideoState.PROCESSING, self.prefixes)
                move_object(self.store, key, destination)
            except ObjectMissing:
                log.info("%s vanished before it could be claimed; releasing", rel)
                self.db.release_claim(vid, run_id)
                continue
            except Exception:
                # The source is still in pending/ (a move deletes it last). Raising here
                # would fail the claim task with earlier claims already made, which its
                # retry cannot see; release this one instead and let the sweep return
                # any half-made copy in processing/.
                log.exception("Could not move %s to processing/; releasing its claim for a later run", rel)
                self.db.release_claim(vid, run_id)
                continue
            claimed.append(
                ClaimedVideo(video_id=vid, rel_key=rel, name=rel.rsplit("/", 1)[-1], size=obj.size, etag=obj.etag)
            )
        for obj, rel, message in too_long:
            self._refuse_key(run_id, obj, rel, message, listed_at)
        log.info("Claimed %d upload(s) for run %s", len(claimed), run_id)
        return claimed

    def _claim_in_ledger(self, run_id: str, obj: ObjectInfo, rel: str, listed_at: Any) -> str | None:
        """Claim one listed upload version in the ledger; its video id, or None if someone else holds it."""
        vid = video_id(self.store.location, rel, obj.etag)
        claimed = self.db.claim(
            video_id=vid,
            bucket=self.store.location,
            source_key=rel,
            etag=obj.etag,
            size_bytes=obj.size,
            run_id=run_id,
            lease_seconds=self.settings.processing_lease_seconds,
            uploaded_at=obj.last_modified,
            listed_at=listed_at,
        )
        return vid if claimed else None

    def _refuse_key(self, run_id: str, obj: Any, rel: str, message: str, listed_at: Any) -> None:
        """A key too long to pass through processing/ goes straight to failed/, with its reason.

        Left in pending/ it would be listed and skipped by every run, forever,
        with its reason only in a log line.
        """
        vid = self._claim_in_ledger(run_id, obj, rel, listed_at)
        if vid is None:
            return
        report = FailureReport(
            stage="claim",
            error_class="InvalidKey",
            message=message,
            attempt=1,
            reason=RejectReason.INVALID_KEY.value,
            retryable=False,
            video_id=vid,
            source_key=rel,
        )
        try:
            self.db.set_outcome(vid, "failed", report)
            # The report's own key must fit S3's 1024 bytes too: shorten the name
            # (whole characters only); the report holds the full key.
            report_key = error_report_key(rel, self.prefixes)
            while len(report_key.encode("utf-8")) > 1024:
                rel_part = report_key[len(self.prefixes.failed) : -len(".error.json")]
                report_key = error_report_key(rel_part[:-1], self.prefixes)
            self.store.put_bytes(
                report_key,
                json.dumps(report.to_dict(), ensure_ascii=False, indent=2).encode("utf-8"),
                content_type="application/json",
            )
            source, destination = move_keys(rel, VideoState.PENDING, VideoState.FAILED, self.prefixes)
            move_object(self.store, source, destination)
            self.db.finish(vid, VideoState.FAILED.value)
            log.warning("Refused %r: %s; moved to %s", rel[:80], message, self.prefixes.failed)
        except Exception:
            # Still in pending/ (a move deletes its source last): the next run tries again.
            log.exception("Could not move the over-long key %r to failed/; releasing it", rel[:80])
            self.db.release_claim(vid, run_id)

    def reclaim_finished(self, run_id: str, rows: list[dict[str, Any]]) -> list[ClaimedVideo]:
        """Claim finished videos again (backfill or a reprocess request) and move them to processing/.

        Earlier result rows stay in the database; the new ones become current.
        """
        claimed: list[ClaimedVideo] = []
        for row in rows:
            vid, rel, state = row["video_id"], row["source_key"], VideoState(row["state"])
            if self.store.head(state_key(rel, state, self.prefixes)) is None:
                log.warning(
                    "%s is no longer in %s (expired by a lifecycle rule?); cannot reprocess it",
                    rel,
                    self.prefixes.for_state(state),
                )
                continue
            previous = self.db.reclaim_finished(
                vid, run_id=run_id, lease_seconds=self.settings.processing_lease_seconds
            )
            if previous is None:
                log.info("%s is being processed by another run; skipping", rel)
                continue
            source, destination = move_keys(rel, VideoState(previous), VideoState.PROCESSING, self.prefixes)
            move_object(self.store, source, destination)
            if previous == VideoState.FAILED.value:
                self.store.delete(error_report_key(rel, self.prefixes))
            claimed.append(
                ClaimedVideo(
                    video_id=vid,
                    rel_key=rel,
                    name=rel.rsplit("/", 1)[-1],
                    size=int(row["size_bytes"]),
                    etag=row["etag"],
                )
            )
        log.info("Reclaimed %d finished video(s) for reprocessing in run %s", len(claimed), run_id)
        return claimed

    # -- settle ---------------------------------------------------------------

    def settle(self, vid: str) -> VideoState | None:
        """Move a decided video to the prefix its outcome implies; None while undecided."""
        row = self.db.get_video(vid)
        if row is None:
            log.warning("No ledger row for %s; nothing to settle", vid)
            return None
        if row["state"] != VideoState.PROCESSING.value:
            return VideoState(row["state"])
        outcome = row["outcome"]
        if outcome is None:
            return None
        target = OUTCOME_TARGET[outcome]
        rel = row["source_key"]
        if target is VideoState.FAILED:
            report = dict(row["error"] or {})
            report.setdefault("video_id", vid)
            report.setdefault("source_key", rel)
            # Every report names its cause; a row written before reasons existed
            # (or by hand) still gets a code a script can branch on, never null.
            report["reason"] = report.get("reason") or "infrastructure_error"
            # The reason goes in first, so a video in failed/ always has one beside it.
            self.store.put_bytes(
                error_report_key(rel, self.prefixes),
                json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8"),
                content_type="application/json",
            )
        source, destination = move_keys(rel, VideoState.PROCESSING, target, self.prefixes)
        try:
            move_object(self.store, source, destination)
        except ObjectMissing:
            log.error(
                "%s is in neither %s nor %s (deleted by hand?); recording %s anyway",
                rel,
                source,
                destination,
                target.value,
            )
        self.db.finish(vid, target.value)
        self._drop_staging(vid)
        self._drop_work_dir(vid)
        log.info("Settled %s: %s -> %s", rel, outcome, destination)
        if target is not VideoState.PENDING:
            # Once per video: a second settle() returns early above. Never raises.
            notify_video(self.settings, video_event(self.settings, row, target.value))
        return target

    def fail(self, vid: str, report: FailureReport) -> VideoState | None:
        self.db.set_outcome(vid, "failed", report)
        return self.settle(vid)

    def fail_with_last_error(self, vid: str, fallback: FailureReport) -> VideoState | None:
        """Fail a video with the last error a stage recorded for it; ``fallback`` when none did."""
        last = (self.db.get_video(vid) or {}).get("last_error") or {}
        return self.fail(vid, FailureReport.from_dict(last) if last else fallback)

    def _drop_staging(self, vid: str) -> None:
        """Staged outputs of a video that will not be published (publish cleans up after itself)."""
        for obj in list(self.store.list(f"{self.settings.staging_prefix}{vid}/")):
            self.store.delete(obj.key)

    def _drop_work_dir(self, vid: str) -> None:
        shutil.rmtree(self.settings.work_dir / vid, ignore_errors=True)

    # -- reconcile --------------------------------------------------------------

    def reconcile(self, run_id: str) -> ReconcileReport:
        """Make the bucket agree with the ledger for ``run_id``, then sweep (see ``pipeline/reconcile.py``)."""
        return reconcile_run(self, run_id)
