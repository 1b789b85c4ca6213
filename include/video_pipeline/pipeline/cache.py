"""The stage cache: a duplicate upload (same bytes, any name) reuses stored results.

A stage's result is identified by what went into it: the bytes of its input
(the upload's SHA-256, or the transcript's for the analysis) and the stage's
settings. When another video already produced a result under the same key, the
stage copies that video's files into its own staging area instead of running
ffmpeg, Whisper or Gemini again:

* a completed video's result is read from its published outputs;
* a duplicate in the same batch (still processing) is read from its staging
  area, or from its outputs if it published in the meantime (publish copies a
  file out before it deletes the staged one).

So that duplicates processed at the same time compute once, the first stage
attempt for a key takes a *lead* in the results database; the others find the
lead taken and wait for its result (``DuplicateInProgress``: the operator
defers, so a waiting duplicate holds no worker slot and no pool slot, and
unrelated videos go on). A lead is released when its stage ends, and expires
after ``LEAD_SECONDS`` should its worker die: then a waiting duplicate
computes the result itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from include.video_pipeline.config import Settings
from include.video_pipeline.pipeline.staging import output_key, staging_key
from include.video_pipeline.storage.base import ObjectStore

log = logging.getLogger(__name__)

# Bump when a stage's outputs change shape, so old entries stop matching.
CACHE_VERSION = 1
# How long a lead protects a computation from duplicates computing it too; a
# stage that runs longer is then computed by a waiting duplicate as well (the
# same result twice, never a wrong one).
LEAD_SECONDS = 3600
# How often a waiting duplicate looks for the leader's result.
WAIT_POLL_SECONDS = 10


class DuplicateInProgress(Exception):
    """Another video with the same input is computing this stage's result right now."""

    def __init__(self, leader: dict[str, Any]):
        super().__init__(
            f"{leader.get('video_id')} is computing the same result (lead until {leader.get('lease_expires_at')})"
        )
        self.leader = leader


def stage_cache_key(stage: str, input_sha256: str, settings: dict[str, Any]) -> str:
    payload = {"v": CACHE_VERSION, "stage": stage, "input": input_sha256, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _source_key(store: ObjectStore, settings: Settings, hit: dict[str, Any], name: str) -> str:
    """Where the earlier video's copy of ``name`` is now: its staging area or its outputs."""
    outputs = hit.get("outputs_prefix") or output_key(settings, hit["video_id"])
    candidates = [f"{outputs}{name}"]
    if hit.get("state") != "completed":
        candidates.insert(0, staging_key(settings, hit["video_id"], name))
    for key in candidates:
        if store.head(key) is not None:
            return key
    raise FileNotFoundError(f"{name} of {hit['video_id']} is in neither {' nor '.join(candidates)}")


def restore_cached_result(store: ObjectStore, settings: Settings, vid: str, hit: dict[str, Any]) -> dict[str, Any]:
    """Copy the earlier video's files into this video's staging; returns the stage result."""
    result = dict((hit["details"] or {})["result"])
    for item in result.get("files", []):
        store.copy(_source_key(store, settings, hit, item["name"]), staging_key(settings, vid, item["name"]))
    log.info("Reused the results of %s (same content and settings)", hit["video_id"])
    return result
