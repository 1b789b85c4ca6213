"""Registers the video pipeline's parts of the Airflow UI and api-server.

* the upload, status, library and search API at ``/video-pipeline``
  (docs at ``/video-pipeline/docs``), from ``include/video_pipeline/api``;
* the "Videos" page in the UI's navigation: an external view that the UI shows
  in a frame, served by that same app at ``/video-pipeline/ui/``;
* the "Outputs" task link;
* a listener that writes each run's failures into run and task notes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from include.video_pipeline.api import run_notes
from include.video_pipeline.api.app import create_app
from include.video_pipeline.operators.links import VideoOutputsLink
from include.video_pipeline.pipeline.ui_links import URL_PREFIX

__all__ = ["URL_PREFIX", "VideoPipelinePlugin"]


class VideoPipelinePlugin(AirflowPlugin):
    name = "video_pipeline"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Video pipeline uploads, library and search"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Videos",
            "href": f"{URL_PREFIX}/ui/",
            "url_route": "videos",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
    # The "Outputs" button on every per-video task (registered so the UI can show it).
    operator_extra_links: ClassVar[list[Any]] = [VideoOutputsLink()]
    listeners: ClassVar[list[Any]] = [run_notes]
