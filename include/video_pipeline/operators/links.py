"""The "Outputs" button on every per-video task: where that video's results are.

Airflow 3 computes extra links in the worker when the task finishes and keeps
the URL in XCom for the UI, so the link is made where credentials exist: a
presigned URL of the video's ``report.html`` for S3 (valid for a week, the
longest SigV4 allows), or a ``file://`` URL of its outputs folder for local storage.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

PRESIGNED_SECONDS = 7 * 24 * 3600


class VideoOutputsLink(BaseOperatorLink):
    """Links a per-video task to its video's outputs."""

    name = "Outputs"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from include.video_pipeline.config import load_settings
        from include.video_pipeline.hooks.object_store import ObjectStoreHook
        from include.video_pipeline.staging import output_key

        video = getattr(operator, "video", None)
        if not isinstance(video, dict) or "video_id" not in video:
            return ""
        settings = load_settings()
        if settings.storage == "local":
            return (settings.local_root / output_key(settings, video["video_id"])).resolve().as_uri() + "/"
        store: Any = ObjectStoreHook(settings=settings).get_store()
        return str(
            store.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": store.bucket, "Key": output_key(settings, video["video_id"], "report.html")},
                ExpiresIn=PRESIGNED_SECONDS,
            )
        )
