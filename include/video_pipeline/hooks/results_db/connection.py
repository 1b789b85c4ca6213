"""Reaching the results database: one connection per hook that survives a server restart, and the migrations.

:class:`ResultsDbConnection` is the base of every part of
:class:`~include.video_pipeline.hooks.results_db.ResultsDbHook`: a cursor is a
transaction (commit on success, rollback on error), a connection the server hung
up is replaced before use, and :meth:`~ResultsDbConnection.migrate` applies the
versioned SQL in ``include/video_pipeline/sql/`` once.
"""

from __future__ import annotations

import json
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from typing import Any

from airflow.providers.postgres.hooks.postgres import PostgresHook

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


class ResultsDbConnection(PostgresHook):
    """The results database's connection and schema; takes :class:`ResultsDbHook`'s parameters."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Not `_connection`: DbApiHook caches the Airflow Connection under that name.
        self._db_connection: Any = None

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
        conn = self._db_connection
        if conn is not None and not conn.closed and not _hung_up(conn):
            return conn
        if conn is not None:
            if not conn.closed:
                self.log.info("The results DB closed this task's connection (restart, failover?); reconnecting")
            with suppress(Exception):
                conn.close()
        self._db_connection = None
        deadline = time.monotonic() + _RECONNECT_SECONDS
        delay = 0.2
        while True:
            try:
                self._db_connection = self.get_conn()
                return self._db_connection
            except Exception as exc:
                if type(exc).__name__ != "OperationalError" or time.monotonic() + delay > deadline:
                    raise
                self.log.warning("Results DB unreachable (%s); reconnecting in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        if self._db_connection is not None and not self._db_connection.closed:
            self._db_connection.close()
        self._db_connection = None

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
