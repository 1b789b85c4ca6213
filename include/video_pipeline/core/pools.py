"""The Airflow pools the DAG runs its stages in: one place for their names and size variables.

The DAG assigns the pools, and three places create or route them: ``make run``/``make up``
(``tools/airflow_env.py``), the Docker/Helm init job (``deploy/init/``) and the cluster policy
(``deploy/airflow/airflow_local_settings.py``). A pool that is not created leaves its tasks
queued forever, so all four read the names from here.

How many slots a pool gets by default depends on the machine, so each creator keeps its own
defaults: ``make run`` sizes for a laptop, the init job for a 4-vCPU VM.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots_variable: str  # the environment variable that sizes it
    description: str


TRANSCODE = PoolSpec(
    "video_transcode", "VIDEO_PIPELINE_TRANSCODE_POOL_SLOTS", "ffmpeg transcodes running at once (CPU-bound)"
)
TRANSCRIBE = PoolSpec(
    "video_transcribe", "VIDEO_PIPELINE_TRANSCRIBE_POOL_SLOTS", "Whisper transcriptions running at once (CPU/GPU-bound)"
)
# Named after Gemini when it was the only provider; Vertex AI and OpenAI-compatible calls draw
# from it too. Renaming it would leave existing deployments' analyze tasks without a pool.
ANALYSIS = PoolSpec(
    "gemini_api", "VIDEO_PIPELINE_GEMINI_POOL_SLOTS", "concurrent analysis API calls, any provider (quota-bound)"
)

ALL_POOLS = (TRANSCODE, TRANSCRIBE, ANALYSIS)
