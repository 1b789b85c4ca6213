"""VideoTranscribeOperator: speech to text, straight from the upload's audio."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.video_pipeline.core.audio_tracks import (
    TrackChoice,
    choose_transcription_track,
    needs_speech_measurement,
)
from include.video_pipeline.core.media import MediaInfo
from include.video_pipeline.core.stage_outputs import TranscriptOutput
from include.video_pipeline.core.subtitles import TranscriptFormat, render
from include.video_pipeline.core.transcript import Transcript, TranscriptQuality, model_identity
from include.video_pipeline.operators.base import StageContext, VideoStageOperator
from include.video_pipeline.pipeline.staging import fetch_source, stage_bytes

if TYPE_CHECKING:
    from include.video_pipeline.hooks.ffmpeg import AudioExtract, FfmpegHook
    from include.video_pipeline.hooks.whisper import WhisperHook

# Part of the cache key: bump when the choice of the transcribed track changes,
# so a duplicate of an upload transcribed under the old rule is transcribed again.
TRACK_RULE_VERSION = 2


class VideoTranscribeOperator(VideoStageOperator):
    """Extract 16 kHz mono audio from the source and transcribe it with Whisper.

    Runs beside ``transcode`` (it never waits for the transcoded MP4), and
    writes ``transcript.json``, ``.srt``, ``.vtt`` and ``.txt`` to staging.
    The language comes from the run's ``language`` param, else the settings,
    else Whisper detects it.

    With several audio tracks the transcript is made from the one that carries
    the speech (:func:`~include.video_pipeline.core.audio_tracks.choose_transcription_track`):
    a track tagged with the requested language, else the only one with sound,
    else the default one if it has speech, else the one with the most speech.
    Which track and why is recorded in ``transcript.json`` (``settings.audio_track``)
    and the manifest.
    """

    stage = "transcribe"
    ui_color = "#e4f4e4"

    def cache_input(self, ctx: StageContext) -> tuple[str, dict[str, Any]]:
        from include.video_pipeline.operators.transcode import content_hash

        return content_hash(ctx), {
            "whisper": dataclasses.asdict(ctx.settings.whisper),
            "language": _language(ctx),
            "track_rule": TRACK_RULE_VERSION,
        }

    def run_stage(self, ctx: StageContext) -> TranscriptOutput:
        from include.video_pipeline.hooks.ffmpeg import FfmpegHook
        from include.video_pipeline.hooks.whisper import WhisperHook

        video = ctx.video
        whisper_settings = ctx.settings.whisper
        source = fetch_source(ctx.store, ctx.settings, video.video_id, video.rel_key)
        ffmpeg = FfmpegHook(settings=ctx.settings.transcode)
        info = ffmpeg.probe(source)
        language = _language(ctx)
        whisper = WhisperHook(settings=whisper_settings)
        with tempfile.TemporaryDirectory(prefix="transcribe-", dir=source.parent) as tmp:
            audio, choice = _extract_speech_track(ffmpeg, whisper, source, Path(tmp), info, language)
            if audio is None:
                transcript = Transcript.empty(
                    quality=TranscriptQuality.NO_AUDIO,
                    duration=float(info.duration or 0.0),
                    backend=whisper_settings.backend,
                    model=model_identity(whisper_settings.model) or whisper_settings.model,
                    note="the upload has no audio track",
                )
            else:
                transcript = whisper.transcribe(Path(audio.path), duration=info.duration, language=language)
                if choice is not None:
                    transcript = dataclasses.replace(
                        transcript, settings={**transcript.settings, "audio_track": choice.to_dict()}
                    )
        flags = dict(audio.flags) if audio is not None else {}
        if choice is not None and len(info.audio) > 1:
            flags["several_audio_tracks"] = (
                f"{len(info.audio)} audio tracks; transcribed track {choice.index}: {choice.reason}"
            )
        if flags:
            ctx.db.add_media_flags(video.video_id, flags)
        staged = [
            stage_bytes(
                ctx.store,
                ctx.settings,
                video.video_id,
                fmt.file_name,
                render(transcript, fmt).encode("utf-8"),
            )
            for fmt in TranscriptFormat
        ]
        return TranscriptOutput(
            files=[f.to_dict() for f in staged],
            language=transcript.language,
            language_probability=transcript.language_probability,
            quality=transcript.quality.value,
            segments=len(transcript.segments),
            characters=len(transcript.text),
            audio_track=choice.to_dict() if choice is not None else None,
            media_flags=flags,
        )


def _extract_speech_track(
    ffmpeg: FfmpegHook, whisper: WhisperHook, source: Path, tmp: Path, info: MediaInfo, language: str | None
) -> tuple[AudioExtract | None, TrackChoice | None]:
    """The WAV of the track to transcribe, and why it was chosen; ``(None, None)`` without audio.

    Levels are measured only with several tracks, and speech only when tags
    and levels leave a choice between tracks with sound (each is then extracted
    once: one of the WAVs is the one transcribed).
    """
    if not info.audio:
        return ffmpeg.extract_audio(source, tmp / "audio.wav", info), None
    levels = ffmpeg.measure_audio(source, info)
    extracts: dict[int, AudioExtract] = {}
    speech: dict[int, float] = {}
    for track in needs_speech_measurement(info.audio, levels, language):
        extract = ffmpeg.extract_audio(source, tmp / f"track-{track.index}.wav", info, track)
        if extract is not None:
            extracts[track.index] = extract
            speech[track.index] = whisper.speech_seconds(extract.path)
    choice = choose_transcription_track(info.audio, levels, speech, language=language)
    assert choice is not None
    if choice.index in extracts:
        return extracts[choice.index], choice
    track = next(t for t in info.audio if t.index == choice.index)
    return ffmpeg.extract_audio(source, tmp / "audio.wav", info, track), choice


def _language(ctx: StageContext) -> str | None:
    """The run's ``language`` param, else the configured one; ``auto`` (or nothing) means detect."""
    language = ctx.params.get("language") or ctx.settings.whisper.language
    return None if not language or language == "auto" else str(language)
