"""The API's ledger queries, kept importable under their old name.

The SQL moved to :mod:`include.video_pipeline.hooks.results_db.queries`, beside the
hook's own statements, so that every table and column name is written on the
results-db side; ``api/`` itself imports it from there. This module only re-exports
it for callers outside the package that still import ``api.queries``
(``bench/bench_search.py`` times ``search_sql`` and ``search``).
"""

from __future__ import annotations

from include.video_pipeline.hooks.results_db.queries import (
    HIT_END,
    HIT_START,
    MAX_CANDIDATES,
    library,
    recent_videos,
    search,
    search_params,
    search_sql,
    video_status_row,
)

__all__ = [
    "HIT_END",
    "HIT_START",
    "MAX_CANDIDATES",
    "library",
    "recent_videos",
    "search",
    "search_params",
    "search_sql",
    "video_status_row",
]
