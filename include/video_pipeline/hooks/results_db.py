"""ResultsDbHook: the PostgreSQL ledger of uploads and the results tables.

Every write is an upsert or a guarded UPDATE, so a retried task or a callback
running twice leaves the same rows behind.
"""

from __future__ import annotations

import hashlib
import json
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from typing import Any

from airflow.providers.postgres.hooks.postgres import PostgresHook

from include.video_pipeline.core.errors import FailureReport

# Serialises concurrent migrations from parallel tasks (any constant works;
# this one spells "vidpipe").
_MIGRATION_LOCK_ID = 0x7669647069706531


_UNIQUE_VIOLATION = "23505"

# How long a task waits for the results DB to come back (a restart, a failover)
# before failing its attempt; Airflow's retry (30 s and more later) comes after.
_RECONNECT_SECONDS = 15.0


def _hung_up(conn: Any) -> bool:
    """True when the server has closed an idle connection (restart, failover, idle timeout).

    An idle connection has nothing to read: a readable socket means the server
    sent its "terminating connection" notice or closed it. Checked before each
    use, so a task that held a connection across a restart reconnects instead
    of failing its attempt.
    """
    try:
        return bool(select.select([conn.fileno()], [], [], 0)[0])
    except Exception:
        return True


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, for psycopg2 and psycopg 3 alike."""
    return getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable hash of a stage's settings, part of a result row's identity."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ResultsDbHook(PostgresHook):
    """The results database, reached through an Airflow Postgres connection.

    :param postgres_conn_id: the connection id (default ``postgres_default``).
    """

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    hook_name = "Video pipeline results DB"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._connection: Any = None

    # -- plumbing -----------------------------------------------------------

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor in a transaction that commits on success and rolls back on error."""
        conn = self._live_connection()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException:
            with suppress(Exception):  # a lost connection cannot roll back; keep the original error
                conn.rollback()
            raise

    def _live_connection(self) -> Any:
        conn = self._connection
        if conn is not None and not conn.closed and not _hung_up(conn):
            return conn
        if conn is not None:
            if not conn.closed:
                self.log.info("The results DB closed this task's connection (restart, failover?); reconnecting")
            with suppress(Exception):
                conn.close()
        self._connection = None
        deadline = time.monotonic() + _RECONNECT_SECONDS
        delay = 0.2
        while True:
            try:
                self._connection = self.get_conn()
                return self._connection
            except Exception as exc:
                if type(exc).__name__ != "OperationalError" or time.monotonic() + delay > deadline:
                    raise
                self.log.warning("Results DB unreachable (%s); reconnecting in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.close()
        self._connection = None

    def _rows(self, cur: Any) -> list[dict[str, Any]]:
        names = [col[0] for col in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # -- schema ---------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply the versioned migrations in ``sql/`` that are not applied yet; returns their names."""
        migrations = sorted(
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in resources.files("include.video_pipeline").joinpath("sql").iterdir()
            if entry.name.endswith(".sql")
        )
        applied: list[str] = []
        with self.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT name FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
            for name, sql in migrations:
                if name in done:
                    continue
                cur.execute(sql)
                cur.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                applied.append(name)
        if applied:
            self.log.info("Applied migrations: %s", ", ".join(applied))
        return applied

    # -- the ledger -----------------------------------------------------------

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

    # -- results --------------------------------------------------------------

    def record_stage(
        self,
        *,
        video_id: str,
        stage: str,
        run_id: str | None,
        try_number: int,
        status: str,
        started_at: Any,
        seconds: float,
        details: dict[str, Any] | None = None,
        cache_key: str | None = None,
    ) -> None:
        with self.cursor() as cur:
            cur.execute(
                "INSERT INTO stage_runs (video_id, stage, run_id, try_number, status, started_at, seconds, details,"
                " cache_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
                (video_id, stage, run_id, try_number, status, started_at, seconds, _json(details or {}), cache_key),
            )

    def save_media(self, video_id: str, media: dict[str, Any]) -> None:
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET media = %s::jsonb, updated_at = now() WHERE video_id = %s",
                (_json(media), video_id),
            )

    def add_media_flags(self, video_id: str, flags: dict[str, str]) -> None:
        """Merge ``{code: detail}`` into the video's ``media_flags`` (one statement: stages may add at once)."""
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET media_flags = media_flags || %s::jsonb, updated_at = now() WHERE video_id = %s",
                (_json(flags), video_id),
            )

    def save_transcript(self, video_id: str, transcript: dict[str, Any]) -> None:
        """Upsert a transcript version and make it the current one."""
        settings = transcript.get("settings") or {}
        with self.cursor() as cur:
            cur.execute("UPDATE transcripts SET is_current = false WHERE video_id = %s", (video_id,))
            cur.execute(
                """
                INSERT INTO transcripts (video_id, backend, model, settings_hash, language, language_probability,
                                         duration_seconds, quality, segment_count, text, segments, is_current)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, true)
                ON CONFLICT (video_id, backend, model, settings_hash) DO UPDATE
                   SET language = EXCLUDED.language, language_probability = EXCLUDED.language_probability,
                       duration_seconds = EXCLUDED.duration_seconds, quality = EXCLUDED.quality,
                       segment_count = EXCLUDED.segment_count, text = EXCLUDED.text,
                       segments = EXCLUDED.segments, is_current = true, updated_at = now()
                """,
                (
                    video_id,
                    transcript["backend"],
                    transcript["model"],
                    settings_hash(settings),
                    transcript.get("language"),
                    transcript.get("language_probability"),
                    transcript.get("duration"),
                    transcript.get("quality", "ok"),
                    len(transcript.get("segments") or ()),
                    transcript.get("text", ""),
                    _json(transcript.get("segments") or []),
                ),
            )

    def save_analysis(self, video_id: str, analysis: dict[str, Any]) -> None:
        """Upsert an analysis version (analyzer, model, prompt) and make it current."""
        usage = analysis.get("usage") or {}
        with self.cursor() as cur:
            cur.execute("UPDATE analyses SET is_current = false WHERE video_id = %s", (video_id,))
            cur.execute(
                """
                INSERT INTO analyses (video_id, analyzer, model, prompt_version, language, data, flags, usage,
                                      cost_usd, is_current)
                VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s, true)
                ON CONFLICT (video_id, analyzer, model, prompt_version) DO UPDATE
                   SET language = EXCLUDED.language, data = EXCLUDED.data, flags = EXCLUDED.flags,
                       usage = EXCLUDED.usage, cost_usd = EXCLUDED.cost_usd, is_current = true,
                       updated_at = now()
                """,
                (
                    video_id,
                    analysis["analyzer"],
                    analysis.get("model") or "",
                    analysis.get("prompt_version") or "",
                    analysis.get("language"),
                    _json(analysis.get("data") or {}),
                    _json(analysis.get("flags") or []),
                    _json(usage),
                    usage.get("cost_usd"),
                ),
            )

    def save_manifest(self, video_id: str, outputs_prefix: str, manifest: dict[str, Any]) -> None:
        with self.cursor() as cur:
            cur.execute(
                "UPDATE videos SET manifest = %s::jsonb, outputs_prefix = %s, updated_at = now() WHERE video_id = %s",
                (_json(manifest), outputs_prefix, video_id),
            )

    # -- reads for reports ----------------------------------------------------

    def stage_runs_for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Every stage attempt recorded under ``run_id``, oldest first (for the run summary)."""
        with self.cursor() as cur:
            cur.execute(
                "SELECT video_id, stage, try_number, status, started_at, seconds,"
                " details->>'reused_from' AS reused_from FROM stage_runs"
                " WHERE run_id = %s ORDER BY started_at, id",
                (run_id,),
            )
            return self._rows(cur)
