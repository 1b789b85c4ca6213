"""Read-only SQL over the ledger for the API: one video's status, recent videos, the library, search.

Beside the hook's own statements, so every table and column name is written on the
results-db side (``api/`` calls these and shapes the rows into its models). Module
functions rather than ResultsDbHook methods: the pipeline never needs these shapes,
and the API only ever reads. Each call takes a connection of its own from the
process-wide pool (``pool``), so the api-server's worker threads never share a
transaction, and a request does not pay for a new connection and a cold backend.
"""

from __future__ import annotations

from typing import Any

from include.video_pipeline.hooks.results_db import pool

_STATUS_SQL = """
SELECT v.video_id, v.bucket, v.source_key, v.size_bytes, v.state, v.outcome, v.claims,
       v.error, v.last_error, v.manifest, v.outputs_prefix,
       v.created_at, v.claimed_at, v.finished_at, v.updated_at,
       t.language AS t_language, t.language_probability AS t_language_probability, t.quality AS t_quality,
       t.backend AS t_backend, t.model AS t_model, t.duration_seconds AS t_duration_seconds,
       t.segment_count AS t_segment_count,
       a.analyzer AS a_analyzer, a.model AS a_model, a.language AS a_language, a.data AS a_data
  FROM videos v
  LEFT JOIN LATERAL (SELECT * FROM transcripts WHERE video_id = v.video_id AND is_current
                      ORDER BY updated_at DESC LIMIT 1) t ON true
  LEFT JOIN LATERAL (SELECT * FROM analyses WHERE video_id = v.video_id AND is_current
                      ORDER BY updated_at DESC LIMIT 1) a ON true
 WHERE v.video_id = %s
"""

_LIST_COLUMNS = (
    "video_id, source_key, size_bytes, state, outcome, error->>'reason' AS error_reason,"
    " error->>'message' AS error_message, created_at, claimed_at, finished_at, updated_at"
)


def _run(
    conn_id: str, sql: str, params: tuple[Any, ...] | dict[str, Any], *, setup: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Rows of one read-only statement (after ``setup``'s, in the same transaction) as dicts.

    On a pooled connection; a connection that broke under the statement (a restart
    between the pool's check and the query) is retried once on a fresh one: these
    statements only read.
    """
    for attempt in (1, 2):
        try:
            with pool.cursor(conn_id) as cur:
                for statement in setup:
                    cur.execute(statement)
                cur.execute(sql, params)
                names = [col[0] for col in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except Exception as exc:
            if attempt == 2 or not pool.connection_lost(exc):
                raise
    raise AssertionError("unreachable")


def video_status_row(conn_id: str, video_id: str) -> dict[str, Any] | None:
    rows = _run(conn_id, _STATUS_SQL, (video_id,))
    return rows[0] if rows else None


def recent_videos(conn_id: str, *, state: str | None, source_key: str | None, limit: int) -> list[dict[str, Any]]:
    """Most recently changed first; ``state`` and ``source_key`` narrow the list when given."""
    where: list[str] = []
    params: list[Any] = []
    if state is not None:
        where.append("state = %s")
        params.append(state)
    if source_key is not None:
        where.append("source_key = %s")
        params.append(source_key)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {_LIST_COLUMNS} FROM videos{clause} ORDER BY updated_at DESC, video_id LIMIT %s"
    return _run(conn_id, sql, (*params, limit))


# -- the library: the Videos page and GET /search ------------------------------------

_LIBRARY_SQL = """
SELECT v.video_id, v.source_key, v.state, v.outcome, v.size_bytes, v.claim_run_id,
       v.error->>'reason' AS error_reason, v.error->>'message' AS error_message,
       COALESCE(v.uploaded_at, v.created_at) AS arrived_at,
       v.created_at, v.claimed_at, v.finished_at, v.updated_at,
       t.duration_seconds, t.language,
       a.cost_usd, a.title, a.speakers
  FROM videos v
  LEFT JOIN LATERAL (SELECT duration_seconds, language FROM transcripts
                      WHERE video_id = v.video_id AND is_current ORDER BY updated_at DESC LIMIT 1) t ON true
  LEFT JOIN LATERAL (SELECT cost_usd, data->>'title_suggestion' AS title,
                            CASE WHEN jsonb_typeof(data->'speakers') = 'array' THEN data->'speakers' END AS speakers
                       FROM analyses
                      WHERE video_id = v.video_id AND is_current ORDER BY updated_at DESC LIMIT 1) a ON true
 {where}
 ORDER BY COALESCE(v.uploaded_at, v.created_at) DESC, v.video_id
 LIMIT %s
"""


def _filters(state: str | None, since: Any, until: Any) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if state is not None:
        where.append("v.state = %s")
        params.append(state)
    if since is not None:
        where.append("COALESCE(v.uploaded_at, v.created_at) >= %s")
        params.append(since)
    if until is not None:
        where.append("COALESCE(v.uploaded_at, v.created_at) < %s")
        params.append(until)
    return where, params


def library(conn_id: str, *, state: str | None, since: Any, until: Any, limit: int) -> list[dict[str, Any]]:
    """Newest arrivals first, with what the Videos page shows per row."""
    where, params = _filters(state, since, until)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return _run(conn_id, _LIBRARY_SQL.format(where=clause), (*params, limit))


# The most matches one query ranks; more means the words are too common to rank all
# of them within the page's time budget (the response says so: ``truncated``). Ranking
# reads each candidate's row, about one table page per candidate for a word said here
# and there, so the cap is what a common word costs: on the 10,000-video bench library
# 5,000 candidates took p95 80 ms, 2,000 43 ms and 1,000 36 ms (bench/README.md).
MAX_CANDIDATES = 2000

# Hits are marked with two control characters that no transcript contains, so the
# API can return the snippet as plain text parts and never as HTML.
HIT_START, HIT_END = "\x02", "\x03"

# Set in the search's transaction, before it: the query's words must be constants when
# the statement is planned, or PostgreSQL cannot tell a word said in a quarter of all
# segments from a rare one (see _SEARCH_SQL). psycopg 3 prepares a statement it ran
# five times on a connection, and a pooled connection runs it many times; a prepared
# statement may get a generic plan, made without the words.
_SEARCH_SETUP = ("SET LOCAL plan_cache_mode = force_custom_plan",)

_SEARCH_SQL = """
-- Not materialized: the parsed query is folded into a constant where it is used, so the
-- planner reads the words' frequencies from the index's statistics. A frequent word
-- (hundreds of thousands of matches) then scans the table in order and stops at the
-- cap after a few thousand rows, instead of building the GIN bitmap of every match
-- first; a rare word uses the index.
WITH q AS NOT MATERIALIZED (
    SELECT websearch_to_tsquery('russian', %(q)s) || websearch_to_tsquery('english', %(q)s)
           || websearch_to_tsquery('simple', %(q)s) AS query
), matches AS MATERIALIZED (
    -- At most MAX_CANDIDATES matches are ranked, ranked as they are read: only the
    -- rank and where the match is travel on, not each candidate's text and tsvector.
    SELECT d.id, d.video_id, d.kind, d.start_seconds,
           -- What was said comes before a video's name, summary and tags at equal relevance:
           -- the page is for finding the moment.
           ts_rank(d.tsv, q.query) * CASE WHEN d.kind = 'segment' THEN 1.0 ELSE 0.5 END AS rank
      FROM search_documents d {join}, q
     WHERE d.tsv @@ q.query {where}
     LIMIT %(candidates)s
), hits AS (
    SELECT m.id, m.video_id, m.kind, m.start_seconds, m.rank
      FROM matches m
     ORDER BY m.rank DESC, m.video_id, m.start_seconds NULLS FIRST
     LIMIT %(limit)s
)
SELECT h.video_id, h.kind, h.start_seconds, d.end_seconds, h.rank,
       (SELECT count(*) FROM matches) AS considered,
       ts_headline(d.config, d.body, q.query,
                   'StartSel=' || chr(2) || ', StopSel=' || chr(3)
                   || ', MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "') AS snippet,
       v.source_key, v.state, t.language, t.duration_seconds
  FROM hits h
  JOIN search_documents d ON d.id = h.id
  JOIN videos v ON v.video_id = h.video_id
  LEFT JOIN LATERAL (SELECT language, duration_seconds FROM transcripts
                      WHERE video_id = v.video_id AND is_current ORDER BY updated_at DESC LIMIT 1) t ON true, q
 ORDER BY h.rank DESC, h.video_id, h.start_seconds NULLS FIRST
"""


def _search_filters(state: str | None, since: Any, until: Any) -> tuple[str, dict[str, Any]]:
    where, params = _filters(state, since, until)
    named = {f"p{i}": value for i, value in enumerate(params)}
    clause = ""
    for i, condition in enumerate(where):
        clause += " AND " + condition.replace("%s", f"%(p{i})s")
    return clause, named


def search_sql(*, state: str | None, since: Any, until: Any) -> str:
    """The SQL of :func:`search` (bench/bench_search.py shows its plan)."""
    where = _search_filters(state, since, until)[0]
    # The ledger is only joined when a filter needs it: one less lookup per match.
    return _SEARCH_SQL.format(where=where, join="JOIN videos v USING (video_id)" if where else "")


def search_params(*, q: str, state: str | None, since: Any, until: Any, limit: int) -> dict[str, Any]:
    return {"q": q, "limit": limit, "candidates": MAX_CANDIDATES, **_search_filters(state, since, until)[1]}


def search(conn_id: str, *, q: str, state: str | None, since: Any, until: Any, limit: int) -> list[dict[str, Any]]:
    """Ranked hits over segments (with their time) and each video's name, title, summary and tags.

    The query is parsed with the Russian, English and simple configurations and
    the parses OR-ed: a document indexed with its own language's configuration
    matches the parse that stems the same way (the GIN index serves all three).
    """
    sql = search_sql(state=state, since=since, until=until)
    params = search_params(q=q, state=state, since=since, until=until, limit=limit)
    return _run(conn_id, sql, params, setup=_SEARCH_SETUP)


_RUN_OVERVIEW_SQL = """
SELECT v.video_id, v.source_key, v.state, v.error, v.media, v.outputs_prefix,
       t.language, t.language_probability, t.quality, t.text, a.analyzer, a.model,
       (a.usage->>'calls')::int AS analysis_calls
  FROM videos v
  LEFT JOIN transcripts t ON t.video_id = v.video_id AND t.is_current
  LEFT JOIN analyses a ON a.video_id = v.video_id AND a.is_current
 WHERE v.claim_run_id = %s
 ORDER BY v.source_key
"""


def run_overview(conn_id: str, run_id: str) -> list[dict[str, Any]]:
    """One row per video a run claimed, with its current transcript's and analysis's headline (make run prints it)."""
    return _run(conn_id, _RUN_OVERVIEW_SQL, (run_id,))
