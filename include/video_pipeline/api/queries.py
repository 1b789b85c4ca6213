"""Read-only SQL over the ledger for the API.

Kept here rather than on ResultsDbHook: the pipeline never needs these shapes,
and the API only ever reads. Each call opens and closes its own connection, so
the api-server's worker threads never share a psycopg2 transaction.
"""

from __future__ import annotations

from typing import Any

from include.video_pipeline.hooks.results_db import ResultsDbHook

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


def _run(conn_id: str, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    hook = ResultsDbHook(postgres_conn_id=conn_id)
    try:
        with hook.cursor() as cur:
            cur.execute(sql, params)
            names = [col[0] for col in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        hook.close()


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
