"""Sensors that start a run when uploads are waiting in pending/.

Both honour the run's ``one_shot`` param: a one-shot run that finds nothing
skips at once instead of waiting for the window to close.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSkipException

from include.video_pipeline.config import ConfigError, load_settings
from include.video_pipeline.core.states import is_upload_key

log = logging.getLogger(__name__)


def reprocessing(context: Any) -> bool:
    """Backfill and reprocess runs work on finished videos: nothing needs to arrive."""
    from include.video_pipeline.operators.run_tasks import reprocess_mode

    return reprocess_mode(context) != "none"


def yield_to_queued_runs(context: Any) -> None:
    """A waiting hourly run steps aside when another run is queued behind it.

    With ``max_active_runs=1`` a run triggered by hand (a one-shot run, a
    reprocess, a backfill) cannot start while the hourly run's sensor waits up
    to 55 minutes, and the sensor would then take the uploads the user meant
    the manual run to process. So the scheduled run skips (the next hour's run
    waits again) and the queued one starts at once.
    """
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    if dag_run is None or getattr(run_type, "value", run_type) != "scheduled":
        return
    try:
        queued = context["ti"].get_dr_count(dag_id=dag_run.dag_id, states=["queued"])
    except Exception:  # an older execution API: keep waiting as before
        log.warning("Could not count queued runs; not yielding", exc_info=True)
        return
    if queued:
        raise AirflowSkipException(
            f"this hourly run yields to {queued} run(s) queued behind it (triggered by hand or a backfill): "
            "they process the pending uploads now; the next hourly run waits for uploads again"
        )


def _skip_if_one_shot(context: Any, found: bool, where: str) -> bool:
    if not found and context["params"].get("one_shot"):
        raise AirflowSkipException(f"one-shot run: nothing pending in {where}")
    return found


def pending_uploads_sensor(*, task_id: str, **kwargs: Any) -> BaseSensorOperator:
    """The sensor for the configured storage: ``S3KeySensor`` for S3, a folder sensor for local."""
    settings = load_settings()
    if settings.storage == "local":
        return LocalPendingSensor(task_id=task_id, **kwargs)
    if settings.storage == "gcs":
        return _gcs_pending_sensor(settings, task_id=task_id, **kwargs)

    if settings.sensor_deferrable and importlib.util.find_spec("aiobotocore") is None:
        # The triggerer polls S3 with aiobotocore, which pins botocore to an older
        # release than the one requirements.txt locks; it is not installed by default.
        raise ConfigError(
            "VIDEO_PIPELINE_SENSOR_DEFERRABLE=true needs the aiobotocore package on the triggerer and workers "
            "(`uv pip install aiobotocore`; note it pins botocore to an older release). Reschedule mode, the "
            "default, also frees the worker slot between pokes."
        )

    from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

    from include.video_pipeline.storage.s3 import botocore_config_kwargs

    class PendingUploadsS3KeySensor(S3KeySensor):
        """``S3KeySensor`` on ``pending/*`` (wildcard) that ends a one-shot run early.

        ``pending/*`` also matches the zero-byte ``pending/`` object a console's
        "create folder" writes, so the matches go through ``check_fn``: only an
        upload ends the wait, exactly as only an upload can be claimed.
        """

        def poke(self, context: Any) -> bool:
            yield_to_queued_runs(context)
            if reprocessing(context):
                return True
            return _skip_if_one_shot(
                context, super().poke(context), f"s3://{settings.bucket}/{settings.prefixes.pending}"
            )

    return PendingUploadsS3KeySensor(
        task_id=task_id,
        bucket_name=settings.bucket,
        bucket_key=f"{settings.prefixes.pending}*",
        wildcard_match=True,
        check_fn=has_upload,
        aws_conn_id=settings.aws_conn_id,
        # The same client settings as the pipeline's own (checksums S3-compatible stores accept).
        botocore_config=botocore_config_kwargs(settings),
        deferrable=settings.sensor_deferrable,
        **kwargs,
    )


def has_upload(files: list[dict[str, Any]], **_context: Any) -> bool:
    """``check_fn`` of the S3 sensor: True when a matched object is an upload, not a folder marker.

    Takes ``**context`` because the deferrable path calls it with the context.
    """
    prefixes = load_settings().prefixes
    return any(is_upload_key(str(f.get("Key", "")), prefixes) for f in files)


class LocalPendingSensor(BaseSensorOperator):
    """Waits for a file under the local storage's pending/ folder."""

    ui_color = "#fff7e6"

    def poke(self, context: Any) -> bool:
        from include.video_pipeline.storage.local import LocalFolderStore

        yield_to_queued_runs(context)
        if reprocessing(context):
            return True
        settings = load_settings()
        store = LocalFolderStore(settings.local_root)
        found = any(is_upload_key(obj.key, settings.prefixes) for obj in store.list(settings.prefixes.pending))
        return _skip_if_one_shot(context, found, str(settings.local_root / settings.prefixes.pending))


def _gcs_pending_sensor(settings: Any, *, task_id: str, **kwargs: Any) -> BaseSensorOperator:
    """The google provider's prefix sensor on ``pending/``, counting uploads only.

    It lists through the pipeline's own store (``GCSHook`` on the same
    connection, or the VM's service account), so a folder marker (a zero-byte
    ``pending/`` object made by the console) never ends the wait, exactly as
    it can never be claimed.
    """
    if settings.sensor_deferrable:
        # The provider's trigger counts every object under the prefix, folder markers included.
        raise ConfigError(
            "VIDEO_PIPELINE_SENSOR_DEFERRABLE=true is not supported with VIDEO_PIPELINE_STORAGE=gcs; "
            "reschedule mode (the default) also frees the worker slot between pokes"
        )
    from airflow.providers.google.cloud.sensors.gcs import GCSObjectsWithPrefixExistenceSensor

    class PendingUploadsGCSSensor(GCSObjectsWithPrefixExistenceSensor):
        """``GCSObjectsWithPrefixExistenceSensor`` on ``pending/`` that ends a one-shot run early."""

        def poke(self, context: Any) -> bool:
            from include.video_pipeline.hooks.object_store import ObjectStoreHook

            yield_to_queued_runs(context)
            if reprocessing(context):
                return True
            store = ObjectStoreHook(settings=settings).get_store()
            # any() stops at the first upload: one page of the listing in the common case.
            found = any(is_upload_key(obj.key, settings.prefixes) for obj in store.list(self.prefix))
            return _skip_if_one_shot(context, found, f"gs://{self.bucket}/{self.prefix}")

        def execute(self, context: Any) -> None:
            # The provider's sensor returns every matching name (XCom); claim lists pending/ itself.
            BaseSensorOperator.execute(self, context)

    return PendingUploadsGCSSensor(
        task_id=task_id,
        bucket=settings.bucket,
        prefix=settings.prefixes.pending,
        google_cloud_conn_id=settings.analysis.gcp_conn_id,
        deferrable=False,
        **kwargs,
    )
