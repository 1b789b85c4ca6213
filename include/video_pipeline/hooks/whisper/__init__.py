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

Which submodule holds what (everything below is importable from this package):

* ``hook``: :class:`WhisperHook`, the quality gate's retry and progress logging;
* ``models``: resolving device and compute type, :func:`load_model` and its
  process-wide cache (:class:`LoadedModel`);
* ``faster_backend``: decoding with faster-whisper;
* ``openai_backend``: decoding with openai-whisper, in batches of speech
  (:data:`OPENAI_BATCH_SECONDS`);
* ``decoding``: :class:`DecodeOptions` and what a pass returns, shared by both backends;
* ``audio``: :func:`read_wav` and :data:`SAMPLE_RATE`.
"""

from __future__ import annotations

from include.video_pipeline.hooks.whisper.audio import SAMPLE_RATE, read_wav
from include.video_pipeline.hooks.whisper.decoding import DecodeOptions
from include.video_pipeline.hooks.whisper.hook import WhisperHook
from include.video_pipeline.hooks.whisper.models import LoadedModel, load_model
from include.video_pipeline.hooks.whisper.openai_backend import OPENAI_BATCH_SECONDS

__all__ = [
    "OPENAI_BATCH_SECONDS",
    "SAMPLE_RATE",
    "DecodeOptions",
    "LoadedModel",
    "WhisperHook",
    "load_model",
    "read_wav",
]
