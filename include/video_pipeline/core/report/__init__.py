"""The per-video HTML report: one self-contained page beside the published files.

People open ``outputs/<video id>/report.html`` straight from the bucket, from a
local folder or through a presigned link, so the page:

* has no external resource at all (inline CSS and script, system fonts): it
  renders the same offline, behind a proxy, or in a bucket with no CORS;
* refers to its siblings (``video.mp4``, ``poster.jpg``, ...) by *relative*
  URL; a presigned link cannot reach them that way (each object needs its own
  signature), so whoever builds such a link passes the siblings' presigned URLs
  in the fragment (``#video=...&poster=...&subtitles=...``), which is never
  sent to the server and so never breaks the page's own signature;
* treats every string as hostile: file names, transcripts and model output are
  user content. Jinja2 autoescaping covers text and attributes, no user data is
  ever written inside the script, and a Content-Security-Policy that allows
  only this page's own script (by hash) stops anything that slipped through;
* speaks Russian when the analysis is in Russian (most of our users), else English.

Pure: no Airflow, no I/O beyond reading this package's own files; ``publish``
renders it and uploads the bytes.

The package re-exports its public API, so ``from include.video_pipeline.core.report
import X`` works for every name below; the code lives in one module per job:

* ``inputs``: ``ReportInput``, ``REPORT_NAME`` and the sibling file names, ``DOWNLOAD_ORDER``.
* ``labels``: ``LABELS``, ``QUALITY_TEXT``, ``ANALYSIS_FLAG_TEXT``, ``MEDIA_FLAG_TEXT``,
  ``RUSSIAN_LANGUAGE_NAMES``.
* ``formatting``: ``ui_language``, ``format_clock``, ``format_size``, ``format_date``, ``seek_seconds``.
* ``page``: ``TEMPLATE``, ``STYLE``, ``SCRIPT`` (read from ``templates/report.html``,
  ``assets/report.css`` and ``assets/report.js`` of this package) and
  ``CONTENT_SECURITY_POLICY``.
* ``render``: ``render_report``.

Tests that patch a module attribute must patch the submodule that holds it:
the names here are only re-exports.
"""

from include.video_pipeline.core.report.formatting import (
    format_clock,
    format_date,
    format_size,
    seek_seconds,
    ui_language,
)
from include.video_pipeline.core.report.inputs import (
    DOWNLOAD_ORDER,
    POSTER_FILE,
    REPORT_NAME,
    SUBTITLES_FILE,
    VIDEO_FILE,
    ReportInput,
)
from include.video_pipeline.core.report.labels import (
    ANALYSIS_FLAG_TEXT,
    LABELS,
    MEDIA_FLAG_TEXT,
    QUALITY_TEXT,
    RUSSIAN_LANGUAGE_NAMES,
)
from include.video_pipeline.core.report.page import CONTENT_SECURITY_POLICY, SCRIPT, STYLE, TEMPLATE
from include.video_pipeline.core.report.render import render_report

__all__ = [
    "ANALYSIS_FLAG_TEXT",
    "CONTENT_SECURITY_POLICY",
    "DOWNLOAD_ORDER",
    "LABELS",
    "MEDIA_FLAG_TEXT",
    "POSTER_FILE",
    "QUALITY_TEXT",
    "REPORT_NAME",
    "RUSSIAN_LANGUAGE_NAMES",
    "SCRIPT",
    "STYLE",
    "SUBTITLES_FILE",
    "TEMPLATE",
    "VIDEO_FILE",
    "ReportInput",
    "format_clock",
    "format_date",
    "format_size",
    "render_report",
    "seek_seconds",
    "ui_language",
]
