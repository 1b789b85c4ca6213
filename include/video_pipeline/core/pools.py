"""The Airflow pools the DAG runs its stages in: one place for their names and size variables.

The DAG assigns the pools, and three places create or route them: ``make run``/``make up``
(``tools/airflow_env.py``), the Docker/Helm init job (``deploy/init/``) and the cluster policy
(``deploy/airflow/airflow_local_settings.py``). A pool that is not created leaves its tasks
queued forever, so all four read the names from here.

How many slots a pool gets by default depends on the machine, so each creator keeps its own
defaults: ``make run`` sizes for a laptop, the init job for a 4-vCPU VM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots_variable: str  # the environment variable that sizes it
    description: str
    legacy_slots_variable: str | None = None  # an earlier name of it, still honoured

    def slots_setting(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """``(variable, value)`` of the variable that sizes this pool in ``env``, or None when unset."""
        for variable in (self.slots_variable, self.legacy_slots_variable):
            if variable and env.get(variable, "").strip():
                return variable, env[variable].strip()
        return None


TRANSCODE = PoolSpec(
    "video_transcode", "VIDEO_PIPELINE_TRANSCODE_POOL_SLOTS", "ffmpeg transcodes running at once (CPU-bound)"
)
TRANSCRIBE = PoolSpec(
    "video_transcribe", "VIDEO_PIPELINE_TRANSCRIBE_POOL_SLOTS", "Whisper transcriptions running at once (CPU/GPU-bound)"
)
# Gemini, Vertex AI and OpenAI-compatible calls all draw from it. Until 2026-12 it was called
# ``gemini_api``: the init job and ``make up`` create this one (an old pool is left unused), and
# the old size variable still sizes it.
ANALYSIS = PoolSpec(
    "video_analysis",
    "VIDEO_PIPELINE_ANALYSIS_POOL_SLOTS",
    "concurrent analysis API calls, any provider (quota-bound)",
    legacy_slots_variable="VIDEO_PIPELINE_GEMINI_POOL_SLOTS",
)

ALL_POOLS = (TRANSCODE, TRANSCRIBE, ANALYSIS)


def pools_import_document(slots: Mapping[PoolSpec, int]) -> str:
    """The file ``airflow pools import`` reads: one CLI call (an Airflow start-up) for every pool.

    ``include_deferred`` stays off, as ``airflow pools set`` leaves it: a task that defers (a stage
    waiting for a duplicate, an analysis waiting for its batch) gives its slot back.
    """
    return json.dumps(
        {
            spec.name: {"slots": count, "description": spec.description, "include_deferred": False}
            for spec, count in slots.items()
        }
    )
