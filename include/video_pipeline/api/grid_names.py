"""Every task instance of a video shows the video's file name in the grid, from the moment it exists.

A mapped task instance is listed by its ``rendered_map_index``. Airflow renders the
``map_index_template`` (``{{ video_label }}``, ``operators/base.py``) only in a task that
runs, so the tasks the scheduler skips after a rejected upload's (analyze, publish) or marks
``upstream_failed`` after a failure would show their index number: ``1``. A task cannot name
another: the execution API lets a task set only its own rendered map index (``ti:self``).

So the scheduler names them, from the claim task's XCom (the list the group is mapped over),
in its own session:

* ``name_new_instance``: the cluster policy's ``task_instance_mutation_hook``
  (``deploy/airflow/airflow_local_settings.py``), which Airflow calls as it creates each
  mapped task instance: every task of a video is named before it is queued or skipped;
* ``name_unnamed`` at the end of the run (``run_notes``), for a deployment without that policy.

A task that runs renders the same name itself.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from include.video_pipeline.api.settings import DAG_ID

log = logging.getLogger(__name__)

CLAIM_TASK_ID = "claim_uploads"
GROUP_PREFIX = "video."
# Airflow stores the rendered map index in a varchar(250), as VideoStageOperator's label.
MAX_LABEL_CHARS = 250


def label(video: dict[str, Any]) -> str:
    """The name a claimed video's task instances show: its file name."""
    name = str(video.get("name") or posixpath.basename(str(video.get("rel_key") or "")))
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"


def claimed(session: Any, dag_run: Any) -> list[dict[str, Any]]:
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


def _unnamed_group_instance(task_instance: Any, dag_run: Any) -> bool:
    return (
        getattr(dag_run, "dag_id", None) == DAG_ID
        and getattr(task_instance, "map_index", -1) >= 0
        and str(getattr(task_instance, "task_id", "")).startswith(GROUP_PREFIX)
        # The column itself: ``rendered_map_index`` is a read-only hybrid that falls back to the number.
        and getattr(task_instance, "_rendered_map_index", None) is None
    )


# The scheduler creates a task's instances for all videos of a run in one go (index 0 first),
# and calls the hook again whenever it refreshes one: the names are read once per task of a
# run, not once per instance. One tuple, replaced whole, so a reader never mixes two runs.
_last: tuple[tuple[int, str], list[str]] | None = None


def name_new_instance(task_instance: Any, dag_run: Any) -> None:
    """Give a new mapped task instance of a video its name (``task_instance_mutation_hook``).

    Airflow runs the hook inside the scheduler's transaction: nothing here opens a session or
    commits, and a problem is logged, never raised (the task then names itself when it runs).
    """
    if not _unnamed_group_instance(task_instance, dag_run):
        return
    from sqlalchemy.orm import object_session

    global _last
    try:
        session = object_session(dag_run)
        if session is None:
            return
        key = (dag_run.id, task_instance.task_id)
        last = _last
        if last is None or last[0] != key or task_instance.map_index == 0:
            with session.no_autoflush:
                last = _last = (key, [label(video) for video in claimed(session, dag_run)])
        labels = last[1]
        if task_instance.map_index < len(labels):
            task_instance._rendered_map_index = labels[task_instance.map_index]
    except Exception:
        log.warning("Could not name %s of run %s", task_instance, getattr(dag_run, "run_id", "?"), exc_info=True)


def name_unnamed(session: Any, dag_run: Any, videos: list[dict[str, Any]]) -> dict[int, list[Any]]:
    """Name the video's task instances still without a name; returns them all by map index."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

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
        if ti._rendered_map_index is None and ti.map_index < len(videos):
            ti._rendered_map_index = label(videos[ti.map_index])
    return by_index
