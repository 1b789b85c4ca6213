"""Registers the video pipeline's upload and status API and its "Outputs" task link with Airflow.

The app itself lives in ``include/video_pipeline/api``; the api-server mounts it
at ``/video-pipeline`` (docs at ``/video-pipeline/docs``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from include.video_pipeline.api.app import create_app
from include.video_pipeline.operators.links import VideoOutputsLink

URL_PREFIX = "/video-pipeline"


class VideoPipelinePlugin(AirflowPlugin):
    name = "video_pipeline"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Video pipeline uploads and status"}
    ]
    # The "Outputs" button on every per-video task (registered so the UI can show it).
    operator_extra_links: ClassVar[list[Any]] = [VideoOutputsLink()]
