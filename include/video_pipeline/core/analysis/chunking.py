"""Tokens and chunks: how a transcript is rendered for a model and split to fit.

Long transcripts are split into chunks at segment boundaries by an estimated
token count (scaled by the provider's own count when it has one), so each call
stays within its budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from include.video_pipeline.core.transcript import Segment, Transcript

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def estimate_tokens(text: str) -> int:
    """A conservative token estimate, without a tokenizer.

    Gemini's tokenizer averages about 4 characters per token for English but
    splits Cyrillic much finer (about 2.5), so counting them apart keeps Russian
    chunks from overflowing what an English-tuned ratio would allow.
    """
    cyrillic = len(_CYRILLIC.findall(text))
    return math.ceil(cyrillic / 2.5 + (len(text) - cyrillic) / 4)


def format_timestamp(seconds: float) -> str:
    return f"{seconds:.1f}"


def render_transcript(segments: Iterable[Segment]) -> str:
    """One line per segment, ``[12.3-15.0] text``: the model sees timing it can cite."""
    return "\n".join(
        f"[{format_timestamp(s.start)}-{format_timestamp(s.end)}] {s.text.strip()}" for s in segments if s.text.strip()
    )


@dataclass(frozen=True)
class Chunk:
    """A run of consecutive segments analysed in one call."""

    index: int
    count: int
    segments: tuple[Segment, ...]

    @property
    def start(self) -> float:
        return self.segments[0].start

    @property
    def end(self) -> float:
        return self.segments[-1].end


def chunk_transcript(transcript: Transcript, *, max_tokens: int, token_scale: float = 1.0) -> list[Chunk]:
    """Split at segment boundaries so each chunk's rendered lines fit ``max_tokens``.

    A single segment longer than the budget becomes a chunk of its own rather
    than being cut mid-sentence (Whisper segments are at most ~30 s of speech).
    ``token_scale`` corrects the estimate: the provider's real count of the whole
    transcript divided by ``estimate_tokens`` of it.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    if not (math.isfinite(token_scale) and token_scale > 0):
        raise ValueError("token_scale must be a positive number")
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    used = 0.0
    for segment in transcript.segments:
        if not segment.text.strip():
            continue
        cost = (estimate_tokens(render_transcript([segment])) + 1) * token_scale  # + the newline
        if current and used + cost > max_tokens:
            groups.append(current)
            current, used = [], 0.0
        current.append(segment)
        used += cost
    if current:
        groups.append(current)
    return [Chunk(index=i, count=len(groups), segments=tuple(g)) for i, g in enumerate(groups)]
