"""Deployment settings, read once from the environment with defaults and validation.

Every variable is documented in ``.env.example``. Secrets (S3 keys, the Gemini
key, database passwords) are *not* settings: hooks read them from Airflow
connections or from the environment at the moment they need them, so they never
sit in an object that could be logged or pushed to XCom.

Names of the old Node.js pipeline (``S3_INPUT_BUCKET``, ``S3_INPUT_ENDPOINT``,
...) are accepted as fallbacks so an existing ``.env`` keeps working.

``settings`` holds ``Settings`` and ``load_settings``; ``analysis`` the analysis
provider's settings; ``readers`` the typed, validated reading of one variable.
"""

from include.video_pipeline.config.analysis import (
    DEFAULT_GEMINI_MODEL,
    GEMINI_BATCH_REQUESTS,
    AnalysisSettings,
    AnalyzerKind,
    GeminiBatchPolicy,
    GeminiSdk,
)
from include.video_pipeline.config.readers import ConfigError
from include.video_pipeline.config.settings import (
    MAX_BATCH_SIZE,
    PROJECT_ROOT,
    Settings,
    StorageKind,
    TranscodeSettings,
    WhisperBackend,
    WhisperSettings,
    load_settings,
)

__all__ = [
    "DEFAULT_GEMINI_MODEL",
    "GEMINI_BATCH_REQUESTS",
    "MAX_BATCH_SIZE",
    "PROJECT_ROOT",
    "AnalysisSettings",
    "AnalyzerKind",
    "ConfigError",
    "GeminiBatchPolicy",
    "GeminiSdk",
    "Settings",
    "StorageKind",
    "TranscodeSettings",
    "WhisperBackend",
    "WhisperSettings",
    "load_settings",
]
