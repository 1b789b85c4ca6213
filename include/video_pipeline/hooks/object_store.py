"""ObjectStoreHook: the bucket (or local folder) the pipeline reads and writes."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from include.video_pipeline.config import Settings
from include.video_pipeline.storage.base import ObjectStore


class ObjectStoreHook(BaseHook):
    """Builds the configured store: a local folder, or an S3-compatible bucket.

    For S3 the credentials and endpoint come from the Airflow connection
    ``aws_conn_id`` (through the amazon provider's ``S3Hook``, the same
    connection the sensor uses); ``VIDEO_PIPELINE_S3_ENDPOINT_URL`` overrides the
    endpoint for S3-compatible services when the connection does not set one.

    For GCS (``VIDEO_PIPELINE_STORAGE=gcs``) the client is the google provider's
    ``GCSHook`` on ``VIDEO_PIPELINE_GCP_CONN_ID`` (``google_cloud_default``), or
    the VM's service account when that connection does not exist.

    :param settings: the pipeline settings (``include.video_pipeline.config``).
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    hook_name = "Video pipeline object store"

    def __init__(self, *, settings: Settings):
        super().__init__()
        self.settings = settings
        self.aws_conn_id = settings.aws_conn_id  # what conn_name_attr names (Airflow reads it by that name)

    def get_store(self) -> ObjectStore:
        if self.settings.storage == "local":
            from include.video_pipeline.storage.local import LocalFolderStore

            return LocalFolderStore(self.settings.local_root)
        if self.settings.storage == "gcs":
            from include.video_pipeline.storage.gcs import GCSStore, gcs_hook

            return GCSStore(gcs_hook(self.settings.analysis.gcp_conn_id).get_conn(), self.settings.bucket)
        return self._s3_store()

    def _s3_store(self) -> ObjectStore:
        from include.video_pipeline.storage.s3 import S3Store

        return S3Store(self.s3_client(), self.settings.bucket)

    def s3_client(self, *, endpoint_url: str | None = None) -> Any:
        """The one place S3 clients are built: the store's, the API's presigner and the Outputs links.

        Credentials and region come from the Airflow connection ``aws_conn_id``; the
        endpoint is ``endpoint_url`` (the one browsers reach, for presigning), else the
        connection's, else ``VIDEO_PIPELINE_S3_ENDPOINT_URL``. On top of the
        connection's own ``config_kwargs`` every client gets the retries, timeouts and
        checksum behaviour S3-compatible stores accept (``botocore_config_kwargs``),
        path-style addressing on custom endpoints (MinIO, Beget and GCS's XML API do not
        all resolve bucket subdomains) and SigV4, so a presigned URL signs its
        ``Content-Type`` and ``Content-Length`` (api/presign.py). Building a client makes
        no request.
        """
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from botocore.config import Config

        from include.video_pipeline.storage.s3 import botocore_config_kwargs

        s3_hook = S3Hook(aws_conn_id=self.aws_conn_id)
        conn_config = s3_hook.conn_config
        endpoint = endpoint_url or conn_config.endpoint_url or self.settings.s3_endpoint_url
        config = (conn_config.botocore_config or Config()).merge(
            Config(**botocore_config_kwargs(self.settings), signature_version="s3v4")
        )
        if endpoint and not (config.s3 or {}).get("addressing_style"):
            config = config.merge(Config(s3={"addressing_style": "path"}))
        # None lets boto3 take the session's region (AWS_DEFAULT_REGION); S3 signs for us-east-1 without one.
        region = conn_config.region_name or self.settings.s3_region
        session = s3_hook.get_session(region_name=region)
        return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)
