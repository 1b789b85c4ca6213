"""Puts each run's failures where a user looks: notes on the run and its tasks, names in the grid.

A rejected upload skips its group and the run stays green, so without this the
reason is an INFO line in a collapsed log group. When a ``video_pipeline`` run
finishes, this listener (registered by the plugin; Airflow calls dag-run
listeners in the scheduler, inside the session that records the run's new state)

* writes a run note: how many videos completed and failed, and why each failed,
  by the user's file name;
* writes that reason as the note of each of the failed video's task instances;
* names any of the video's task instances still without a name (``grid_names``:
  the cluster policy names them as they are created; this covers a deployment
  without it).

Everything goes through the scheduler's own session: a second session could wait
on the row locks the scheduler holds on this very run. A problem here is logged
and never affects the run.
"""

from __future__ import annotations

import json
import logging
import posixpath
from typing import Any

from airflow.listeners import hookimpl

from include.video_pipeline.api import grid_names
from include.video_pipeline.api.settings import DAG_ID
from include.video_pipeline.core.states import safe_name

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 1000  # Airflow's note column holds 1000 characters


def user_message(message: str | None, source_key: str) -> str:
    """The error message with the work copy's sanitised file name replaced by the user's.

    Stages read the upload from a local copy named ``safe_name(key)`` + extension
    (``staging.fetch_source``), so ffprobe's complaint names ``bad-upload.mp4``
    where the user uploaded ``bad upload.mp4``.
    """
    name = posixpath.basename(source_key)
    text = message or ""
    stem = safe_name(source_key)
    extension = posixpath.splitext(name)[1].lower()
    for local in (f"{stem}{extension}", stem):
        if local and local != name and local in text:
            return text.replace(local, name)
    return text


def failure_line(row: dict[str, Any]) -> str:
    """``bad upload.mp4: not_media: bad upload.mp4 is not a video or audio file``."""
    error = row.get("error") or row.get("last_error") or {}
    if isinstance(error, str):
        try:
            error = json.loads(error)
        except ValueError:
            error = {"message": error}
    name = posixpath.basename(row["source_key"])
    reason = error.get("reason") or error.get("error_class") or "failed"
    message = user_message(error.get("message"), row["source_key"])
    return f"{name}: {reason}: {message}" if message else f"{name}: {reason}"


def run_note(rows: list[dict[str, Any]]) -> str:
    completed = [r for r in rows if r["state"] == "completed"]
    failed = [r for r in rows if r["state"] == "failed" or r.get("outcome") == "failed"]
    lines = [f"{len(rows)} video(s): {len(completed)} completed, {len(failed)} failed."]
    lines += [f"- ✗ {failure_line(row)}" for row in failed]
    note = "\n".join(lines)
    return note if len(note) <= MAX_NOTE_CHARS else note[: MAX_NOTE_CHARS - 1] + "…"


def annotate(dag_run: Any) -> None:
    """Notes and labels for one finished run (see the module docstring)."""
    from sqlalchemy.orm import object_session

    from include.video_pipeline.config import load_settings
    from include.video_pipeline.hooks.results_db import ResultsDbHook

    session = object_session(dag_run)
    if session is None:
        return
    claimed = grid_names.claimed(session, dag_run)
    if not claimed:
        return
    settings = load_settings()
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    try:
        rows = {row["video_id"]: row for row in db.videos_for_run(dag_run.run_id)}
    finally:
        db.close()

    by_index = grid_names.name_unnamed(session, dag_run, claimed)
    for index, video in enumerate(claimed):
        row = rows.get(str(video.get("video_id")))
        if row is None or not (row["state"] == "failed" or row.get("outcome") == "failed"):
            continue
        for ti in by_index.get(index, []):
            if not ti.note:
                ti.note = failure_line(row)[:MAX_NOTE_CHARS]
    if rows and not dag_run.note:
        dag_run.note = run_note(list(rows.values()))


def _safely(dag_run: Any) -> None:
    if getattr(dag_run, "dag_id", None) != DAG_ID:
        return
    try:
        annotate(dag_run)
    except Exception:
        log.warning("Could not write the notes of run %s", getattr(dag_run, "run_id", "?"), exc_info=True)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _safely(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _safely(dag_run)
