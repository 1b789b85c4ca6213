"""WhisperHook: transcribe one WAV with the configured backend, behind the quality gate.

The first pass decodes with Whisper's own temperature fallback; when the gate
(:mod:`include.video_pipeline.core.quality`) sees a loop or low confidence the
audio is decoded once more with safer settings, and the transcript records both.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from include.video_pipeline.config import WhisperSettings
from include.video_pipeline.core.errors import PermanentError, StageTimeout
from include.video_pipeline.core.quality import GateAction, evaluate
from include.video_pipeline.core.transcript import Transcript, TranscriptQuality, model_identity
from include.video_pipeline.hooks.whisper.audio import SAMPLE_RATE, read_wav
from include.video_pipeline.hooks.whisper.decoding import DecodeOptions, _Decoded
from include.video_pipeline.hooks.whisper.faster_backend import _decode_faster_whisper
from include.video_pipeline.hooks.whisper.models import LoadedModel, load_model
from include.video_pipeline.hooks.whisper.openai_backend import _decode_openai_whisper

if TYPE_CHECKING:
    import numpy as np

# Whisper's own fallback ladder: re-decode a window at a higher temperature when
# it looks like a loop or the model is unsure.
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _safer(options: DecodeOptions) -> DecodeOptions:
    # Loops feed on the previous window's text; and sampling at a high temperature
    # produces the very gibberish the gate just rejected.
    return replace(options, condition_on_previous_text=False, temperature=(0.0,))


class _Progress:
    """Logs "n% done" as segments arrive, every ``step`` percent so a long file logs ~10 lines."""

    def __init__(self, log: Any, duration: float, step: int = 10, deadline_seconds: float | None = None) -> None:
        self._log = log
        self._duration = duration
        self._step = step
        self._next = step
        self._started = time.perf_counter()
        self._deadline = deadline_seconds

    def update(self, position: float) -> None:
        elapsed = time.perf_counter() - self._started
        if self._deadline is not None and elapsed > self._deadline:
            # Checked as segments arrive: a stuck or far too slow decode (a huge model on a
            # small CPU) ends with a clear error instead of holding a worker for hours.
            raise StageTimeout(
                f"transcribing {self._duration:.0f} s of audio took longer than {self._deadline:.0f} s "
                f"(reached {position:.0f} s); raise VIDEO_PIPELINE_WHISPER_TIMEOUT_FACTOR or use a smaller model"
            )
        if self._duration <= 0:
            return
        percent = min(int(position / self._duration * 100), 100)
        if percent >= self._next:
            elapsed = time.perf_counter() - self._started
            self._log.info(
                "Transcription progress: %d%% (%.1f of %.1f s of audio, %.1f s elapsed)",
                percent,
                min(position, self._duration),
                self._duration,
                elapsed,
            )
            self._next = (percent // self._step + 1) * self._step

    def finish(self) -> None:
        if self._next <= 100:  # the last segment ended before the audio did (trailing silence)
            self.update(self._duration)


class WhisperHook(BaseHook):
    """Transcribes audio with a local Whisper model.

    :param settings: backend, model (a name, a CTranslate2 model directory for
        faster-whisper or a ``.pt`` file for openai-whisper), device, compute
        type, language, beam size, VAD, word timestamps, download root, threads.
    """

    hook_name = "Whisper"

    def __init__(self, *, settings: WhisperSettings) -> None:
        super().__init__()
        self.settings = settings

    def get_conn(self) -> LoadedModel:
        """The loaded model, from the process-wide cache (loaded on first use)."""
        return load_model(self.settings)

    def transcribe(self, audio_path: Path, *, duration: float | None = None, language: str | None = None) -> Transcript:
        """Transcribe a 16 kHz mono WAV.

        :param audio_path: the WAV made by the ffmpeg stage.
        :param duration: the media duration in seconds, when already probed; else read from the file.
        :param language: force a language code (``"ru"``); overrides the settings. None: settings, else detect.
        :raises PermanentError: the settings cannot work (unknown model, an English-only
            model asked for another language, an unsupported compute type).
        """
        settings = self.settings
        forced = language or settings.language
        loaded = self.get_conn()
        if forced and not loaded.multilingual and forced != "en":
            raise PermanentError(
                f"model {settings.model!r} is English-only and cannot transcribe language {forced!r}; "
                "use a multilingual model (e.g. 'small' rather than 'small.en')"
            )
        audio = read_wav(Path(audio_path))
        audio_seconds = audio.shape[0] / SAMPLE_RATE
        total = duration if duration and duration > 0 else audio_seconds
        self.log.info(
            "Transcribing %s (%.1f s) with %s %s on %s/%s (model loaded in %.1f s)",
            audio_path,
            total,
            loaded.backend,
            loaded.model_name,
            loaded.device,
            loaded.compute_type,
            loaded.load_seconds,
        )
        options = DecodeOptions(
            beam_size=settings.beam_size,
            temperature=_FALLBACK_TEMPERATURES,
            condition_on_previous_text=True,
            word_timestamps=settings.word_timestamps,
            vad=settings.vad,
        )
        started = time.perf_counter()
        decoded = self._decode(loaded, audio, total, forced, options)
        decision = evaluate(decoded.segments)
        notes: tuple[str, ...] = ()
        if decision.action is GateAction.RETRY:
            self.log.warning("Quality gate: %s; decoding again with safer settings", "; ".join(decision.notes))
            notes = (
                *(f"first pass: {n}" for n in decision.notes),
                "retried with condition_on_previous_text=False, temperature=0",
            )
            options = _safer(options)
            decoded = self._decode(loaded, audio, total, forced, options)
            decision = evaluate(decoded.segments, retried=True)
        del audio
        elapsed = time.perf_counter() - started

        # Outputs name the model (name, or package and version), never the folder it was loaded from.
        model = model_identity(loaded.model_name) or loaded.model_name
        recorded = {
            "backend": loaded.backend,
            "model": model,
            "device": loaded.device,
            "compute_type": loaded.compute_type,
            "language_forced": forced,
            **asdict(options),
            "temperature": list(options.temperature),
            "transcribe_seconds": round(elapsed, 3),
            "real_time_factor": round(elapsed / total, 4) if total else None,
        }
        self.log.info(
            "Transcribed %.1f s of audio in %.1f s (RTF %.3f): %d segments, quality %s",
            total,
            elapsed,
            elapsed / total if total else 0.0,
            len(decision.segments),
            decision.quality.value,
        )
        if decision.action is GateAction.NO_SPEECH:
            return replace(
                Transcript.empty(
                    quality=TranscriptQuality.NO_SPEECH,
                    duration=total,
                    backend=loaded.backend,
                    model=model,
                    note=decision.notes[0],
                ),
                quality_notes=notes + decision.notes,
                settings=recorded,
            )
        if decision.quality is TranscriptQuality.SUSPECT:
            self.log.warning("Transcript flagged SUSPECT: %s", "; ".join(decision.notes))
        return Transcript(
            language=decoded.language,
            language_probability=decoded.language_probability,
            duration=total,
            segments=decision.segments,
            backend=loaded.backend,
            model=model,
            quality=decision.quality,
            quality_notes=notes + decision.notes,
            settings=recorded,
        )

    def speech_seconds(self, audio_path: Path) -> float:
        """Seconds of speech the Silero VAD finds in a 16 kHz mono WAV: how a track with speech is told
        from one with silence, music or noise, before any model is loaded.

        The same VAD the transcription itself uses, so a track chosen for its
        speech is one Whisper will find speech in.
        """
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        audio = read_wav(Path(audio_path))
        chunks = get_speech_timestamps(audio, VadOptions())
        return float(sum(c["end"] - c["start"] for c in chunks)) / SAMPLE_RATE

    def _decode(
        self, loaded: LoadedModel, audio: np.ndarray, duration: float, language: str | None, options: DecodeOptions
    ) -> _Decoded:
        deadline = max(float(self.settings.timeout_floor_seconds), self.settings.timeout_factor * duration)
        progress = _Progress(self.log, duration, deadline_seconds=deadline)
        if loaded.backend == "faster-whisper":
            decoded = _decode_faster_whisper(loaded.model, audio, language, options, progress.update)
        else:
            decoded = _decode_openai_whisper(loaded.model, loaded, audio, language, options, progress.update)
        progress.finish()
        return decoded
