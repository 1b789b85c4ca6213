"""The stage cache: a duplicate upload (same bytes, any name) reuses stored results.

A stage's result is identified by what went into it: the bytes of its input
(the upload's SHA-256, or the transcript's for the analysis) and the stage's
settings. When a completed video already produced a result under the same key,
the stage copies that video's published files into its own staging area instead
of running ffmpeg, Whisper or Gemini again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from include.video_pipeline.config import Settings
from include.video_pipeline.staging import staging_key
from include.video_pipeline.storage.base import ObjectStore

log = logging.getLogger(__name__)

# Bump when a stage's outputs change shape, so old entries stop matching.
CACHE_VERSION = 1


def stage_cache_key(stage: str, input_sha256: str, settings: dict[str, Any]) -> str:
    payload = {"v": CACHE_VERSION, "stage": stage, "input": input_sha256, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def restore_cached_result(store: ObjectStore, settings: Settings, vid: str, hit: dict[str, Any]) -> dict[str, Any]:
    """Copy the earlier video's published files into this video's staging; returns the stage result."""
    result = dict((hit["details"] or {})["result"])
    for item in result.get("files", []):
        store.copy(f"{hit['outputs_prefix']}{item['name']}", staging_key(settings, vid, item["name"]))
    log.info("Reused the results of %s (same content and settings)", hit["video_id"])
    return result
