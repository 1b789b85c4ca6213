"""Gemini Batch API jobs in the results database: the batch a video's analysis waits for.

A batch is paid for when Google runs it, so the row is written *before* the job
is submitted and every later attempt (a retry, a restarted worker, a task resumed
by the triggerer, a later run after this one died) finds it here instead of
submitting again; see ``sql/007_gemini_batches.sql``.
"""

from __future__ import annotations

from typing import Any

from include.video_pipeline.hooks.results_db.connection import ResultsDbConnection

# Batch states that end a job (the API's BATCH_STATE_*, lower case, without the prefix).
FINISHED_BATCH_STATES = frozenset({"succeeded", "failed", "cancelled", "expired"})
# Google aims to finish a batch within 24 hours and ends one it cannot finish in time as
# expired; a row older than two days no longer holds budget, even if no task collected it.
BATCH_HOLD_INTERVAL = "2 days"


class GeminiBatches(ResultsDbConnection):
    """Find, claim and follow the Gemini batch of one video's analysis."""

    def find_gemini_batch(self, *, video_id: str, request_key: str, run_id: str) -> dict[str, Any] | None:
        """The batch this analysis already has, or None when it must be submitted.

        This run's own batch comes first, whatever became of it (a retry after a failed
        batch ends the same way, never with a second submission). Otherwise a batch
        still in flight for the same video and request, submitted by a run that died,
        is adopted by this run: it is paid for already.
        """
        with self.cursor() as cur:
            cur.execute(
                "SELECT * FROM gemini_batches WHERE video_id = %s AND request_key = %s AND run_id = %s"
                " ORDER BY id DESC LIMIT 1",
                (video_id, request_key, run_id),
            )
            rows = self._rows(cur)
            if rows:
                return rows[0]
            cur.execute(
                "UPDATE gemini_batches SET run_id = %s, updated_at = now()"
                " WHERE video_id = %s AND request_key = %s AND collected_at IS NULL"
                " AND state NOT IN ('failed', 'cancelled', 'expired') RETURNING *",
                (run_id, video_id, request_key),
            )
            rows = self._rows(cur)
        return rows[0] if rows else None

    def claim_gemini_batch(
        self,
        *,
        video_id: str,
        run_id: str,
        request_key: str,
        model: str,
        request_count: int,
        estimate_usd: float | None,
    ) -> dict[str, Any] | None:
        """Write the row of a batch about to be submitted; None when another attempt holds one already."""
        with self.cursor() as cur:
            # The display name is unique and ASCII: the video id's hash part and the row's id.
            cur.execute(
                """
                INSERT INTO gemini_batches (id, video_id, run_id, request_key, display_name, model, request_count,
                                            estimate_usd)
                SELECT n, %s, %s, %s, 'video-pipeline ' || right(%s, 12) || ' #' || n, %s, %s, %s
                  FROM (SELECT nextval(pg_get_serial_sequence('gemini_batches', 'id')) AS n) AS next_id
                ON CONFLICT DO NOTHING RETURNING *
                """,
                (video_id, run_id, request_key, video_id, model, request_count, estimate_usd),
            )
            rows = self._rows(cur)
        return rows[0] if rows else None

    def gemini_batch_submitted(self, batch_id: int, *, batch_name: str, state: str, model: str) -> None:
        """Google accepted the batch (run by ``model``): its name is what every later attempt asks about."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE gemini_batches SET batch_name = %s, state = %s, model = %s,"
                " submitted_at = COALESCE(submitted_at, now()), updated_at = now() WHERE id = %s",
                (batch_name, state, model, batch_id),
            )

    def gemini_batch_state(self, batch_id: int, state: str, message: str | None = None) -> None:
        """What Google last said about the batch; a finished state is kept with its time."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE gemini_batches SET state = %s, message = COALESCE(%s, message), updated_at = now(),"
                " finished_at = CASE WHEN %s THEN COALESCE(finished_at, now()) ELSE finished_at END"
                " WHERE id = %s",
                (state, message, state in FINISHED_BATCH_STATES, batch_id),
            )

    def collect_gemini_batch(self, batch_id: int) -> bool:
        """Mark the batch's outcome used; True only for the first attempt that does (it records the spend)."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE gemini_batches SET collected_at = now(), updated_at = now()"
                " WHERE id = %s AND collected_at IS NULL RETURNING id",
                (batch_id,),
            )
            return cur.fetchone() is not None
