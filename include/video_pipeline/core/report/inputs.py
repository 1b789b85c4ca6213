"""What the report is made from, and the names of the files it sits beside.

``ReportInput`` gathers everything the page shows (published transcript and
analysis, the upload's details, its sibling files); ``REPORT_NAME`` and the
sibling names are the ones ``publish`` gives the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.video_pipeline.core import outputs

# The report sits in a video's outputs folder and links its siblings by their names there.
REPORT_NAME = outputs.REPORT
VIDEO_FILE = outputs.VIDEO
POSTER_FILE = outputs.POSTER
SUBTITLES_FILE = outputs.TRANSCRIPT_VTT
DOWNLOAD_ORDER = outputs.DOWNLOAD_ORDER


@dataclass(frozen=True)
class ReportInput:
    """Everything the report shows, gathered by ``publish``.

    :param transcript: ``transcript.json`` as published (``Transcript.to_dict``).
    :param analysis: ``analysis.json`` as published (``AnalysisResult.to_dict``).
    :param video_file: the sibling to play, or None for audio-only uploads.
    :param files: names of the sibling files, for the downloads list.
    :param media_flags: what was odd about the upload (``{code: detail}``,
        :mod:`~include.video_pipeline.core.integrity`), shown as warnings.
    """

    video_id: str
    source_name: str
    transcript: Mapping[str, Any]
    analysis: Mapping[str, Any]
    processed_at: datetime
    source_size: int | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    video_file: str | None = VIDEO_FILE
    poster_file: str | None = POSTER_FILE
    subtitles_file: str | None = SUBTITLES_FILE
    files: Sequence[str] = field(default_factory=tuple)
    media_flags: Mapping[str, str] = field(default_factory=dict)
