"""Rendering the report: a ``ReportInput`` in, the page's HTML text out.

Gathers what the page shows (details, warnings, chapters, quotes, transcript,
downloads, notes) from the published transcript and analysis, treating every
value as hostile, and fills the page template with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from include.video_pipeline.core.analysis.languages import LANGUAGE_NAMES, normalize_language
from include.video_pipeline.core.report.formatting import (
    counted,
    format_clock,
    format_date,
    format_size,
    format_usd,
    seek_seconds,
    ui_language,
)
from include.video_pipeline.core.report.inputs import DOWNLOAD_ORDER, ReportInput
from include.video_pipeline.core.report.labels import (
    ANALYSIS_FLAG_TEXT,
    LABELS,
    MEDIA_FLAG_TEXT,
    QUALITY_TEXT,
    RUSSIAN_LANGUAGE_NAMES,
)
from include.video_pipeline.core.report.page import CONTENT_SECURITY_POLICY, SCRIPT, STYLE, TEMPLATE

# Flags that repeat a transcript quality already shown as a warning.
_QUALITY_FLAGS = {"no_audio", "no_speech", "transcript_suspect"}

_ENV = jinja2.Environment(
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_TEMPLATE = _ENV.from_string(TEMPLATE)


def _strings(values: Any) -> list[str]:
    """Non-empty strings from a list that came from a model: anything else is dropped."""
    if not isinstance(values, (list, tuple)):
        return []
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _language_name(code: str | None, lang: str) -> str:
    if not code:
        return ""
    names = RUSSIAN_LANGUAGE_NAMES if lang == "ru" else LANGUAGE_NAMES
    return names.get(code, code)


def _url(name: str | None) -> str | None:
    # A sibling's name as a relative URL: "./" keeps a name with a colon from
    # reading as a scheme, quote() keeps spaces and # from breaking the link.
    return f"./{quote(name)}" if name else None


def _media_warnings(media_flags: Mapping[str, str], lang: str) -> list[dict[str, str]]:
    """One warning per media flag: what it means, then what was measured (``detail``)."""
    texts = MEDIA_FLAG_TEXT[lang]
    return [
        {"code": code, "text": f"{texts.get(code, code)} ({detail})" if detail else texts.get(code, code)}
        for code, detail in media_flags.items()
    ]


def _warnings(transcript: Mapping[str, Any], flags: Sequence[str], lang: str) -> list[dict[str, str]]:
    quality = str(transcript.get("quality") or "ok")
    if "transcript_suspect" in flags and quality == "ok":
        quality = "suspect"
    texts = QUALITY_TEXT[lang]
    found = [{"code": quality, "text": texts[quality]}] if quality in texts else []
    for flag in flags:
        text = ANALYSIS_FLAG_TEXT[lang].get(flag)
        if text:
            found.append({"code": flag, "text": text})
    return found


def _chapters(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    chapters = []
    for item in data.get("chapters") or []:
        if not isinstance(item, Mapping):
            continue
        chapters.append(
            {
                "start": item.get("start"),
                "title": str(item.get("title") or "").strip(),
                "summary": str(item.get("summary") or "").strip(),
            }
        )
    return chapters


def render_report(report: ReportInput) -> str:
    """The report page as HTML text (UTF-8 when encoded)."""
    analysis = report.analysis
    transcript = report.transcript
    data: Mapping[str, Any] = analysis.get("data") or {}
    lang = ui_language(analysis, transcript)
    t = LABELS[lang]
    flags = [str(f) for f in analysis.get("flags") or []]
    playable = report.video_file is not None

    def stamp(seconds: Any) -> Markup:
        """A timestamp: a link that seeks the player, or plain text when there is nothing to play."""
        label = format_clock(_float(seconds))
        value = seek_seconds(seconds)
        if not playable:
            return Markup('<span class="ts">{}</span>').format(label)
        return Markup('<a class="ts" href="#t={0}" data-t="{0}" title="{1} {2}">{2}</a>').format(
            value, t["seek"], label
        )

    duration = report.duration if report.duration else _float(transcript.get("duration"))
    transcript_lang = normalize_language(transcript.get("language"))
    meta: list[tuple[str, str]] = [(t["file"], report.source_name)]
    if duration:
        meta.append((t["duration"], format_clock(duration)))
    if report.source_size is not None:
        meta.append((t["size"], format_size(report.source_size, lang)))
    if report.width and report.height:
        meta.append((t["resolution"], f"{report.width}×{report.height}"))
    if transcript_lang:
        meta.append((t["language"], _language_name(transcript_lang, lang)))
    # A model given as a local folder (offline deployments) is named by its folder, not its full path.
    model = str(transcript.get("model") or "").rstrip("/")
    model = model.rsplit("/", 2)[-2] if model.endswith("/model") else model.rsplit("/", 1)[-1]
    whisper = " · ".join(str(x) for x in (transcript.get("backend"), model) if x)
    if whisper:
        meta.append((t["transcription"], whisper))
    analyzer = " · ".join(
        str(x) for x in (analysis.get("analyzer"), analysis.get("model"), analysis.get("prompt_version")) if x
    )
    made_by = analysis.get("made_by")
    if made_by in ("offline_extractive", "no_model") and not analysis.get("unavailable"):
        # Said in words: "an AI analysis" must never be claimed for extracted sentences.
        analyzer = f"{t['made_by_' + str(made_by)]} · {analyzer}" if analyzer else t["made_by_" + str(made_by)]
    if analyzer:
        meta.append((t["analysis"], analyzer))
    cost = _cost_text(analysis, t, lang)
    if cost:
        meta.append((t["cost"], cost))
    meta.append((t["processed"], format_date(report.processed_at, lang)))
    meta.append((t["video_id"], report.video_id))

    entities = data.get("entities") or {}
    chip_groups = [(t["topics"], _strings(data.get("topics"))), (t["tags"], _strings(data.get("tags")))]
    chip_groups += [
        (t[kind], _strings(entities.get(kind) if isinstance(entities, Mapping) else None))
        for kind in ("people", "organizations", "places")
    ]
    chip_groups = [(label, names) for label, names in chip_groups if names]
    segments = [
        {"start": s.get("start"), "t": seek_seconds(s.get("start")), "text": str(s.get("text") or "").strip()}
        for s in transcript.get("segments") or []
        if isinstance(s, Mapping) and str(s.get("text") or "").strip()
    ]
    quotes = [
        {"text": str(q.get("text") or "").strip(), "start": q.get("start")}
        for q in data.get("quotes") or []
        if isinstance(q, Mapping) and str(q.get("text") or "").strip()
    ]
    available = set(report.files)
    downloads = [(name, _url(name)) for name in DOWNLOAD_ORDER if name in available]
    notes = [flag for flag in flags if flag not in _QUALITY_FLAGS and flag not in ANALYSIS_FLAG_TEXT[lang]]
    notes += [str(n) for n in transcript.get("quality_notes") or []]

    return _TEMPLATE.render(
        lang=lang,
        t=t,
        csp=CONTENT_SECURITY_POLICY,
        style=STYLE,
        script=SCRIPT,
        title=str(data.get("title_suggestion") or "").strip() or report.source_name or t["untitled"],
        source_name=report.source_name,
        video_id=report.video_id,
        video_url=_url(report.video_file),
        video_name=report.video_file or "",
        poster_url=_url(report.poster_file),
        subtitles_url=_url(report.subtitles_file) if playable else None,
        transcript_lang=transcript_lang,
        warnings=_warnings(transcript, flags, lang) + _media_warnings(report.media_flags, lang),
        summary=str(data.get("summary") or "").strip(),
        key_points=_strings(data.get("key_points")),
        chapters=_chapters(data),
        action_items=_strings(data.get("action_items")),
        quotes=quotes,
        segments=segments,
        meta=meta,
        chip_groups=chip_groups,
        downloads=downloads,
        notes=notes,
        stamp=stamp,
    )


def _cost_text(analysis: Mapping[str, Any], t: Mapping[str, str], lang: str) -> str:
    """What the analysis cost, from ``analysis.json``'s usage; empty when no model was called."""
    usage = analysis.get("usage")
    if not isinstance(usage, Mapping) or not isinstance(usage.get("calls"), int) or usage["calls"] < 1:
        return ""
    tokens = sum(v for k in ("input_tokens", "output_tokens", "thinking_tokens") if isinstance(v := usage.get(k), int))
    counts = f"{counted(usage['calls'], t['calls'], lang)}, {counted(tokens, t['tokens'], lang)}"
    cost = _float(usage.get("cost_usd"))
    if cost is None:
        return f"{t['cost_unpriced']} · {counts}"
    return f"{format_usd(cost, lang)} ({t['cost_estimate']}) · {counts}"


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
