"""The ledger: one ``videos`` row per upload version, claimed, leased, decided and finished exactly once.

Claims are decided by PostgreSQL (a conflict clause and a partial unique index),
never by timing, so concurrent runs and retried tasks cannot both hold a video.
"""

from __future__ import annotations

from typing import Any

from include.video_pipeline.core.errors import FailureReport
from include.video_pipeline.hooks.results_db.connection import _UNIQUE_VIOLATION, ResultsDbConnection, _json, _sqlstate


class Ledger(ResultsDbConnection):
    """Claim, lease, decide and finish uploads; read the ledger for runs and reprocessing."""

    def claim(
        self,
        *,
        video_id: str,
        bucket: str,
        source_key: str,
        etag: str,
        size_bytes: int,
        run_id: str,
        lease_seconds: int,
        uploaded_at: Any = None,
        listed_at: Any = None,
    ) -> bool:
        """Claim one upload version for ``run_id``; False when someone else holds it.

        ``listed_at`` is the database time taken before ``pending/`` was listed:
        a finished row that changed after it was finished by another run since
        the listing, so the listing is stale and the row is left alone.

        The conflict clause only takes over rows that are not being processed,
        and the partial unique index refuses a second active claim on the same
        key (another version of the file), so the answer is decided by
        PostgreSQL atomically, never by timing.
        """
        try:
            with self.cursor() as cur:
                cur.execute(
                    """
                    INSERT INTO videos (video_id, bucket, source_key, etag, size_bytes, state,
                                        claim_run_id, claimed_at, lease_expires_at, claims, uploaded_at)
                    VALUES (%s, %s, %s, %s, %s, 'processing', %s, now(),
                            now() + make_interval(secs => %s), 1, COALESCE(%s, now()))
                    ON CONFLICT (video_id) DO UPDATE
                       SET state = 'processing', outcome = NULL, error = NULL, last_error = NULL,
                           claim_run_id = EXCLUDED.claim_run_id, claimed_at = now(),
                           lease_expires_at = EXCLUDED.lease_expires_at,
                           claims = videos.claims + 1, finished_at = NULL, updated_at = now()
                     WHERE videos.state <> 'processing'
                       AND (%s::timestamptz IS NULL OR videos.updated_at < %s::timestamptz)
                    RETURNING video_id
                    """,
                    (
                        video_id,
                        bucket,
                        source_key,
                        etag,
                        size_bytes,
                        run_id,
                        lease_seconds,
                        uploaded_at,
                        listed_at,
                        listed_at,
                    ),
                )
                return cur.fetchone() is not None
        except Exception as exc:
            if _sqlstate(exc) == _UNIQUE_VIOLATION:
                return False
            raise

    def now(self) -> Any:
        """The database's clock (the one row timestamps use)."""
        with self.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            return cur.fetchone()[0]

    def reclaim_finished(self, video_id: str, *, run_id: str, lease_seconds: int) -> str | None:
        """Claim a completed or failed video again for reprocessing; returns the state it was in.

        None when it is not finished (being processed by someone, or unknown).
        The partial unique index still forbids two active claims on one key.
        """
        try:
            with self.cursor() as cur:
                cur.execute(
                    """
                    UPDATE videos AS v
                       SET state = 'processing', outcome = NULL, error = NULL, last_error = NULL,
                           claim_run_id = %s, claimed_at = now(),
                           lease_expires_at = now() + make_interval(secs => %s),
                           claims = v.claims + 1, finished_at = NULL, updated_at = now()
                      FROM (SELECT video_id, state FROM videos WHERE video_id = %s FOR UPDATE) AS before
                     WHERE v.video_id = before.video_id AND before.state IN ('completed', 'failed')
                    RETURNING before.state
                    """,
                    (run_id, lease_seconds, video_id),
                )
                row = cur.fetchone()
                return str(row[0]) if row else None
        except Exception as exc:
            if _sqlstate(exc) == _UNIQUE_VIOLATION:
                return None
            raise

    def finished_videos(
        self,
        *,
        states: tuple[str, ...],
        uploaded_from: Any = None,
        uploaded_to: Any = None,
        video_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Finished videos to reprocess: by arrival window (backfill), by state, or one by id."""
        clauses = ["state = ANY(%s)"]
        params: list[Any] = [list(states)]
        if uploaded_from is not None:
            clauses.append("uploaded_at >= %s")
            params.append(uploaded_from)
        if uploaded_to is not None:
            clauses.append("uploaded_at < %s")
            params.append(uploaded_to)
        if video_id is not None:
            clauses.append("video_id = %s")
            params.append(video_id)
        params.append(limit)
        with self.cursor() as cur:
            cur.execute(
                f"SELECT * FROM videos WHERE {' AND '.join(clauses)} ORDER BY uploaded_at, video_id LIMIT %s",
                params,
            )
            return self._rows(cur)

    def set_content_hash(self, video_id: str, sha256: str) -> None:
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET content_sha256 = %s, updated_at = now() WHERE video_id = %s",
                (sha256, video_id),
            )

    def release_claim(self, video_id: str, run_id: str) -> None:
        """Undo a claim whose upload vanished before it could be moved (listed, then taken)."""
        with self.cursor() as cur:
            cur.execute(
                "DELETE FROM videos WHERE video_id = %s AND claim_run_id = %s AND claims = 1 AND state = 'processing'",
                (video_id, run_id),
            )
            cur.execute(
                "UPDATE videos SET state = 'pending', claim_run_id = NULL, updated_at = now()"
                " WHERE video_id = %s AND claim_run_id = %s AND state = 'processing'",
                (video_id, run_id),
            )

    def renew_lease(self, video_id: str, lease_seconds: int) -> None:
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET lease_expires_at = now() + make_interval(secs => %s), updated_at = now()"
                " WHERE video_id = %s AND state = 'processing'",
                (lease_seconds, video_id),
            )

    def get_video(self, video_id: str) -> dict[str, Any] | None:
        with self.cursor() as cur:
            cur.execute("SELECT * FROM videos WHERE video_id = %s", (video_id,))
            rows = self._rows(cur)
        return rows[0] if rows else None

    def videos_for_run(self, run_id: str) -> list[dict[str, Any]]:
        with self.cursor() as cur:
            cur.execute("SELECT * FROM videos WHERE claim_run_id = %s ORDER BY claimed_at, video_id", (run_id,))
            return self._rows(cur)

    def stale_claims(self, *, exclude_run_id: str) -> list[dict[str, Any]]:
        """Claims of other runs whose lease ran out: their worker or run is gone."""
        with self.cursor() as cur:
            cur.execute(
                "SELECT * FROM videos WHERE state = 'processing' AND lease_expires_at < now()"
                " AND claim_run_id IS DISTINCT FROM %s ORDER BY claimed_at",
                (exclude_run_id,),
            )
            return self._rows(cur)

    def active_source_keys(self) -> set[str]:
        with self.cursor() as cur:
            cur.execute("SELECT source_key FROM videos WHERE state = 'processing'")
            return {row[0] for row in cur.fetchall()}

    def record_error(self, video_id: str, report: FailureReport) -> None:
        """Remember the latest attempt's error (also on attempts that will be retried)."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET last_error = %s::jsonb, updated_at = now() WHERE video_id = %s",
                (_json(report.to_dict()), video_id),
            )

    def set_outcome(self, video_id: str, outcome: str, error: FailureReport | None = None) -> bool:
        """Decide a processing video's fate once; the first decision wins."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET outcome = %s, error = COALESCE(%s::jsonb, error), updated_at = now()"
                " WHERE video_id = %s AND state = 'processing' AND outcome IS NULL RETURNING video_id",
                (outcome, _json(error.to_dict()) if error else None, video_id),
            )
            return cur.fetchone() is not None

    def finish(self, video_id: str, state: str) -> None:
        """Record where the upload now lives after its move."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET state = %s, finished_at = now(), updated_at = now(),"
                " lease_expires_at = NULL WHERE video_id = %s",
                (state, video_id),
            )
            if state == "pending":
                # Back in the queue: undecided again. claim_run_id keeps the run that
                # returned it, so that run's summary can report it as requeued.
                cur.execute("UPDATE videos SET outcome = NULL, finished_at = NULL WHERE video_id = %s", (video_id,))
