"""Settings of the upload API, read from the environment next to the pipeline's own.

Kept out of ``config.py`` because only the api-server reads them; they are
documented in ``.env.example`` under "Upload API" all the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from include.video_pipeline.config import ConfigError

# The DAG whose permissions guard the API: whoever may trigger it may upload,
# whoever may read its runs may read the ledger.
DAG_ID = "video_pipeline"


@dataclass(frozen=True)
class ApiSettings:
    url_expiry_minutes: int = 60
    # Endpoint clients reach the bucket at, when it differs from the one Airflow
    # uses (http://minio:9000 inside compose, http://localhost:9000 outside).
    # The host is part of the signature, so the URL must be signed for it.
    public_endpoint_url: str | None = None
    default_list_limit: int = 50
    max_list_limit: int = 500


def load_api_settings(env: Mapping[str, str] | None = None) -> ApiSettings:
    env = os.environ if env is None else env
    raw = (env.get("VIDEO_PIPELINE_UPLOAD_URL_EXPIRY_MINUTES") or "").strip()
    expiry = ApiSettings.url_expiry_minutes
    if raw:
        try:
            expiry = int(raw)
        except ValueError:
            raise ConfigError(f"VIDEO_PIPELINE_UPLOAD_URL_EXPIRY_MINUTES must be an integer, got {raw!r}") from None
        # SigV4 presigned URLs are valid for at most 7 days.
        if not 1 <= expiry <= 7 * 24 * 60:
            raise ConfigError(f"VIDEO_PIPELINE_UPLOAD_URL_EXPIRY_MINUTES must be 1..10080, got {expiry}")
    public = (env.get("VIDEO_PIPELINE_UPLOAD_PUBLIC_ENDPOINT_URL") or "").strip() or None
    return ApiSettings(url_expiry_minutes=expiry, public_endpoint_url=public)
