"""What a run takes on: new uploads from ``pending/``, or finished videos again.

A normal run claims up to ``batch_size`` uploads. A run created by ``airflow backfill
create`` reprocesses the completed videos that arrived in its data interval; a manual
run with ``reprocess=failed`` retries every failed video (and completed ones that
still lack an analysis), ``reprocess=video`` one video by id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from include.video_pipeline.core.errors import PermanentError
from include.video_pipeline.hooks.results_db import ResultsDbHook
from include.video_pipeline.pipeline.lifecycle import ClaimedVideo, VideoLifecycle

log = logging.getLogger(__name__)


class BadReprocessRequest(PermanentError):
    """A reprocess run names no video that can be reprocessed (or an unknown mode): retrying cannot help."""


def reprocess_mode(run_type: str, params: Mapping[str, Any]) -> str:
    """``backfill`` for a backfill run, else the run's ``reprocess`` param (``none`` by default)."""
    if "backfill" in run_type.lower():
        return "backfill"
    return str(params.get("reprocess") or "none")


def claim_for_run(
    lifecycle: VideoLifecycle,
    db: ResultsDbHook,
    run_id: str,
    *,
    mode: str,
    params: Mapping[str, Any],
    data_interval: tuple[datetime | None, datetime | None] = (None, None),
) -> list[ClaimedVideo]:
    """Claim what this run processes; raises ``BadReprocessRequest`` when a reprocess request names nothing."""
    batch = int(params.get("batch_size") or lifecycle.settings.batch_size)
    if mode == "none":
        return lifecycle.claim_batch(run_id, limit=batch)
    if mode == "backfill":
        start, end = data_interval
        rows = db.finished_videos(states=("completed",), uploaded_from=start, uploaded_to=end, limit=batch)
    elif mode == "failed":
        from include.video_pipeline.hooks.provider_state import videos_without_analysis

        rows = db.finished_videos(states=("failed",), limit=batch)
        # Completed while the analysis provider was down: they get their analysis now.
        rows += videos_without_analysis(db, limit=batch - len(rows))
    elif mode == "video":
        video_id = str(params.get("video_id") or "").strip()
        rows = db.finished_videos(states=("completed", "failed"), video_id=video_id, limit=1)
        if not rows:
            raise BadReprocessRequest(f"no completed or failed video with id {video_id!r} to reprocess")
    else:
        raise BadReprocessRequest(f"unknown reprocess mode {mode!r}")
    log.info("Reprocessing (%s): %d video(s) selected", mode, len(rows))
    return lifecycle.reclaim_finished(run_id, rows)
