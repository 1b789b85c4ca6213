"""The "Outputs" button on every per-video task: where that video's results are.

Airflow 3 computes extra links in the worker when the task finishes and keeps
the URL in XCom for the UI, so the link is made where credentials exist: a
presigned URL of the video's ``report.html`` for S3 (valid for a week, the
longest SigV4 allows), or the plugin's ``/video-pipeline/outputs/<id>/report.html``
for local storage. The Airflow 3 UI only shows http(s) and same-origin links
(a ``file://`` URL leaves an empty "Extra Links" heading), and the plugin route
serves the folder behind Airflow's own login.

A rejected video has no outputs folder: its link opens the video in the
library page instead, where its reason and message are shown.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

from include.video_pipeline.core import outputs
from include.video_pipeline.pipeline.ui_links import library_url, local_outputs_url

PRESIGNED_SECONDS = 7 * 24 * 3600


def _rejected(settings: Any, video_id: str) -> bool:
    from include.video_pipeline.hooks.results_db import ResultsDbHook

    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    try:
        row = db.get_video(video_id)
    finally:
        db.close()
    return row is not None and (row["outcome"] == "failed" or row["state"] == "failed")


class VideoOutputsLink(BaseOperatorLink):
    """Links a per-video task to its video's outputs."""

    name = "Outputs"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from include.video_pipeline.config import load_settings
        from include.video_pipeline.hooks.object_store import ObjectStoreHook
        from include.video_pipeline.pipeline.staging import output_key

        video = getattr(operator, "video", None)
        if not isinstance(video, dict) or "video_id" not in video:
            return ""
        settings = load_settings()
        try:
            rejected = _rejected(settings, video["video_id"])
        except Exception:  # the link is a convenience: never fail a task over it
            rejected = False
        if rejected:
            return library_url(video["video_id"])
        if settings.storage == "local":
            return local_outputs_url(video["video_id"])
        store: Any = ObjectStoreHook(settings=settings).get_store()
        report_key = output_key(settings, video["video_id"], outputs.REPORT)
        if settings.storage == "gcs":
            return gcs_report_link(store, report_key)
        return str(store.presigned_url(report_key, expires_seconds=PRESIGNED_SECONDS))


def gcs_report_link(store: Any, key: str) -> str:
    """A V4 signed URL of ``key`` (a week, like S3's), or its Cloud Console page when the credentials cannot sign.

    The console page works for anyone allowed to read the bucket, so the button is never dead.
    """
    import logging
    from urllib.parse import quote

    from include.video_pipeline.storage.gcs import SigningUnavailable

    try:
        return str(store.presigned_url(key, expires_seconds=PRESIGNED_SECONDS))
    except SigningUnavailable as exc:
        logging.getLogger(__name__).warning("Outputs link: %s; linking the Cloud Console page instead", exc)
        return f"https://console.cloud.google.com/storage/browser/_details/{store.bucket}/{quote(key)}"
