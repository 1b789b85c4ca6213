"""The outputs folder of one video: every file's name, its key, and the type it is served as.

``outputs/<video id>/`` is what users browse, download and link to, and what the
library, the report and the manifest name; stages write the same names under
``staging/<video id>/`` first (pipeline/staging.py). Changing the layout means
changing this module only:

    outputs/<video id>/
      video.mp4                 the web-ready video (absent for audio-only uploads)
      poster.jpg                one frame, the player's poster
      thumbnails.jpg, .vtt      the scrubbing sprite and its cues
      hls/master.m3u8, ...      the optional HLS ladder (VIDEO_PIPELINE_HLS)
      transcript.{json,srt,vtt,txt}
      analysis.json
      report.html               the page a person opens
      manifest.json             written last: whoever finds it finds every file it lists
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from pathlib import PurePosixPath

VIDEO = "video.mp4"
POSTER = "poster.jpg"
THUMBNAILS = "thumbnails.jpg"
THUMBNAILS_VTT = "thumbnails.vtt"
TRANSCRIPT_STEM = "transcript"
TRANSCRIPT_JSON = "transcript.json"
TRANSCRIPT_VTT = "transcript.vtt"
ANALYSIS = "analysis.json"
REPORT = "report.html"
MANIFEST = "manifest.json"
HLS_DIR = "hls"
HLS_MASTER = "master.m3u8"
HLS_MASTER_PATH = f"{HLS_DIR}/{HLS_MASTER}"

# The stills an analysis model may look at (VIDEO_PIPELINE_ANALYSIS_MULTIMODAL).
IMAGES = (POSTER, THUMBNAILS)

# Files people download from the report, in the order they are listed. The
# thumbnail sprite and its cue file only serve players, so they are left out.
DOWNLOAD_ORDER = (
    VIDEO,
    "transcript.srt",
    TRANSCRIPT_VTT,
    "transcript.txt",
    TRANSCRIPT_JSON,
    ANALYSIS,
    POSTER,
    MANIFEST,
)

# Text is served as UTF-8 (Cyrillic transcripts), subtitles with the types players expect.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".wav": "audio/wav",
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
}


def transcript_name(extension: str) -> str:
    """``.srt`` -> ``transcript.srt``."""
    return f"{TRANSCRIPT_STEM}{extension}"


def content_type(name: str) -> str:
    """The Content-Type an output is stored and served with."""
    suffix = PurePosixPath(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def video_key(prefix: str, video_id: str, name: str = "") -> str:
    """``outputs/<video id>/<name>`` (or ``staging/...``); with no name, the folder itself."""
    return f"{prefix}{video_id}/{name}"


def listed_files(names: Iterable[str]) -> list[str]:
    """The files a report and a summary list: an HLS ladder is thousands of segments, so its master playlist only."""
    return sorted({n for n in names if not n.startswith(HLS_DIR + "/") or n == HLS_MASTER_PATH} | {MANIFEST})
