"""The languages an analysis is written in: their names and how one is chosen.

Codes are normalised to ISO 639-1 (``"ru-RU"`` -> ``"ru"``); an analysis is in
the requested language, else the transcript's, else English.
"""

from __future__ import annotations

import re

from include.video_pipeline.core.transcript import Transcript

# English names: what the prompt asks for ("write in Russian") and what an English report shows.
LANGUAGE_NAMES: dict[str, str] = {
    "ru": "Russian",
    "en": "English",
    "uk": "Ukrainian",
    "be": "Belarusian",
    "kk": "Kazakh",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "pl": "Polish",
    "tr": "Turkish",
    "zh": "Chinese",
    "ja": "Japanese",
}
DEFAULT_LANGUAGE = "en"


def normalize_language(code: str | None) -> str | None:
    """``"ru-RU"`` / ``"RU"`` -> ``"ru"``; empty -> None."""
    if not code or not code.strip():
        return None
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]


def resolve_output_language(transcript: Transcript, requested: str | None = None) -> str:
    """The language the analysis is written in: an explicit request, else the transcript's.

    Russian videos get Russian analysis unless someone asks otherwise.
    """
    return normalize_language(requested) or normalize_language(transcript.language) or DEFAULT_LANGUAGE


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)
