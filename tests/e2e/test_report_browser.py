"""report.html in a real browser: headless Chromium over HTTP on loopback.

The report is rendered from a real published video's files (an espeak-ng clip
transcoded by FfmpegHook into ``video.mp4`` and ``poster.jpg``) and the
offline analyzer's real output, with a hostile file name. Chromium must show
the summary and actually load the poster, and the name must stay text.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from include.video_pipeline.config import TranscodeSettings
from include.video_pipeline.core.offline_analyzer import OfflineAnalyzer
from include.video_pipeline.core.report import ReportInput, render_report
from include.video_pipeline.core.transcript import Segment, Transcript
from include.video_pipeline.hooks.ffmpeg import FfmpegHook
from tests.e2e.ui_browser import chromium_binary
from tests.fixtures import clips

# Tries to run script two ways; either would mark the page if escaping failed.
HOSTILE_NAME = (
    "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','1')\">"
    "<script>document.documentElement.setAttribute('data-pwned','2')</script>Отчёт.mp4"
)
SENTENCES = [
    "Добрый день, коллеги.",
    "Сегодня мы подводим итоги квартала.",
    "Выручка выросла на десять процентов.",
]


def _browse(url: str, *extra: str) -> str:
    """Chromium's DOM (or other output) after the page settled; a fresh profile per call."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [
                chromium_binary(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs/<video id>/ as publish leaves it: video.mp4, poster.jpg and report.html."""
    work = tmp_path_factory.mktemp("report-browser")
    source = clips.make_speech_video(work / "source.mp4", " ".join(SENTENCES), voice="ru")
    folder = work / "outputs" / "otchet-0123456789ab"
    folder.mkdir(parents=True)
    ffmpeg = FfmpegHook(settings=TranscodeSettings(preset="ultrafast"))
    info = ffmpeg.probe(source)
    result = ffmpeg.transcode(source, folder, info)
    assert result.video_path and result.poster_path
    # A transcript shaped like Whisper's (the recogniser is tested elsewhere), spread over the clip.
    step = info.duration / len(SENTENCES)
    transcript = Transcript(
        language="ru",
        language_probability=0.99,
        duration=info.duration,
        segments=tuple(Segment(start=i * step, end=(i + 1) * step, text=t) for i, t in enumerate(SENTENCES)),
        backend="faster-whisper",
        model="small",
    )
    analysis = OfflineAnalyzer(chapter_seconds=1.0).analyze(transcript, title=HOSTILE_NAME)
    page = render_report(
        ReportInput(
            video_id=folder.name,
            source_name=HOSTILE_NAME,
            transcript=transcript.to_dict(),
            analysis=analysis.to_dict(),
            processed_at=datetime.now(UTC),
            source_size=source.stat().st_size,
            duration=info.duration,
            width=result.width,
            height=result.height,
            files=sorted(p.name for p in folder.iterdir()),
        )
    )
    (folder / "report.html").write_text(page, encoding="utf-8")
    # A "presigned" copy of the poster somewhere else, for the fragment override.
    (work / "signed").mkdir()
    shutil.copy(result.poster_path, work / "signed" / "poster-copy.jpg")
    return folder


@pytest.fixture(scope="module")
def server(published: Path) -> Iterator[str]:
    root = published.parents[1]
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_chromium_shows_the_summary_and_loads_the_poster(published: Path, server: str) -> None:
    url = f"{server}/outputs/{published.name}/report.html"
    dom = _browse(url, "--dump-dom")

    assert 'data-ready="1"' in dom, "the page's script did not run (CSP hash or syntax error?)"
    assert 'data-poster="loaded"' in dom, "the poster <img> did not load over a relative URL"
    html_tag = re.search(r"<html[^>]*>", dom)
    assert html_tag is not None and "data-pwned" not in html_tag.group(0)
    assert 'lang="ru"' in html_tag.group(0)
    assert "Краткое содержание" in dom and "Выручка выросла на десять процентов" in dom
    assert "&lt;script&gt;document.documentElement" in dom  # the name, shown as text
    assert 'href="#t=0"' in dom and 'src="./video.mp4"' in dom


def test_presigned_urls_in_the_fragment_replace_the_relative_ones(published: Path, server: str) -> None:
    # The relative poster is gone, as for a presigned report.html whose siblings need their own signatures.
    folder = published
    hidden = folder.parent / "poster.hidden"
    (folder / "poster.jpg").rename(hidden)
    try:
        broken = _browse(f"{server}/outputs/{folder.name}/report.html", "--dump-dom")
        assert 'data-poster="failed"' in broken and 'class="poster broken"' in broken
        signed = quote(f"{server}/signed/poster-copy.jpg?X-Amz-Signature=abc", safe="")
        dom = _browse(f"{server}/outputs/{folder.name}/report.html#poster={signed}", "--dump-dom")
    finally:
        hidden.rename(folder / "poster.jpg")
    assert 'data-poster="loaded"' in dom
    assert "/signed/poster-copy.jpg?X-Amz-Signature=abc" in dom


def test_screenshot_of_the_report(published: Path, server: str) -> None:
    shot = published.parent / "report.png"
    _browse(
        f"{server}/outputs/{published.name}/report.html",
        f"--screenshot={shot}",
        "--window-size=1280,1600",
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real page, not a blank one
