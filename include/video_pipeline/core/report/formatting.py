"""Formatting for the report: UI language, clock times, sizes, dates and seek values.

Pure helpers that turn published values (which may be missing, negative, NaN or
of the wrong type when they came from a model) into the text the page shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from include.video_pipeline.core.analysis.languages import normalize_language

_SIZE_UNITS = {"en": ("B", "KB", "MB", "GB", "TB"), "ru": ("Б", "КБ", "МБ", "ГБ", "ТБ")}


def ui_language(analysis: Mapping[str, Any], transcript: Mapping[str, Any] | None = None) -> str:
    """``ru`` when the analysis is Russian (or, lacking one, the transcript), else ``en``."""
    data = analysis.get("data") or {}
    code = normalize_language(analysis.get("language") or data.get("language"))
    if code is None and transcript is not None:
        code = normalize_language(transcript.get("language"))
    return "ru" if code == "ru" else "en"


def format_clock(seconds: float | None) -> str:
    """``83.6`` -> ``1:23``; hours appear only when needed (``1:02:03``)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_size(size: int | None, lang: str = "en") -> str:
    if size is None or size < 0:
        return ""
    units = _SIZE_UNITS.get(lang, _SIZE_UNITS["en"])
    value = float(size)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            text = f"{value:.0f}" if unit == units[0] else f"{value:.1f}"
            # Russian writes decimals with a comma.
            return f"{text.replace('.', ',') if lang == 'ru' else text} {unit}"
        value /= 1024
    return ""  # pragma: no cover - the loop always returns


def format_usd(amount: float, lang: str = "en") -> str:
    """``0.00312`` -> ``$0.0031``: cents from a dollar up, four decimals below (a video costs fractions of a cent)."""
    text = f"{amount:.2f}" if amount >= 1 else f"{amount:.4f}"
    return f"{text.replace('.', ',')} $" if lang == "ru" else f"${text}"


def format_count(count: int, lang: str = "en") -> str:
    """``12345`` -> ``12,345`` (``12 345`` in Russian, with a narrow no-break space)."""
    return f"{count:,}".replace(",", "\u202f" if lang == "ru" else ",")


def counted(count: int, forms: str, lang: str = "en") -> str:
    """``counted(3, "вызов|вызова|вызовов", "ru")`` -> ``3 вызова``: the number and the noun in its plural form."""
    words = forms.split("|")
    if lang == "ru" and len(words) == 3:
        tens, ones = count % 100, count % 10
        word = (
            words[0] if ones == 1 and tens != 11 else words[1] if 2 <= ones <= 4 and not 12 <= tens <= 14 else words[2]
        )
    else:
        word = words[0] if count == 1 else words[-1]
    return f"{format_count(count, lang)} {word}"


def format_date(when: datetime, lang: str = "en") -> str:
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    utc = when.astimezone(UTC)
    return utc.strftime("%d.%m.%Y %H:%M UTC" if lang == "ru" else "%Y-%m-%d %H:%M UTC")


def seek_seconds(value: Any) -> str:
    """A timestamp as it goes into ``#t=``: seconds, at most one decimal, never negative or NaN."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    return f"{seconds:.1f}".removesuffix(".0")
