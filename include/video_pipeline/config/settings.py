"""The pipeline's settings and ``load_settings``, which reads them all from the environment once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from include.video_pipeline.config.analysis import AnalysisSettings, load_analysis_settings
from include.video_pipeline.config.readers import (
    ConfigError,
    read_bool,
    read_choice,
    read_float,
    read_heights,
    read_int,
    read_prefix,
    read_str,
)
from include.video_pipeline.core.states import Prefixes

PROJECT_ROOT = Path(__file__).resolve().parents[3]

# Airflow fails the producing task when a mapped list exceeds max_map_length
# (1024 by default); stay well below it and leave the rest for the next run.
MAX_BATCH_SIZE = 1000

# gcs: Google Cloud Storage natively (JSON API, google_cloud_default or the VM's service
# account); s3 also reaches GCS, through its XML API with HMAC keys.
StorageKind = Literal["local", "s3", "gcs"]
WhisperBackend = Literal["faster-whisper", "openai-whisper"]


@dataclass(frozen=True)
class TranscodeSettings:
    max_height: int = 720
    preset: str = "veryfast"
    crf: int = 23
    threads: int = 0  # 0 lets ffmpeg decide (all cores)
    timeout_factor: float = 4.0  # seconds of wall time allowed per second of media ...
    timeout_floor_seconds: int = 120  # ... but never less than this
    max_upload_bytes: int = 10 * 1024**3
    max_duration_seconds: int = 4 * 3600
    max_video_pixels: int = 8192 * 8192  # width x height of one frame; refuses decompression bombs
    # An HLS rendition ladder next to video.mp4 (outputs/<id>/hls/master.m3u8); off by default.
    hls: bool = False
    hls_renditions: tuple[int, ...] = (360, 720, 1080)  # short-side heights; never above the source's
    hls_segment_seconds: int = 4


@dataclass(frozen=True)
class WhisperSettings:
    backend: WhisperBackend = "faster-whisper"
    model: str = "small"  # a model name or a local path to converted weights
    device: str = "auto"
    compute_type: str = "auto"  # int8 on CPU, float16 on CUDA
    language: str | None = None  # None: detect
    beam_size: int = 5
    vad: bool = True
    word_timestamps: bool = False
    download_root: str | None = None
    cpu_threads: int = 0
    timeout_factor: float = 3.0  # seconds of decoding allowed per second of audio ...
    timeout_floor_seconds: int = 300  # ... but never less than this


@dataclass(frozen=True)
class Settings:
    storage: StorageKind = "local"
    local_root: Path = PROJECT_ROOT / ".data" / "storage"
    bucket: str = "videos"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # boto3 >= 1.36 sends CRC checksums on every upload and checks the full-object
    # checksum on every download; many S3-compatible stores (and AWS itself for
    # objects uploaded in parts, then copied) report one that does not match the
    # bytes. "when_required" is what they all accept (docs/buckets.md).
    s3_request_checksum: Literal["when_required", "when_supported"] = "when_required"
    s3_response_checksum: Literal["when_required", "when_supported"] = "when_required"
    aws_conn_id: str = "aws_default"
    prefixes: Prefixes = field(default_factory=Prefixes)
    output_prefix: str = "outputs/"
    staging_prefix: str = "staging/"
    results_conn_id: str = "postgres_default"
    batch_size: int = 100
    work_dir: Path = Path(tempfile.gettempdir()) / "video-pipeline"
    sensor_poke_seconds: int = 60
    # How long an hourly run waits for an upload before ending with its tasks skipped
    # (a little under the hour, so one run ends before the next is due).
    sensor_window_seconds: int = 55 * 60
    sensor_deferrable: bool = False
    processing_lease_seconds: int = 6 * 3600
    task_retries: int = 2  # per stage task, for infrastructure errors; bad input is never retried
    retry_delay_seconds: int = 30  # the first retry's delay; it doubles on each later retry
    transcode: TranscodeSettings = field(default_factory=TranscodeSettings)
    whisper: WhisperSettings = field(default_factory=WhisperSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)

    @property
    def location(self) -> str:
        """Where uploads live, for messages: a folder path, ``s3://bucket`` or ``gs://bucket``."""
        if self.storage == "local":
            return str(self.local_root)
        return f"{'gs' if self.storage == 'gcs' else 's3'}://{self.bucket}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: ``os.environ``); raises ConfigError on bad values."""
    env = os.environ if env is None else env
    bucket = read_str(env, "VIDEO_PIPELINE_BUCKET", "S3_INPUT_BUCKET")
    # gs://name (or s3://name) names the bucket and its kind at once: on a GCE VM
    # VIDEO_PIPELINE_BUCKET=gs://my-videos is the whole storage configuration.
    kind_of_uri = None
    if bucket and "://" in bucket:
        scheme, _, name = bucket.partition("://")
        kind_of_uri = {"gs": "gcs", "s3": "s3"}.get(scheme.lower())
        if kind_of_uri is None or not name.strip("/") or "/" in name.strip("/"):
            raise ConfigError(f"VIDEO_PIPELINE_BUCKET must be a bucket name, gs://name or s3://name; got {bucket!r}")
        bucket = name.strip("/")
    storage_default = kind_of_uri or ("s3" if bucket else "local")
    storage = read_choice(env, "VIDEO_PIPELINE_STORAGE", storage_default, ("local", "s3", "gcs"))
    if kind_of_uri and storage != kind_of_uri:
        raise ConfigError(f"VIDEO_PIPELINE_BUCKET is a {kind_of_uri} URI but VIDEO_PIPELINE_STORAGE={storage}")
    if storage in ("s3", "gcs") and not bucket:
        raise ConfigError(f"VIDEO_PIPELINE_STORAGE={storage} needs VIDEO_PIPELINE_BUCKET (or S3_INPUT_BUCKET)")

    prefixes = Prefixes(
        pending=read_prefix(env, "VIDEO_PIPELINE_PENDING_PREFIX", "pending/"),
        processing=read_prefix(env, "VIDEO_PIPELINE_PROCESSING_PREFIX", "processing/"),
        completed=read_prefix(env, "VIDEO_PIPELINE_COMPLETED_PREFIX", "completed/"),
        failed=read_prefix(env, "VIDEO_PIPELINE_FAILED_PREFIX", "failed/"),
    )
    transcode = TranscodeSettings(
        max_height=read_int(env, "VIDEO_PIPELINE_MAX_HEIGHT", 720, minimum=144, maximum=4320),
        preset=read_choice(
            env,
            "VIDEO_PIPELINE_X264_PRESET",
            "veryfast",
            ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"),
        ),
        crf=read_int(env, "VIDEO_PIPELINE_X264_CRF", 23, minimum=0, maximum=51),
        threads=read_int(env, "VIDEO_PIPELINE_FFMPEG_THREADS", 0, minimum=0, maximum=256),
        timeout_factor=read_float(env, "VIDEO_PIPELINE_TIMEOUT_FACTOR", 4.0, minimum=0.1),
        timeout_floor_seconds=read_int(env, "VIDEO_PIPELINE_TIMEOUT_FLOOR_SECONDS", 120, minimum=1),
        max_upload_bytes=read_int(env, "VIDEO_PIPELINE_MAX_UPLOAD_BYTES", 10 * 1024**3, minimum=1),
        max_duration_seconds=read_int(env, "VIDEO_PIPELINE_MAX_DURATION_SECONDS", 4 * 3600, minimum=1),
        max_video_pixels=read_int(env, "VIDEO_PIPELINE_MAX_VIDEO_PIXELS", 8192 * 8192, minimum=16 * 16),
        hls=read_bool(env, "VIDEO_PIPELINE_HLS", False),
        hls_renditions=read_heights(env, "VIDEO_PIPELINE_HLS_RENDITIONS", TranscodeSettings.hls_renditions),
        hls_segment_seconds=read_int(env, "VIDEO_PIPELINE_HLS_SEGMENT_SECONDS", 4, minimum=1, maximum=30),
    )
    whisper = WhisperSettings(
        backend=read_choice(  # type: ignore[arg-type]
            env, "VIDEO_PIPELINE_WHISPER_BACKEND", "faster-whisper", ("faster-whisper", "openai-whisper")
        ),
        model=read_str(env, "VIDEO_PIPELINE_WHISPER_MODEL", default="small") or "small",
        device=read_choice(env, "VIDEO_PIPELINE_WHISPER_DEVICE", "auto", ("auto", "cpu", "cuda")),
        compute_type=read_str(env, "VIDEO_PIPELINE_WHISPER_COMPUTE_TYPE", default="auto") or "auto",
        language=read_str(env, "VIDEO_PIPELINE_WHISPER_LANGUAGE"),
        beam_size=read_int(env, "VIDEO_PIPELINE_WHISPER_BEAM_SIZE", 5, minimum=1, maximum=20),
        vad=read_bool(env, "VIDEO_PIPELINE_WHISPER_VAD", True),
        word_timestamps=read_bool(env, "VIDEO_PIPELINE_WHISPER_WORD_TIMESTAMPS", False),
        download_root=read_str(env, "VIDEO_PIPELINE_WHISPER_DOWNLOAD_ROOT"),
        cpu_threads=read_int(env, "VIDEO_PIPELINE_WHISPER_CPU_THREADS", 0, minimum=0, maximum=256),
        timeout_factor=read_float(env, "VIDEO_PIPELINE_WHISPER_TIMEOUT_FACTOR", 3.0, minimum=0.01),
        timeout_floor_seconds=read_int(env, "VIDEO_PIPELINE_WHISPER_TIMEOUT_FLOOR_SECONDS", 300, minimum=1),
    )
    analysis = load_analysis_settings(env)
    return Settings(
        storage=storage,  # type: ignore[arg-type]
        local_root=Path(
            read_str(env, "VIDEO_PIPELINE_LOCAL_ROOT", default=str(Settings.local_root)) or ""
        ).expanduser(),
        bucket=bucket or "videos",
        s3_endpoint_url=read_str(env, "VIDEO_PIPELINE_S3_ENDPOINT_URL", "S3_INPUT_ENDPOINT"),
        s3_region=read_str(env, "VIDEO_PIPELINE_S3_REGION", "S3_INPUT_REGION", "AWS_DEFAULT_REGION"),
        s3_request_checksum=read_choice(  # type: ignore[arg-type]
            env, "VIDEO_PIPELINE_S3_REQUEST_CHECKSUM", "when_required", ("when_required", "when_supported")
        ),
        s3_response_checksum=read_choice(  # type: ignore[arg-type]
            env, "VIDEO_PIPELINE_S3_RESPONSE_CHECKSUM", "when_required", ("when_required", "when_supported")
        ),
        aws_conn_id=read_str(env, "VIDEO_PIPELINE_AWS_CONN_ID", default="aws_default") or "aws_default",
        prefixes=prefixes,
        output_prefix=read_prefix(env, "VIDEO_PIPELINE_OUTPUT_PREFIX", "outputs/"),
        staging_prefix=read_prefix(env, "VIDEO_PIPELINE_STAGING_PREFIX", "staging/"),
        results_conn_id=read_str(env, "VIDEO_PIPELINE_RESULTS_CONN_ID", default="postgres_default")
        or "postgres_default",
        batch_size=read_int(env, "VIDEO_PIPELINE_BATCH_SIZE", 100, minimum=1, maximum=MAX_BATCH_SIZE),
        work_dir=Path(read_str(env, "VIDEO_PIPELINE_WORK_DIR", default=str(Settings.work_dir)) or "").expanduser(),
        sensor_poke_seconds=read_int(env, "VIDEO_PIPELINE_SENSOR_POKE_SECONDS", 60, minimum=1),
        sensor_window_seconds=read_int(env, "VIDEO_PIPELINE_SENSOR_WINDOW_SECONDS", 55 * 60, minimum=1),
        sensor_deferrable=read_bool(env, "VIDEO_PIPELINE_SENSOR_DEFERRABLE", False),
        processing_lease_seconds=read_int(env, "VIDEO_PIPELINE_PROCESSING_LEASE_SECONDS", 6 * 3600, minimum=5),
        task_retries=read_int(env, "VIDEO_PIPELINE_TASK_RETRIES", 2, minimum=0, maximum=10),
        retry_delay_seconds=read_int(env, "VIDEO_PIPELINE_RETRY_DELAY_SECONDS", 30, minimum=1),
        transcode=transcode,
        whisper=whisper,
        analysis=analysis,
    )
