"""What one decode pass is asked for and what it gives back, the same for both backends.

The hook builds :class:`DecodeOptions` (and a safer copy for the retry); each
backend turns them into its own library's arguments and returns a ``_Decoded``.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.video_pipeline.core.transcript import Segment


@dataclass(frozen=True)
class DecodeOptions:
    """What changes between the first pass and the safer retry."""

    beam_size: int
    temperature: tuple[float, ...]
    condition_on_previous_text: bool
    word_timestamps: bool
    vad: bool


@dataclass(frozen=True)
class _Decoded:
    segments: tuple[Segment, ...]
    language: str | None
    language_probability: float | None
