"""
# video_pipeline

Turns every video dropped in the bucket's `pending/` prefix into web-ready media,
a transcript and an AI analysis.

**Flow per run** (hourly, or triggered by hand):

1. `wait_for_uploads` — waits for a file in `pending/` (S3KeySensor, or the local
   folder). If nothing arrives before the run's window closes, the run ends with
   its tasks *skipped*, not failed. A `one_shot` run skips at once.
2. `check_analysis_provider` — checks the analysis provider once (key, model,
   region, quota); when it cannot work the run stops here with the reason, and
   every upload stays in `pending/`.
3. `claim_uploads` — claims up to `batch_size` uploads in the PostgreSQL ledger
   (atomically: no upload is ever claimed by two runs) and moves them to
   `processing/`.
4. `video` (one mapped group per video, named after the file in the grid):
   `transcode` ∥ `transcribe` → `analyze` → `publish`. Transcode and transcribe
   start together from the same source; outputs land in `outputs/<video id>/`.
5. `reconcile` — always runs last: makes the bucket agree with the ledger,
   returns stale claims from dead runs, and logs a summary.

**Reprocessing:** `airflow backfill create --dag-id video_pipeline --from-date … --to-date …`
reprocesses the completed videos that *arrived* in each run's data interval (after a
model or prompt change); a manual run with `reprocess=failed` retries every failed
video, `reprocess=video` + `video_id` one video. Earlier result rows are kept; the
new ones become current. A duplicate upload (same bytes) reuses stored results.
With `VIDEO_PIPELINE_GEMINI_BATCH=reprocess` these runs analyse through the Gemini
Batch API (half price, answers within hours; `analyze` waits deferred, in the
triggerer); the `gemini_batch` param (`online`, `batch`) decides for one run.

**Where a video ends:** `completed/` on success; `failed/` with
`<name>.error.json` (stage, error class, message, attempt, time) on failure.

**How problems show:** a bad upload (empty, not media, corrupt, over a limit)
skips its group and the run stays green; an infrastructure error is retried and,
when retries run out, turns the run red. A provider quota that ran out puts the
video back in `pending/` for the next run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task, task_group
from airflow.timetables.interval import CronDataIntervalTimetable

from include.video_pipeline.config import GEMINI_BATCH_REQUESTS, MAX_BATCH_SIZE, load_settings
from include.video_pipeline.core import pools
from include.video_pipeline.operators.analyze import VideoAnalyzeOperator, provider_conn_id
from include.video_pipeline.operators.publish import VideoPublishOperator
from include.video_pipeline.operators.sensors import pending_uploads_sensor
from include.video_pipeline.operators.transcode import VideoTranscodeOperator
from include.video_pipeline.operators.transcribe import VideoTranscribeOperator

SETTINGS = load_settings()  # environment only: no I/O at parse time

default_args = {
    "owner": "video-pipeline",
    "retries": SETTINGS.task_retries,
    "retry_delay": timedelta(seconds=SETTINGS.retry_delay_seconds),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

# The Airflow connections every per-video task uses: the bucket (S3 or GCS) and
# the results database that is the ledger.
CONNECTIONS = {
    "aws_conn_id": SETTINGS.aws_conn_id,
    "gcp_conn_id": SETTINGS.analysis.gcp_conn_id,
    "postgres_conn_id": SETTINGS.results_conn_id,
}


@dag(
    dag_id="video_pipeline",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    doc_md=__doc__,
    tags=["video", "media", "transcription", "analysis"],
    render_template_as_native_obj=True,
    params={
        "one_shot": Param(
            False, type="boolean", description="Process what is pending now and finish; do not wait for uploads."
        ),
        "batch_size": Param(
            SETTINGS.batch_size,
            type="integer",
            minimum=1,
            maximum=MAX_BATCH_SIZE,
            description="Most uploads this run claims; the rest wait for the next run.",
        ),
        "language": Param(
            SETTINGS.whisper.language or "auto",
            type="string",
            description="Spoken language as an ISO code (ru, en, ...), or auto to detect it.",
        ),
        "reprocess": Param(
            "none",
            type="string",
            enum=["none", "failed", "video"],
            description="Reprocess finished videos instead of new uploads: every failed one, or one by video_id.",
        ),
        # Nullable, so the trigger form can be submitted with the defaults: a
        # plain "string" param with an empty default is marked required.
        "video_id": Param(
            None,
            type=["null", "string"],
            description="With reprocess=video: the id of the video (its outputs folder name). Empty otherwise.",
        ),
        "output_language": Param(
            SETTINGS.analysis.output_language or None,
            type=["null", "string"],
            description="Language of the analysis; empty means the transcript's language.",
        ),
        "gemini_batch": Param(
            "auto",
            type="string",
            enum=list(GEMINI_BATCH_REQUESTS),
            description="Gemini Batch API (half price, answers within hours instead of minutes): auto follows "
            "VIDEO_PIPELINE_GEMINI_BATCH (batches for reprocessing runs when it says reprocess); online or batch "
            "decide for this run (batch also for new uploads).",
        ),
    },
)
def video_pipeline() -> None:
    uploads_waiting = pending_uploads_sensor(
        task_id="wait_for_uploads",
        mode="reschedule",
        poke_interval=SETTINGS.sensor_poke_seconds,
        # The window a run waits for uploads: 55 minutes by default, so one run ends
        # before the next one is due.
        timeout=SETTINGS.sensor_window_seconds,
        soft_fail=True,
        retries=0,
    )

    @task(
        doc_md="Check the analysis provider once (key, model, region, quota) before anything is claimed; "
        "on failure the run stops with the reason and every upload stays in pending/."
    )
    def check_analysis_provider(**context: Any) -> dict[str, Any]:
        from include.video_pipeline.operators.preflight import check_analysis_provider as check

        return check(context)

    @task(doc_md="Claim uploads in the ledger and move them to processing/; returns ids and keys only.")
    def claim_uploads(**context: Any) -> list[dict[str, Any]]:
        from include.video_pipeline.operators.run_tasks import claim_uploads as claim

        return claim(context)

    @task_group(group_id="video")
    def process_video(video: Any) -> None:
        media = VideoTranscodeOperator(
            task_id="transcode",
            video=video,
            **CONNECTIONS,
            pool=pools.TRANSCODE.name,
            execution_timeout=timedelta(hours=6),
        )
        transcript = VideoTranscribeOperator(
            task_id="transcribe",
            video=video,
            **CONNECTIONS,
            pool=pools.TRANSCRIBE.name,
            execution_timeout=timedelta(hours=6),
        )
        analysis = VideoAnalyzeOperator(
            task_id="analyze",
            video=video,
            **CONNECTIONS,
            # Gemini's, Vertex AI's or the OpenAI-compatible server's, as the settings' analyzer says.
            analysis_conn_id=provider_conn_id(SETTINGS.analysis),
            transcript=transcript.output,
            # Multimodal: the poster and thumbnails are part of the input, so the analysis
            # waits for transcode (an XCom dependency) instead of racing it.
            media=media.output if SETTINGS.analysis.multimodal else None,
            pool=pools.ANALYSIS.name,
            execution_timeout=timedelta(minutes=30),
        )
        VideoPublishOperator(
            task_id="publish",
            video=video,
            **CONNECTIONS,
            media=media.output,
            transcript=transcript.output,
            analysis=analysis.output,
        )

    @task(
        trigger_rule="all_done",
        retries=3,
        doc_md="Make the bucket agree with the ledger; sweep stale claims; fail the run on infrastructure errors.",
    )
    def reconcile(**context: Any) -> dict[str, Any]:
        from include.video_pipeline.operators.run_tasks import reconcile as reconcile_run

        return reconcile_run(context)

    claimed = claim_uploads()
    uploads_waiting >> check_analysis_provider() >> claimed
    videos = process_video.expand(video=claimed)
    videos >> reconcile()


video_pipeline()
