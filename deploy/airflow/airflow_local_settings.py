"""Airflow cluster policy for video-pipeline deployments (copied to /opt/airflow/config/ in the
image; ``make up`` and ``make run`` put this folder on PYTHONPATH).

``task_policy`` routes every task in the ``video_transcribe`` pool to the Celery queue named by
``VIDEO_PIPELINE_TRANSCRIBE_QUEUE`` (e.g. ``gpu``), so a GPU worker started with
``--queues gpu`` picks up transcriptions without the DAG knowing which machines exist.
Unset or empty: tasks keep the queue the DAG gave them (``default``). It runs where DAGs are
parsed (the dag-processor), so the variable must be set there; only set it when a worker
consumes that queue, or transcriptions wait in it forever.

``task_instance_mutation_hook`` runs in the scheduler as it creates task instances: it names
each of a video's task instances after the video's file, so the grid shows the name also for
the tasks a rejected upload's group skips (``include/video_pipeline/api/grid_names.py``).
"""

from __future__ import annotations

import os
from typing import Any

# The image puts the project on PYTHONPATH, so the policy reads the names where the DAG does.
from include.video_pipeline.api.settings import DAG_ID
from include.video_pipeline.core.pools import TRANSCRIBE


def task_policy(task: Any) -> None:
    queue = os.environ.get("VIDEO_PIPELINE_TRANSCRIBE_QUEUE", "").strip()
    if queue and task.pool == TRANSCRIBE.name:
        task.queue = queue


def task_instance_mutation_hook(task_instance: Any, dag_run: Any = None) -> None:
    if getattr(dag_run, "dag_id", None) != DAG_ID:
        return  # another DAG's: nothing to import or read
    from include.video_pipeline.api.grid_names import name_new_instance

    name_new_instance(task_instance, dag_run)
