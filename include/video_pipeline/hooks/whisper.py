"""Speech to text with Whisper: faster-whisper (default) or openai-whisper, same output.

The input is the 16 kHz mono WAV made by the ffmpeg stage. The hook

* loads the model once per process (a module-level cache): loading ``small``
  takes seconds and hundreds of MB, and a worker transcribes many videos;
* finds speech with the Silero VAD that faster-whisper ships (also for
  openai-whisper, so both backends skip the same silence and music);
* decodes, logging progress as segments arrive;
* runs the quality gate (:mod:`include.video_pipeline.core.quality`): on a
  repetition loop or low confidence it decodes once more with safer settings,
  and flags the transcript SUSPECT if that does not help. Silence or music is
  an empty transcript with quality NO_SPEECH, not an error.

Heavy libraries are imported inside the functions that need them, so importing
this module (e.g. while a DAG is parsed) costs nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from include.video_pipeline.config import WhisperSettings
from include.video_pipeline.core.errors import PermanentError, StageTimeout
from include.video_pipeline.core.quality import GateAction, evaluate
from include.video_pipeline.core.transcript import Segment, Transcript, TranscriptQuality, Word, model_identity

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000

# openai-whisper has no streaming API: it returns only when the whole input is
# decoded, and its mel spectrogram of the whole input is ~10x the audio's size
# (an hour would need several GB). Feeding it batches of this much speech, cut
# in silences, bounds memory and gives progress lines as batches finish.
OPENAI_BATCH_SECONDS = 300.0


@dataclass(frozen=True)
class DecodeOptions:
    """What changes between the first pass and the safer retry."""

    beam_size: int
    temperature: tuple[float, ...]
    condition_on_previous_text: bool
    word_timestamps: bool
    vad: bool


# Whisper's own fallback ladder: re-decode a window at a higher temperature when
# it looks like a loop or the model is unsure.
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _safer(options: DecodeOptions) -> DecodeOptions:
    # Loops feed on the previous window's text; and sampling at a high temperature
    # produces the very gibberish the gate just rejected.
    return replace(options, condition_on_previous_text=False, temperature=(0.0,))


@dataclass(frozen=True)
class LoadedModel:
    backend: str
    model_name: str
    device: str
    compute_type: str
    multilingual: bool
    model: Any  # faster_whisper.WhisperModel or whisper.model.Whisper
    load_seconds: float


_MODELS: dict[tuple[str, ...], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _faster_whisper_device(settings: WhisperSettings) -> tuple[str, str]:
    import ctranslate2

    device = settings.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = settings.compute_type
    if compute_type == "auto":
        # int8 on CPU is ~2-3x faster than float32 at the same word error rate;
        # float16 is what GPUs are built for.
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def _openai_whisper_device(settings: WhisperSettings) -> tuple[str, str]:
    import torch

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    compute_type = settings.compute_type
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "float32"
    if compute_type not in {"float16", "float32"} or (compute_type == "float16" and device == "cpu"):
        raise PermanentError(
            f"openai-whisper supports compute type float16 (CUDA) or float32, not {compute_type!r} on {device}; "
            "set VIDEO_PIPELINE_WHISPER_COMPUTE_TYPE=auto"
        )
    return device, compute_type


def load_model(settings: WhisperSettings) -> LoadedModel:
    """The model for ``settings``, loaded on first use and then shared by the whole process."""
    if settings.backend == "faster-whisper":
        device, compute_type = _faster_whisper_device(settings)
    elif settings.backend == "openai-whisper":
        device, compute_type = _openai_whisper_device(settings)
    else:
        raise PermanentError(f"unknown Whisper backend {settings.backend!r}")
    key = (
        settings.backend,
        settings.model,
        device,
        compute_type,
        str(settings.cpu_threads),
        settings.download_root or "",
    )
    # One lock for all loads: two threads asking for the same model must not load it twice.
    with _MODELS_LOCK:
        if key not in _MODELS:
            started = time.perf_counter()
            if settings.backend == "faster-whisper":
                model, multilingual = _load_faster_whisper(settings, device, compute_type)
            else:
                model, multilingual = _load_openai_whisper(settings, device)
            _MODELS[key] = LoadedModel(
                backend=settings.backend,
                model_name=settings.model,
                device=device,
                compute_type=compute_type,
                multilingual=multilingual,
                model=model,
                load_seconds=time.perf_counter() - started,
            )
        return _MODELS[key]


def _load_faster_whisper(settings: WhisperSettings, device: str, compute_type: str) -> tuple[Any, bool]:
    from faster_whisper import WhisperModel

    model = WhisperModel(
        settings.model,
        device=device,
        compute_type=compute_type,
        cpu_threads=settings.cpu_threads,
        download_root=settings.download_root,
    )
    return model, bool(model.model.is_multilingual)


def _load_openai_whisper(settings: WhisperSettings, device: str) -> tuple[Any, bool]:
    import torch
    import whisper

    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    try:
        model = whisper.load_model(settings.model, device=device, download_root=settings.download_root)
    except RuntimeError as exc:
        # Raised for a name that is neither a known model nor an existing .pt file.
        if "not found" in str(exc):
            raise PermanentError(f"openai-whisper model {settings.model!r}: {exc}") from exc
        raise
    return model, bool(model.is_multilingual)


def read_wav(path: Path) -> np.ndarray:
    """The audio as float32 samples in [-1, 1] at 16 kHz, holding one copy in memory.

    The ffmpeg stage writes 16-bit mono 16 kHz WAV; that is read directly,
    block by block into one preallocated array. Anything else is decoded and
    resampled by PyAV (through faster-whisper), which costs a transient copy.
    """
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        with wave.open(str(path), "rb") as wav:
            native = wav.getframerate() == SAMPLE_RATE and wav.getnchannels() == 1 and wav.getsampwidth() == 2
            if native:
                total = wav.getnframes()
                audio = np.empty(total, dtype=np.float32)
                block = SAMPLE_RATE * 60
                done = 0
                while done < total:
                    data = np.frombuffer(wav.readframes(block), dtype="<i2")
                    if not data.size:  # a header that promised more than the file holds
                        break
                    audio[done : done + data.size] = data
                    done += data.size
                audio = audio[:done]
                audio /= 32768.0
                return audio
    except (wave.Error, EOFError):
        pass
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)


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


@dataclass(frozen=True)
class _Decoded:
    segments: tuple[Segment, ...]
    language: str | None
    language_probability: float | None


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


def _decode_faster_whisper(
    model: Any, audio: np.ndarray, language: str | None, options: DecodeOptions, on_segment: Callable[[float], None]
) -> _Decoded:
    segments, info = model.transcribe(
        audio,
        language=language,
        beam_size=options.beam_size,
        temperature=list(options.temperature),
        condition_on_previous_text=options.condition_on_previous_text,
        word_timestamps=options.word_timestamps,
        vad_filter=options.vad,
    )
    out: list[Segment] = []
    # ``segments`` is a lazy generator: decoding happens while we iterate, so each
    # segment is converted and its token lists dropped as soon as it arrives.
    for s in segments:
        words = tuple(Word(w.start, w.end, w.word, w.probability) for w in s.words or ())
        out.append(Segment(s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob, s.compression_ratio, words))
        on_segment(s.end)
    return _Decoded(tuple(out), info.language, float(info.language_probability))


def _speech_chunks(audio: np.ndarray, vad: bool) -> list[dict[str, int]]:
    """Sample ranges to decode: Silero VAD's speech, or the whole audio cut in its quietest moments."""
    if vad:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        return [{"start": c["start"], "end": c["end"]} for c in get_speech_timestamps(audio, VadOptions())]
    import numpy as np

    window = int(OPENAI_BATCH_SECONDS * SAMPLE_RATE)
    search = 10 * SAMPLE_RATE  # look for a pause in the last 10 s before the cut
    frame = SAMPLE_RATE // 50  # 20 ms
    cuts, position = [0], 0
    while audio.shape[0] - position > window:
        low = position + window - search
        frames = audio[low : low + search].reshape(-1, frame)
        quietest = int(np.argmin(np.square(frames).mean(axis=1)))
        position = low + quietest * frame + frame // 2
        cuts.append(position)
    cuts.append(audio.shape[0])
    return [{"start": a, "end": b} for a, b in itertools.pairwise(cuts) if b > a]


def _batches(chunks: Sequence[dict[str, int]], max_samples: int) -> Iterator[list[dict[str, int]]]:
    batch: list[dict[str, int]] = []
    size = 0
    for chunk in chunks:
        length = chunk["end"] - chunk["start"]
        if batch and size + length > max_samples:
            yield batch
            batch, size = [], 0
        batch.append(chunk)
        size += length
    if batch:
        yield batch


def _decode_openai_whisper(
    model: Any,
    loaded: LoadedModel,
    audio: np.ndarray,
    language: str | None,
    options: DecodeOptions,
    on_segment: Callable[[float], None],
) -> _Decoded:
    import numpy as np
    import torch
    import whisper
    from faster_whisper.vad import SpeechTimestampsMap

    fp16 = loaded.compute_type == "float16"
    chunks = _speech_chunks(audio, options.vad)
    probability: float | None = 1.0 if language else None
    out: list[Segment] = []
    previous_text = ""
    for batch in _batches(chunks, int(OPENAI_BATCH_SECONDS * SAMPLE_RATE)):
        if len(batch) == 1:
            speech = audio[batch[0]["start"] : batch[0]["end"]]  # a view: no copy
        else:
            speech = np.concatenate([audio[c["start"] : c["end"]] for c in batch])
        if language is None:
            language, probability = _detect_language_openai(model, speech, fp16)
        result = whisper.transcribe(
            model,
            speech,
            language=language,
            temperature=options.temperature,
            # openai-whisper runs beam search whenever beam_size is set; 1 means greedy.
            beam_size=options.beam_size if options.beam_size > 1 else None,
            best_of=5,
            condition_on_previous_text=options.condition_on_previous_text,
            # Carry context across batches as the decoder does across its 30 s windows.
            initial_prompt=(previous_text[-400:] or None) if options.condition_on_previous_text else None,
            word_timestamps=options.word_timestamps,
            fp16=fp16,
            verbose=None,
        )
        del speech
        ts_map = SpeechTimestampsMap(batch, SAMPLE_RATE)
        for s in result["segments"]:
            segment = _restore_openai_segment(s, ts_map)
            out.append(segment)
            on_segment(segment.end)
        previous_text = result["text"]
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return _Decoded(tuple(out), language, probability)


def _detect_language_openai(model: Any, speech: np.ndarray, fp16: bool) -> tuple[str, float]:
    """Language and its probability from the first 30 s of speech, as faster-whisper does."""
    import torch
    import whisper

    if not model.is_multilingual:
        return "en", 1.0
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech), model.dims.n_mels)
    mel = mel.to(model.device).to(torch.float16 if fp16 else torch.float32)
    _, probs = model.detect_language(mel)
    language = max(probs, key=probs.get)
    return language, float(probs[language])


def _restore_openai_segment(s: dict[str, Any], ts_map: Any) -> Segment:
    """Map times in the concatenated speech back to the original audio, as faster-whisper's VAD does."""
    words: list[Word] = []
    for w in s.get("words") or ():
        # Resolve both ends through the chunk holding the word's middle, so a word never straddles a cut.
        chunk = ts_map.get_chunk_index((w["start"] + w["end"]) / 2)
        words.append(
            Word(
                ts_map.get_original_time(w["start"], chunk),
                ts_map.get_original_time(w["end"], chunk),
                w["word"],
                w.get("probability"),
            )
        )
    if words:
        start, end = words[0].start, words[-1].end
    else:
        start = ts_map.get_original_time(s["start"])
        end = ts_map.get_original_time(s["end"], is_end=True)
    return Segment(
        start=start,
        end=end,
        text=s["text"],
        avg_logprob=s.get("avg_logprob"),
        no_speech_prob=s.get("no_speech_prob"),
        compression_ratio=s.get("compression_ratio"),
        words=tuple(words),
    )
