"""ObjectStoreHook: the bucket (or local folder) the pipeline reads and writes."""

from __future__ import annotations

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
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from botocore.config import Config

        from include.video_pipeline.storage.s3 import S3Store, botocore_config_kwargs

        # Retries, timeouts and the checksum behaviour S3-compatible stores accept.
        client_config = Config(**botocore_config_kwargs(self.settings))
        s3_hook = S3Hook(aws_conn_id=self.settings.aws_conn_id, config=client_config)
        if self.settings.s3_endpoint_url and not s3_hook.conn_config.endpoint_url:
            client = s3_hook.get_session().client(
                "s3",
                endpoint_url=self.settings.s3_endpoint_url,
                region_name=self.settings.s3_region or s3_hook.conn_region_name,
                config=client_config,
            )
        else:
            client = s3_hook.get_conn()
        return S3Store(client, self.settings.bucket)
