"""Airflow cluster policy for video-pipeline deployments (copied to /opt/airflow/config/).

Routes every task in the ``video_transcribe`` pool to the Celery queue named by
``VIDEO_PIPELINE_TRANSCRIBE_QUEUE`` (e.g. ``gpu``), so a GPU worker started with
``--queues gpu`` picks up transcriptions without the DAG knowing which machines exist.
Unset or empty: tasks keep the queue the DAG gave them (``default``).

The policy runs where DAGs are parsed (the dag-processor), so the variable must be set there;
only set it when a worker consumes that queue, or transcriptions wait in it forever.
"""

from __future__ import annotations

import os
from typing import Any

# The image puts the project on PYTHONPATH, so the policy reads the pool name where the DAG does.
from include.video_pipeline.core.pools import TRANSCRIBE


def task_policy(task: Any) -> None:
    queue = os.environ.get("VIDEO_PIPELINE_TRANSCRIBE_QUEUE", "").strip()
    if queue and task.pool == TRANSCRIBE.name:
        task.queue = queue
