"""Stopping a process and everything it started: its process group and its descendants.

``airflow standalone`` forks a scheduler, a dag-processor, a triggerer, an api-server and
LocalExecutor workers; some of them call setsid and leave the group. ``stop_group`` takes a
snapshot of the descendants before signalling (children are re-parented once their parent
dies) and matches them by start time, so a reused pid is never killed. Linux reads /proc;
elsewhere only the group is checked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STOP_GRACE_SECONDS = 20.0


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgrp, start time) of a process from /proc, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    if not Path("/proc").is_dir():  # not Linux: ask the kernel whether anyone is left
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for pid in _all_pids():
        stat = _stat(pid)
        if stat and stat[2] == pgid and stat[0] not in {"Z", "X"}:
            members.append(pid)
    return members


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root`` as pid -> start time (to survive pid reuse)."""
    if not Path("/proc").is_dir():
        return {}
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in _all_pids():
        stat = _stat(pid)
        if stat and stat[0] not in {"Z", "X"}:
            children.setdefault(stat[1], []).append((pid, stat[3]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def _still_running(snapshot: Mapping[int, int]) -> list[int]:
    alive = []
    for pid, started in snapshot.items():
        stat = _stat(pid)
        if stat and stat[3] == started and stat[0] not in {"Z", "X"}:
            alive.append(pid)
    return alive


def stop_group(process: subprocess.Popen[Any], grace: float = STOP_GRACE_SECONDS) -> bool:
    """Stop ``process`` and its whole process group: SIGTERM, wait ``grace`` s, then SIGKILL.

    Also covers descendants that left the group (setsid). Returns True when
    SIGTERM was enough.
    """
    pgid = process.pid
    # Taken before the signal: once the leader dies its children are re-parented.
    snapshot = descendants(process.pid)

    def left() -> list[int]:
        process.poll()  # reap the leader so it does not count as a member
        return sorted(set(group_members(pgid)) | set(_still_running(snapshot)))

    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    remaining = left()
    if remaining:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in _still_running(snapshot):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while left() and time.monotonic() < deadline:
            time.sleep(0.1)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    return not remaining
