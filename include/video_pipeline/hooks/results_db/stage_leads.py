"""Duplicate uploads: reusing a stage result another copy computed, and one lead per computation.

Copies of the same bytes share a stage's ``cache_key``; ``stage_leads`` lets one
of them compute while the others wait, and ``stage_runs`` says where a finished
result can be reused from.
"""

from __future__ import annotations

from typing import Any

from include.video_pipeline.hooks.results_db.connection import ResultsDbConnection


class StageLeads(ResultsDbConnection):
    """Find a reusable stage result; take and release the lead on computing one."""

    def cached_stage_result(self, stage: str, cache_key: str, *, exclude_video_id: str) -> dict[str, Any] | None:
        """The newest successful run of ``stage`` with ``cache_key`` on another video, if any.

        Either a completed video (its results are in its outputs) or one still
        being processed (a duplicate in the same batch: its results are in its
        staging area, or in its outputs once it published); completed ones first.
        """
        with self.cursor() as cur:
            cur.execute(
                """
                SELECT s.video_id, s.details, v.outputs_prefix, v.state, v.media
                  FROM stage_runs s JOIN videos v USING (video_id)
                 WHERE s.stage = %s AND s.cache_key = %s AND s.status = 'success' AND v.video_id <> %s
                   AND ((v.state = 'completed' AND v.outputs_prefix IS NOT NULL) OR v.state = 'processing')
                 ORDER BY v.state = 'completed' DESC, s.started_at DESC LIMIT 1
                """,
                (stage, cache_key, exclude_video_id),
            )
            rows = self._rows(cur)
        return rows[0] if rows else None

    def take_stage_lead(
        self, *, cache_key: str, stage: str, video_id: str, run_id: str, lease_seconds: int
    ) -> dict[str, Any] | None:
        """Take the lead on computing ``cache_key``; None when taken, else the live lead of another video.

        A lead held by the same video (a retry) or one whose lease ran out is taken over.
        """
        with self.cursor() as cur:
            cur.execute(
                """
                INSERT INTO stage_leads (cache_key, stage, video_id, run_id, lease_expires_at)
                VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))
                ON CONFLICT (cache_key) DO UPDATE
                   SET video_id = EXCLUDED.video_id, run_id = EXCLUDED.run_id, started_at = now(),
                       lease_expires_at = EXCLUDED.lease_expires_at
                 WHERE stage_leads.video_id = EXCLUDED.video_id OR stage_leads.lease_expires_at < now()
                RETURNING video_id
                """,
                (cache_key, stage, video_id, run_id, lease_seconds),
            )
            if cur.fetchone() is not None:
                return None
            cur.execute(
                "SELECT video_id, run_id, started_at, lease_expires_at FROM stage_leads WHERE cache_key = %s",
                (cache_key,),
            )
            rows = self._rows(cur)
        return rows[0] if rows else None

    def release_stage_lead(self, cache_key: str, video_id: str) -> None:
        with self.cursor() as cur:
            cur.execute("DELETE FROM stage_leads WHERE cache_key = %s AND video_id = %s", (cache_key, video_id))
