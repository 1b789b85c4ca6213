"""VideoTranscribeOperator: speech to text, straight from the upload's audio."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from include.video_pipeline.core.subtitles import TranscriptFormat, render
from include.video_pipeline.core.transcript import Transcript, TranscriptQuality
from include.video_pipeline.operators.base import StageContext, VideoStageOperator
from include.video_pipeline.staging import fetch_source, stage_bytes


class VideoTranscribeOperator(VideoStageOperator):
    """Extract 16 kHz mono audio from the source and transcribe it with Whisper.

    Runs beside ``transcode`` (it never waits for the transcoded MP4), and
    writes ``transcript.json``, ``.srt``, ``.vtt`` and ``.txt`` to staging.
    The language comes from the run's ``language`` param, else the settings,
    else Whisper detects it.
    """

    stage = "transcribe"
    ui_color = "#e4f4e4"

    def cache_input(self, ctx: StageContext) -> tuple[str, dict[str, Any]]:
        from include.video_pipeline.operators.transcode import content_hash

        return content_hash(ctx), {"whisper": dataclasses.asdict(ctx.settings.whisper), "language": _language(ctx)}

    def run_stage(self, ctx: StageContext) -> dict[str, Any]:
        from include.video_pipeline.hooks.ffmpeg import FfmpegHook
        from include.video_pipeline.hooks.whisper import WhisperHook

        video = ctx.video
        whisper_settings = ctx.settings.whisper
        source = fetch_source(ctx.store, ctx.settings, video.video_id, video.rel_key)
        ffmpeg = FfmpegHook(settings=ctx.settings.transcode)
        info = ffmpeg.probe(source)
        language = _language(ctx)
        with tempfile.TemporaryDirectory(prefix="transcribe-", dir=source.parent) as tmp:
            audio = ffmpeg.extract_audio(source, Path(tmp) / "audio.wav", info)
            if audio is None:
                transcript = Transcript.empty(
                    quality=TranscriptQuality.NO_AUDIO,
                    duration=float(info.duration or 0.0),
                    backend=whisper_settings.backend,
                    model=whisper_settings.model,
                    note="the upload has no audio track",
                )
            else:
                transcript = WhisperHook(settings=whisper_settings).transcribe(
                    Path(audio.path), duration=info.duration, language=language
                )
        staged = [
            stage_bytes(
                ctx.store,
                ctx.settings,
                video.video_id,
                f"transcript{fmt.extension}",
                render(transcript, fmt).encode("utf-8"),
            )
            for fmt in TranscriptFormat
        ]
        return {
            "files": [f.to_dict() for f in staged],
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "quality": transcript.quality.value,
            "segments": len(transcript.segments),
            "characters": len(transcript.text),
        }


def _language(ctx: StageContext) -> str | None:
    """The run's ``language`` param, else the configured one; ``auto`` (or nothing) means detect."""
    language = ctx.params.get("language") or ctx.settings.whisper.language
    return None if not language or language == "auto" else str(language)
