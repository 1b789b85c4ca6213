"""The ledger against a real PostgreSQL: claims are exclusive, results are versioned."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from include.video_pipeline.core.errors import FailureReport
from include.video_pipeline.hooks.results_db import ResultsDbHook
from tests.fixtures.net import free_port


def _claim(hook: ResultsDbHook, video_id: str = "clip-1", run_id: str = "run-a", etag: str = "e1") -> bool:
    return hook.claim(
        video_id=video_id,
        bucket="b",
        source_key="clip.mp4",
        etag=etag,
        size_bytes=10,
        run_id=run_id,
        lease_seconds=3600,
    )


def test_migrations_apply_once(results_db: ResultsDbHook):
    assert results_db.migrate() == []  # the fixture already applied them
    with results_db.cursor() as cur:
        cur.execute("SELECT name FROM schema_migrations")
        applied = sorted(r[0] for r in cur.fetchall())
    # Every file in sql/, each once (several engineers add migrations side by side).
    shipped = sorted(p.name for p in (Path(__file__).parents[2] / "include/video_pipeline/sql").glob("*.sql"))
    assert applied == shipped and applied[:3] == [
        "001_ledger_and_results.sql",
        "002_arrival_time_and_content_hash.sql",
        "003_media_flags.sql",
    ]


def test_media_flags_merge(results_db: ResultsDbHook):
    assert _claim(results_db, video_id="flags-1")
    results_db.add_media_flags("flags-1", {"audio_ends_early": "the sound ends 0.8 s before the picture"})
    results_db.add_media_flags("flags-1", {"several_audio_tracks": "2 audio tracks"})
    row = results_db.get_video("flags-1")
    assert row is not None and set(row["media_flags"]) == {"audio_ends_early", "several_audio_tracks"}


def test_a_video_is_claimed_once_even_by_concurrent_runs(results_db: ResultsDbHook):
    def attempt(run_id: str) -> bool:
        hook = ResultsDbHook(postgres_conn_id="postgres_default")
        try:
            return _claim(hook, run_id=run_id)
        finally:
            hook.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, [f"run-{i}" for i in range(16)]))
    assert results.count(True) == 1


def test_another_version_of_a_key_waits_while_one_is_processing(results_db: ResultsDbHook):
    assert _claim(results_db, video_id="v1", etag="old")
    assert not _claim(results_db, video_id="v2", etag="new", run_id="run-b")
    results_db.set_outcome("v1", "succeeded")
    results_db.finish("v1", "completed")
    assert _claim(results_db, video_id="v2", etag="new", run_id="run-b")


def test_a_finished_video_can_be_claimed_again(results_db: ResultsDbHook):
    assert _claim(results_db)
    report = FailureReport(stage="transcode", error_class="X", message="boom", attempt=1)
    assert results_db.set_outcome("clip-1", "failed", report)
    assert not results_db.set_outcome("clip-1", "succeeded")  # first decision wins
    results_db.finish("clip-1", "failed")
    assert _claim(results_db, run_id="run-b")
    row = results_db.get_video("clip-1")
    assert row["state"] == "processing" and row["claims"] == 2 and row["outcome"] is None


def test_release_claim_forgets_a_first_claim(results_db: ResultsDbHook):
    assert _claim(results_db)
    results_db.release_claim("clip-1", "run-a")
    assert results_db.get_video("clip-1") is None


def test_results_are_versioned_and_one_is_current(results_db: ResultsDbHook):
    assert _claim(results_db)
    base = {"backend": "faster-whisper", "language": "ru", "duration": 3.0, "segments": [], "text": "привет"}
    results_db.save_transcript("clip-1", {**base, "model": "tiny", "settings": {"beam": 5}})
    results_db.save_transcript("clip-1", {**base, "model": "small", "settings": {"beam": 5}})
    results_db.save_transcript("clip-1", {**base, "model": "small", "settings": {"beam": 5}})  # retry: upsert
    with results_db.cursor() as cur:
        cur.execute("SELECT model, is_current, text FROM transcripts ORDER BY id")
        assert cur.fetchall() == [("tiny", False, "привет"), ("small", True, "привет")]


def test_a_stale_listing_never_takes_over_a_video_finished_since(results_db: ResultsDbHook):
    """Run B listed pending/ before run A finished the same upload: B must not claim it."""
    listed_at = results_db.now()
    assert _claim(results_db, run_id="run-a")
    results_db.set_outcome("clip-1", "succeeded")
    results_db.finish("clip-1", "completed")
    assert not results_db.claim(
        video_id="clip-1",
        bucket="b",
        source_key="clip.mp4",
        etag="e1",
        size_bytes=10,
        run_id="run-b",
        lease_seconds=3600,
        listed_at=listed_at,
    )
    assert results_db.get_video("clip-1")["state"] == "completed"
    # A listing made after it finished (the same bytes uploaded again) may claim it.
    assert results_db.claim(
        video_id="clip-1",
        bucket="b",
        source_key="clip.mp4",
        etag="e1",
        size_bytes=10,
        run_id="run-c",
        lease_seconds=3600,
        listed_at=results_db.now(),
    )


# -- the api-server's connection pool (hooks/results_db/pool.py) -----------------------


def _backend_pid(conn_id: str = "postgres_default") -> int:
    from include.video_pipeline.hooks.results_db import queries

    return queries._run(conn_id, "SELECT pg_backend_pid() AS pid", ())[0]["pid"]


def test_the_api_reuses_its_connections(results_db: ResultsDbHook):
    from include.video_pipeline.hooks.results_db import pool

    first = _backend_pid()
    assert _backend_pid() == first and pool.idle_count("postgres_default") == 1
    # Threads at once each get a connection of their own; the pool keeps only a few idle.
    with ThreadPoolExecutor(max_workers=8) as ex:
        pids = list(ex.map(lambda _: _backend_pid(), range(40)))
    assert len(pids) == 40 and 1 <= pool.idle_count("postgres_default") <= pool.IDLE_CONNECTIONS


def test_a_pooled_connection_the_server_dropped_is_replaced(results_db: ResultsDbHook, monkeypatch):
    from include.video_pipeline.hooks.results_db import connection, pool

    pool.close_all()
    old = _backend_pid()
    with results_db.cursor() as cur:  # what a restart or an idle timeout does to the pooled connection
        cur.execute("SELECT pg_terminate_backend(%s)", (old,))
    time.sleep(0.2)
    new = _backend_pid()  # noticed before use
    assert new != old
    # Dropped under the statement itself (after the check before use): retried once, on a new connection.
    with results_db.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (new,))
    time.sleep(0.2)
    monkeypatch.setattr(connection, "_hung_up", lambda conn: False)
    assert _backend_pid() not in {old, new}


def test_the_pool_follows_the_connection_to_another_database(results_db: ResultsDbHook, postgres, monkeypatch):
    from include.video_pipeline.hooks.results_db import queries
    from tests.conftest import create_database

    def name() -> str:
        return queries._run("postgres_default", "SELECT current_database() AS db", ())[0]["db"]

    before = name()
    other = create_database(postgres, "other")
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", postgres.dsn(other))
    assert name() == other != before


def test_a_pooled_search_keeps_planning_with_its_words(results_db: ResultsDbHook):
    """psycopg 3 prepares a statement run five times on one connection; its plans stay custom (the words known)."""
    from include.video_pipeline.hooks.results_db import pool, queries

    pool.close_all()
    for _ in range(12):
        queries.search("postgres_default", q="бюджет", state=None, since=None, until=None, limit=5)
        queries.search("postgres_default", q="budget", state="completed", since=None, until=None, limit=5)
    rows = queries._run(
        "postgres_default",
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
        ("%search_documents%",),
    )
    assert [r["generic_plans"] for r in rows] == [0] * len(rows), rows


def test_an_unreachable_results_db_fails_with_the_driver_s_error(monkeypatch):
    """The reason a user reads is the database's: not an error of the hook's own bookkeeping.

    The hook once kept its psycopg connection in the attribute where Airflow's DbApiHook caches
    the Airflow Connection; after a failed connect, close() then raised AttributeError
    ("'Connection' object has no attribute 'closed'") over the real OperationalError.
    """
    import include.video_pipeline.hooks.results_db.connection as connection_module

    port = free_port()  # nothing listens there

    monkeypatch.setattr(connection_module, "_RECONNECT_SECONDS", 0.5)
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", f"postgresql://u:p@127.0.0.1:{port}/db")
    hook = ResultsDbHook(postgres_conn_id="postgres_default")
    try:
        hook.migrate()
    except Exception as exc:
        error = exc
    else:
        raise AssertionError("migrate() reached a database that is not there")
    assert type(error).__name__ == "OperationalError", repr(error)
    assert str(port) in str(error)
    hook.close()  # nothing to close, and no AttributeError
    assert hook.connection.port == port  # still Airflow's Connection, not a psycopg one


def test_the_hook_s_airflow_connection_stays_one_after_connecting(results_db: ResultsDbHook):
    with results_db.cursor() as cur:
        cur.execute("SELECT 1")
    assert results_db.connection.conn_type == "postgres"
    assert results_db.connection.get_uri().startswith("postgres")
