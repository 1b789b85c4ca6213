"""Multimodal analysis and countTokens-driven chunking: the real SDK against the loopback Gemini server,
and the analyze operator's image loading against a real local store."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.video_pipeline.config import AnalysisSettings, Settings
from include.video_pipeline.core.analysis import estimate_tokens, render_transcript, schema_errors
from include.video_pipeline.hooks.analyzers import build_analyzer
from include.video_pipeline.hooks.gemini import GeminiAnalyzer
from include.video_pipeline.operators.analyze import MAX_IMAGE_BYTES, image_hashes, load_images
from include.video_pipeline.storage.local import LocalFolderStore
from tests.fakes import FakeGeminiServer, Reply
from tests.hooks.test_gemini_hook import API_KEY, Waits, make_transcript

LONG_LINES = [
    (i * 6.0, i * 6.0 + 5.0, f"Часть {i}: обсуждаем бюджет, сроки и рекламную кампанию проекта номер {i}.")
    for i in range(30)
]


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory) -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is a pipeline dependency and must be installed"
    out = tmp_path_factory.mktemp("img") / "frame.jpg"
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90", "-frames:v", "1", str(out)], check=True
    )
    return out.read_bytes()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with FakeGeminiServer(api_key=API_KEY) as fake:
        yield fake


def gemini(server, **kwargs) -> GeminiAnalyzer:
    settings = AnalysisSettings(analyzer="gemini", gemini_base_url=server.base_url, max_retries=1)
    analyzer = build_analyzer(settings, backoff_base_seconds=0.01, sleep=Waits(), **kwargs)
    assert isinstance(analyzer, GeminiAnalyzer)
    return analyzer


def test_images_go_inline_before_the_transcript(server, jpeg):
    result = gemini(server).analyze(make_transcript(), title="x", images=[jpeg, jpeg[:-1] + b"\xd9"])
    [request] = server.generate_requests
    assert [mime for mime, _ in request.images] == ["image/jpeg", "image/jpeg"]
    assert request.images[0][1] == jpeg
    parts = request.body["contents"][0]["parts"]
    assert "inlineData" in parts[0] and "text" in parts[-1]
    assert "2 image(s) from the video are attached" in request.prompt_text
    assert result.prompt_version == "analysis_v1+images_v1"
    assert schema_errors(result.data) == []


def test_without_images_the_request_is_text_only(server):
    result = gemini(server).analyze(make_transcript(), title="x")
    assert server.generate_requests[0].images == [] and result.prompt_version == "analysis_v1"
    assert "image(s)" not in server.generate_requests[0].prompt_text


def test_silent_video_is_not_described_from_its_frames(server, jpeg):
    from include.video_pipeline.core.transcript import Transcript, TranscriptQuality

    silent = Transcript.empty(quality=TranscriptQuality.NO_AUDIO, duration=5.0, backend="x", model="y", note="")
    result = gemini(server).analyze(silent, title="x", images=[jpeg])
    assert result.flags == ("no_audio",) and server.requests == []


# -- countTokens --------------------------------------------------------------------------


def test_count_tokens_that_fit_keep_one_call_even_when_the_estimate_would_split(server):
    transcript = make_transcript(LONG_LINES)
    estimate = estimate_tokens(render_transcript(transcript.segments))
    server.tokens_per_char = 0.01  # this model's tokenizer is far more compact than the estimate
    result = gemini(server, max_chunk_tokens=estimate // 2).analyze(transcript, title="x")
    assert len(server.generate_requests) == 1 and "chunked" not in result.flags
    [count] = [r for r in server.requests if r.action == "countTokens"]
    assert "[0.0-5.0] Часть 0" in count.prompt_text


def test_count_tokens_above_the_estimate_splits_finer(server):
    transcript = make_transcript(LONG_LINES)
    estimate = estimate_tokens(render_transcript(transcript.segments))
    budget = estimate  # by the estimate alone this is one call
    server.tokens_per_char = 1.0  # ... but the real tokenizer counts ~3x more
    result = gemini(server, max_chunk_tokens=budget).analyze(transcript, title="x")
    calls = len(server.generate_requests)
    assert calls >= 3 and "chunked" in result.flags
    sent = [line for r in server.generate_requests for line in r.prompt_text.splitlines() if line.startswith("[")]
    assert len(sent) == len(LONG_LINES)


def test_count_tokens_failure_falls_back_to_the_estimate(server, caplog):
    transcript = make_transcript(LONG_LINES)
    estimate = estimate_tokens(render_transcript(transcript.segments))
    server.tokens_per_char = 1.0  # a count, had it worked, would split the transcript ...
    server.count_tokens_reply = Reply.server_error(500)
    result = gemini(server, max_chunk_tokens=2 * estimate).analyze(transcript, title="x")  # ... the estimate not
    assert len(server.generate_requests) == 1 and schema_errors(result.data) == []
    assert "Token count failed" in caplog.text and API_KEY not in caplog.text


# -- the operator's image loading ---------------------------------------------------------


def _ctx(tmp_path: Path) -> SimpleNamespace:
    settings = dataclasses.replace(Settings(), local_root=tmp_path)
    return SimpleNamespace(settings=settings, store=LocalFolderStore(tmp_path), video=SimpleNamespace(video_id="v1"))


def _media(**images: bytes) -> dict:
    """A transcode result listing the given staged images (name -> bytes)."""
    import hashlib

    return {
        "files": [
            {"name": name.replace("_", "."), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in images.items()
        ]
    }


def test_load_images_reads_what_the_transcode_result_lists(tmp_path, jpeg):
    ctx = _ctx(tmp_path)
    ctx.store.put_bytes("staging/v1/thumbnails.jpg", jpeg + b"sheet", content_type="image/jpeg")
    ctx.store.put_bytes("staging/v1/poster.jpg", jpeg, content_type="image/jpeg")
    media = _media(thumbnails_jpg=jpeg + b"sheet", poster_jpg=jpeg)
    assert load_images(ctx, media) == [jpeg, jpeg + b"sheet"]  # poster first, whatever the listing order
    assert image_hashes(media) == [
        [n, f["sha256"]] for n in ("poster.jpg", "thumbnails.jpg") for f in media["files"] if f["name"] == n
    ]


def test_load_images_depends_on_the_transcode_result_not_on_timing(tmp_path, jpeg):
    ctx = _ctx(tmp_path)
    # Staged images that the transcode result does not list (a race, a leftover) are never sent.
    ctx.store.put_bytes("staging/v1/poster.jpg", jpeg, content_type="image/jpeg")
    assert load_images(ctx, {"files": []}) == [] and image_hashes({"files": []}) == []
    assert load_images(ctx, None) == [] and image_hashes(None) is None
    oversized = b"\xff\xd8\xff" + b"0" * MAX_IMAGE_BYTES
    ctx.store.put_bytes("staging/v1/thumbnails.jpg", oversized)
    media = _media(poster_jpg=jpeg, thumbnails_jpg=oversized)
    assert load_images(ctx, media) == [jpeg]  # the oversized sheet is left out, in the key too
    assert [name for name, _ in image_hashes(media)] == ["poster.jpg"]
