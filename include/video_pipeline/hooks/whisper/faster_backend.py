"""The faster-whisper backend (the default): CTranslate2 decoding with its built-in Silero VAD.

Its segments arrive from a lazy generator while decoding runs, so progress is
reported and each segment converted as it comes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from include.video_pipeline.core.transcript import Segment, Word
from include.video_pipeline.hooks.whisper.decoding import DecodeOptions, _Decoded

if TYPE_CHECKING:
    import numpy as np


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
