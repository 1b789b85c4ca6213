"""A small process-wide pool of results-DB connections for the api-server's read-only queries.

Opening a PostgreSQL connection per request costs the api-server more than most
searches do: the connection itself, and a fresh backend that loads its catalog
caches while planning its first query (tens of milliseconds on a 2-core VM;
bench/README.md has the numbers). The pool keeps up to :data:`IDLE_CONNECTIONS`
idle :class:`ResultsDbHook` instances per Airflow connection id, each holding one
live connection, and hands each request one of its own:

* thread-safe: a hook (and its connection) belongs to one request at a time, so the
  api-server's worker threads never share a transaction;
* never more waiting than before: when every pooled connection is in use, a request
  opens one of its own, which is closed afterwards unless the pool has room;
* a restarted server, a failover or an idle timeout: the hook checks its connection
  before use and reconnects (``ResultsDbConnection._live_connection``), and a
  connection that failed in use is closed instead of returned;
* a changed connection (another host or database in the Airflow connection, a test's
  fresh database) is never served by an old connection: the pool is keyed by the
  connection's URI, read per request as before;
* a forked child never touches its parent's sockets.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from include.video_pipeline.hooks.results_db.connection import _sqlstate
from include.video_pipeline.hooks.results_db.hook import ResultsDbHook

# Idle connections kept per connection id and api-server process. Small: the API's
# queries take milliseconds, and every api-server worker process has a pool of its own.
IDLE_CONNECTIONS = 4

_lock = threading.Lock()
_idle: dict[tuple[str, str], list[ResultsDbHook]] = {}
# Hooks a forked child inherited: kept referenced, never closed (closing would end the
# parent's session on the shared socket) and never used.
_inherited: list[ResultsDbHook] = []


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    for hooks in _idle.values():
        _inherited.extend(hooks)
    _idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _target(conn_id: str) -> str:
    """What the connection id points at now (read each time, like a hook made per request)."""
    return str(ResultsDbHook.get_connection(conn_id).get_uri())


def _take(key: tuple[str, str]) -> ResultsDbHook:
    with _lock:
        hooks = _idle.get(key)
        if hooks:
            return hooks.pop()
        stale = [k for k in _idle if k[0] == key[0] and k != key]
        old = [hook for k in stale for hook in _idle.pop(k)]
    for hook in old:  # the connection id now points elsewhere
        with suppress(Exception):
            hook.close()
    return ResultsDbHook(postgres_conn_id=key[0])


def _give_back(key: tuple[str, str], hook: ResultsDbHook) -> None:
    with _lock:
        hooks = _idle.setdefault(key, [])
        if len(hooks) < IDLE_CONNECTIONS:
            hooks.append(hook)
            return
    hook.close()


@contextmanager
def cursor(conn_id: str) -> Iterator[Any]:
    """A cursor on a pooled connection, in a transaction that commits on success and rolls back on error.

    A connection that raised is closed, not pooled again: the next request gets a fresh one.
    """
    key = (conn_id, _target(conn_id))
    hook = _take(key)
    try:
        with hook.cursor() as cur:
            yield cur
    except BaseException:
        with suppress(Exception):
            hook.close()
        raise
    _give_back(key, hook)


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the connection broke (not that the statement failed): worth one retry.

    A server restart between the check before use and the statement, for instance. The
    drivers raise OperationalError (or InterfaceError) without a SQLSTATE for a dropped
    socket, or with class 08 or a shutdown code; a cancelled statement (57014) is not retried.
    """
    if not {cls.__name__ for cls in type(exc).__mro__} & {"OperationalError", "InterfaceError"}:
        return False  # psycopg 3 raises subclasses: AdminShutdown is an OperationalError
    code = _sqlstate(exc)
    return code is None or code.startswith("08") or code in {"57P01", "57P02", "57P03"}


def close_all() -> None:
    """Close every idle pooled connection (tests; a process that is done with the database)."""
    with _lock:
        hooks = [hook for pooled in _idle.values() for hook in pooled]
        _idle.clear()
    for hook in hooks:
        with suppress(Exception):
            hook.close()


def idle_count(conn_id: str | None = None) -> int:
    """How many idle connections the pool holds (for ``conn_id``, or in all)."""
    with _lock:
        return sum(len(hooks) for (cid, _), hooks in _idle.items() if conn_id is None or cid == conn_id)
