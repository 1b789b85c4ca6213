"""Addresses in the Airflow UI that the plugin serves: a video's outputs and its library page.

Operators (the task's "Outputs" link) and the plugin's API both build them, so
they live below both, in one place.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from include.video_pipeline.core import outputs

# Where plugins/video_pipeline_plugin.py mounts the app (one place: the plugin imports it).
URL_PREFIX = "/video-pipeline"


def ui_path(path: str) -> str:
    """``path`` below the plugin's prefix, below ``[api] base_url``'s path when Airflow sits under one."""
    from airflow.configuration import conf

    base = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return f"{base}{URL_PREFIX}{path}"


def local_outputs_url(video_id: str, name: str = outputs.REPORT) -> str:
    return ui_path(f"/outputs/{quote(video_id)}/{quote(name)}")


def library_url(video_id: str) -> str:
    return ui_path(f"/ui/?video={quote(video_id)}")
