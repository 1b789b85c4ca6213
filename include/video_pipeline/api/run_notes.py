"""Puts each run's failures where a user looks: notes on the run and its tasks, names in the grid.

A rejected upload skips its group and the run stays green, so without this the
reason is an INFO line in a collapsed log group. When a ``video_pipeline`` run
finishes, this listener (registered by the plugin; Airflow calls dag-run
listeners in the scheduler, inside the session that records the run's new state)

* writes a run note: how many videos completed and failed, and why each failed,
  by the user's file name;
* writes that reason as the note of each of the failed video's task instances;
* gives the tasks that the scheduler skipped without running them the video's
  name as their map index label (a ``map_index_template`` is only rendered by
  a task that runs, so they would show ``1``).

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

from include.video_pipeline.api.settings import DAG_ID
from include.video_pipeline.core.states import safe_name

log = logging.getLogger(__name__)

CLAIM_TASK_ID = "claim_uploads"
GROUP_PREFIX = "video."
MAX_NOTE_CHARS = 1000  # Airflow's note column holds 1000 characters
MAX_LABEL_CHARS = 250  # as VideoStageOperator's label


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


def _claimed(session: Any, dag_run: Any) -> list[dict[str, Any]]:
    """The claim task's XCom: one dict per mapped group, in map-index order."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    row = session.execute(
        select(XComModel.value).where(
            XComModel.dag_run_id == dag_run.id,
            XComModel.task_id == CLAIM_TASK_ID,
            XComModel.key == "return_value",
            XComModel.map_index == -1,
        )
    ).first()
    value = XComModel.deserialize_value(row) if row is not None else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def annotate(dag_run: Any) -> None:
    """Notes and labels for one finished run (see the module docstring)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    from include.video_pipeline.config import load_settings
    from include.video_pipeline.hooks.results_db import ResultsDbHook

    session = object_session(dag_run)
    if session is None:
        return
    claimed = _claimed(session, dag_run)
    if not claimed:
        return
    settings = load_settings()
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    try:
        rows = {row["video_id"]: row for row in db.videos_for_run(dag_run.run_id)}
    finally:
        db.close()

    tis = session.scalars(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_run.dag_id,
            TaskInstance.run_id == dag_run.run_id,
            TaskInstance.task_id.startswith(GROUP_PREFIX),
            TaskInstance.map_index >= 0,
        )
    ).all()
    by_index: dict[int, list[Any]] = {}
    for ti in tis:
        by_index.setdefault(ti.map_index, []).append(ti)
    for index, video in enumerate(claimed):
        name = str(video.get("name") or posixpath.basename(str(video.get("rel_key") or "")))
        label = name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"
        row = rows.get(str(video.get("video_id")))
        failed = row is not None and (row["state"] == "failed" or row.get("outcome") == "failed")
        for ti in by_index.get(index, []):
            # The column itself: ``rendered_map_index`` is a read-only hybrid that
            # falls back to the index number.
            if ti._rendered_map_index is None:
                ti._rendered_map_index = label
            if failed and row is not None and not ti.note:
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
