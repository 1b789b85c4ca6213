"""What the grid shows for one video while its run is still going: the names of its tasks.

A task instance shows its ``rendered_map_index``. A task that runs renders its
``map_index_template``; the ones the scheduler skips never do, and are named by the cluster
policy as the scheduler creates them (``api/grid_names.py``) or, without it, by the run-end
listener (``api/run_notes.py``) once the run has finished. A ``LabelWatch`` reads Airflow's
metadata database while a run goes and keeps what the named video's task instances showed the
first time all of them had finished while the run had not, so a test can tell them apart.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg2

DAG_ID = "video_pipeline"
GROUP_TASKS = 4  # transcode, transcribe, analyze, publish
FINISHED = {"success", "skipped", "failed", "upstream_failed"}

# One statement, so "every task of the video finished" and "the run still running" hold together.
_WHILE_RUNNING = """
SELECT ti.task_id, ti.state, ti.rendered_map_index
FROM task_instance ti JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
WHERE dr.dag_id = %s AND dr.run_id = %s AND dr.state = 'running'
  AND ti.map_index = %s AND ti.task_id LIKE 'video.%%'
"""


class LabelWatch(threading.Thread):
    """Polls the metadata DB for the task instances of the video called ``name``.

    :param dsn: Airflow's metadata database.
    :param name: the video's file name, as the claim task lists it.
    :param run_id: the run to watch; None: the one that is running.

    ``finish()`` stops the watch and returns ``{task_id: rendered_map_index}`` as it stood
    with every task of the video finished and the run still running, or None if the watch
    never saw that moment.
    """

    def __init__(self, dsn: str, name: str, run_id: str | None = None, interval: float = 0.5):
        super().__init__(name=f"label-watch {name}", daemon=True)
        self.dsn, self.video_name, self.run_id, self.interval = dsn, name, run_id, interval
        self.labels: dict[str, str | None] | None = None
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            with psycopg2.connect(self.dsn) as conn:
                conn.autocommit = True
                with conn.cursor() as cur:
                    while self.labels is None and not self._stopping.wait(self.interval):
                        self._look(cur)
        except BaseException as exc:  # handed to the test by finish()
            self.error = exc

    def _look(self, cur: Any) -> None:
        run_id = self.run_id or _running_run(cur)
        index = _claimed_index(cur, run_id, self.video_name) if run_id else None
        if run_id is None or index is None:
            return
        cur.execute(_WHILE_RUNNING, (DAG_ID, run_id, index))
        rows = cur.fetchall()
        if len(rows) == GROUP_TASKS and all(state in FINISHED for _, state, _ in rows):
            self.labels = {task_id: label for task_id, _, label in rows}

    def finish(self) -> dict[str, str | None] | None:
        self._stopping.set()
        self.join(timeout=30)
        if self.error is not None:
            raise self.error
        return self.labels


def _running_run(cur: Any) -> str | None:
    cur.execute(
        "SELECT run_id FROM dag_run WHERE dag_id = %s AND state = 'running' ORDER BY id DESC LIMIT 1", (DAG_ID,)
    )
    row = cur.fetchone()
    return row[0] if row else None


def _claimed_index(cur: Any, run_id: str, name: str) -> int | None:
    """The map index of the video called ``name`` in the claim task's list."""
    cur.execute(
        "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'claim_uploads'"
        " AND key = 'return_value' AND map_index = -1",
        (DAG_ID, run_id),
    )
    row = cur.fetchone()
    if row is None:
        return None
    claimed = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return next((i for i, video in enumerate(claimed) if video.get("name") == name), None)
