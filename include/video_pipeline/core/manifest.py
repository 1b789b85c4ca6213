"""``manifest.json``: what a published video's outputs folder holds, built from the stages' results.

Pure: the publish step (``pipeline/publish.py``) gathers the inputs, writes the
manifest last, and so a manifest in ``outputs/<video id>/`` means every file it
lists is there, whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.video_pipeline.core import outputs
from include.video_pipeline.core.stage_outputs import FileEntry, MediaOutput, TranscriptOutput
from include.video_pipeline.core.transcript import model_identity

MANIFEST_VERSION = 1
MANIFEST_NAME = outputs.MANIFEST


@dataclass(frozen=True)
class ManifestInput:
    """Everything a manifest says, gathered by publish.

    :param transcript: ``transcript.json`` as published (a ``Transcript`` as a dict).
    :param analysis: ``analysis.json`` as published.
    :param report: the manifest entry of ``report.html``.
    :param files: the published files of the stages, each with its ``key`` in outputs/.
    """

    video_id: str
    source_key: str
    source_name: str
    source_size: int
    source_etag: str
    published_at: datetime
    run_id: str
    media: MediaOutput
    transcript_output: TranscriptOutput
    transcript: Mapping[str, Any]
    analysis: Mapping[str, Any]
    report: FileEntry
    files: list[FileEntry] = field(default_factory=list)
    media_flags: Mapping[str, str] = field(default_factory=dict)


def media_flags(media: MediaOutput, transcript: TranscriptOutput) -> dict[str, str]:
    """What the stages found odd about a playable upload.

    Carried in their results, so a duplicate that reused them publishes the same flags.
    """
    return {**media.media_flags, **transcript.media_flags}


def file_entry(name: str, data: bytes, content_type: str, key: str) -> FileEntry:
    """The manifest entry of a file publish writes itself (the report)."""
    return {
        "name": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": content_type,
        "key": key,
    }


def build_manifest(inp: ManifestInput) -> dict[str, Any]:
    """The manifest as a JSON object; the report is listed like any other file."""
    transcript, analysis = inp.transcript, inp.analysis
    return {
        "manifest_version": MANIFEST_VERSION,
        "video_id": inp.video_id,
        "source": {"key": inp.source_key, "name": inp.source_name, "size": inp.source_size, "etag": inp.source_etag},
        "published_at": inp.published_at.isoformat(timespec="seconds"),
        "run_id": inp.run_id,
        "media": inp.media.facts(),
        "video_outputs": bool(inp.media.has_video),
        "media_flags": dict(inp.media_flags),
        "transcript": {
            "language": transcript.get("language"),
            "quality": transcript.get("quality"),
            "backend": transcript.get("backend"),
            # Transcripts name their model so already; older or reused ones may hold a path.
            "model": model_identity(transcript.get("model")),
            "audio_track": inp.transcript_output.audio_track,
        },
        "analysis": {
            "analyzer": analysis.get("analyzer"),
            "model": analysis.get("model"),
            "prompt_version": analysis.get("prompt_version"),
            "made_by": analysis.get("made_by"),
        },
        "report": inp.report["key"],
        "files": sorted([*inp.files, inp.report], key=lambda f: str(f["name"])),
    }


def encode_manifest(manifest: Mapping[str, Any]) -> bytes:
    """``manifest.json``'s bytes: UTF-8, indented for people reading it in a bucket browser."""
    return json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
