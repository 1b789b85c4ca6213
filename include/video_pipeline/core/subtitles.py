"""Transcript writers (SRT, WebVTT, plain text, JSON) and SRT/WebVTT parsers.

Whisper's segments are decoding units, not subtitles: one can hold 30 s and
300 characters. :func:`build_cues` turns them into readable cues following the
usual broadcast rules (at most 2 lines of at most 42 characters, breaks at
punctuation where possible, no cue flashing by in under a second unless the
speech itself is that short). Long segments are split at word boundaries; the
split times come from word timestamps when the backend produced them, else
they are spread over the segment in proportion to characters, which tracks
speaking time far better than an equal share per word.

Everything is ``str`` in and out; callers write it as UTF-8 (no BOM, which some
players show as a stray character). Lengths are counted in characters, so
Cyrillic lines are as long as Latin ones.
"""

from __future__ import annotations

import enum
import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from include.video_pipeline.core import outputs
from include.video_pipeline.core.transcript import Segment, Transcript


@dataclass(frozen=True)
class CueLayout:
    max_line_chars: int = 42
    max_lines: int = 2
    min_duration: float = 1.0  # seconds; a shorter cue cannot be read


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def duration(self) -> float:
        return self.end - self.start


class SubtitleParseError(ValueError):
    """A subtitle file is malformed; the message names the line."""


@dataclass(frozen=True)
class _Token:
    text: str
    start: float
    end: float


_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
_CLAUSE_END = (",", ";", ":", "—", "–", "，", "、")


def _break_bonus(token: _Token) -> int:
    """How much we like a line or cue break after ``token``, in characters of imbalance."""
    text = token.text.rstrip("\"'»”)")
    if text.endswith(_SENTENCE_END):
        return 14
    if text.endswith(_CLAUSE_END):
        return 8
    return 0


def _join(tokens: Sequence[_Token]) -> str:
    return " ".join(t.text for t in tokens)


def _wrap(tokens: Sequence[_Token], layout: CueLayout) -> tuple[str, ...] | None:
    """Lay ``tokens`` out in as few lines as possible, balanced; None when they do not fit."""
    best = _wrap_scored(tokens, layout.max_line_chars, layout.max_lines)
    return best[1] if best else None


def _wrap_scored(tokens: Sequence[_Token], width: int, lines: int) -> tuple[float, tuple[str, ...]] | None:
    text = _join(tokens)
    # One line whenever it fits: a second line is harder to read than a long one.
    if len(text) <= width:
        return 0.0, (text,)
    if lines <= 1:
        return None
    best: tuple[float, tuple[str, ...]] | None = None
    for k in range(1, len(tokens)):
        head = _join(tokens[:k])
        if len(head) > width:
            break
        rest = _wrap_scored(tokens[k:], width, lines - 1)
        if rest is None:
            continue
        longest = max(len(head), *(len(line) for line in rest[1]))
        # Balanced lines (a short first line looks like a typo), breaks after punctuation.
        score = longest - _break_bonus(tokens[k - 1]) + rest[0]
        if best is None or score < best[0]:
            best = (score, (head, *rest[1]))
    return best


def _tokens(segment: Segment, width: int) -> list[_Token]:
    if segment.words:
        raw = [_Token(w.text.strip(), w.start, w.end) for w in segment.words if w.text.strip()]
    else:
        words = segment.text.split()
        # Time in proportion to characters (plus one for the gap): long words take longer to say.
        # Each word runs until the next begins, so the pieces of one segment leave no flicker.
        weights = [len(w) + 1 for w in words]
        total = sum(weights) or 1
        span = max(segment.end - segment.start, 0.0)
        raw, elapsed = [], 0
        for word, weight in zip(words, weights, strict=True):
            start = segment.start + span * elapsed / total
            elapsed += weight
            raw.append(_Token(word, start, segment.start + span * elapsed / total))
    out: list[_Token] = []
    for token in raw:
        # A "word" wider than a line (a URL, a long compound) is cut hard; nothing else fits the rule.
        if len(token.text) <= width:
            out.append(token)
            continue
        pieces = [token.text[i : i + width] for i in range(0, len(token.text), width)]
        step = (token.end - token.start) / len(pieces)
        out.extend(_Token(p, token.start + i * step, token.start + (i + 1) * step) for i, p in enumerate(pieces))
    return out


def _pack(tokens: list[_Token], layout: CueLayout) -> list[list[_Token]]:
    """Greedy: fill a cue until the next word would not fit, then cut at the best earlier break."""
    pieces: list[list[_Token]] = []
    current: list[_Token] = []
    capacity = layout.max_line_chars * layout.max_lines
    for token in tokens:
        if _wrap([*current, token], layout) is not None:
            current.append(token)
            continue
        # Prefer ending the cue at a sentence end, else after a clause, as long as the cue
        # keeps a third of its room used; among equals the latest break keeps cues fullest.
        cut, best = len(current), 0
        for k in range(len(current) - 1, 0, -1):
            bonus = _break_bonus(current[k - 1])
            if bonus > best and len(_join(current[:k])) >= capacity / 3:
                cut, best = k, bonus
        pieces.append(current[:cut])
        current = [*current[cut:], token]
        while _wrap(current, layout) is None:  # the carried-over words plus this one overflow
            pieces.append(current[:-1])
            current = current[-1:]
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


def _span(piece: Sequence[_Token]) -> float:
    return piece[-1].end - piece[0].start


def _fix_short(pieces: list[list[_Token]], layout: CueLayout) -> list[list[_Token]]:
    """Give a too-short piece time from a neighbour: merge if the text fits, else move the boundary."""
    i = 0
    while i < len(pieces):
        if _span(pieces[i]) >= layout.min_duration or len(pieces) == 1:
            i += 1
            continue
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(pieces)]
        neighbours.sort(key=lambda j: _span(pieces[j]))
        merged = False
        for j in neighbours:
            a, b = sorted((i, j))
            if _wrap(pieces[a] + pieces[b], layout) is not None:
                pieces[a : b + 1] = [pieces[a] + pieces[b]]
                i = a
                merged = True
                break
        if merged:
            continue
        # Cannot merge: pick the boundary between the two that makes the shorter side longest.
        a, b = sorted((i, neighbours[0]))
        combined = pieces[a] + pieces[b]
        best_k, best_score = len(pieces[a]), min(_span(pieces[a]), _span(pieces[b]))
        for k in range(1, len(combined)):
            left, right = combined[:k], combined[k:]
            if _wrap(left, layout) is None or _wrap(right, layout) is None:
                continue
            score = min(_span(left), _span(right))
            if score > best_score + 1e-9:
                best_k, best_score = k, score
        pieces[a : b + 1] = [combined[:best_k], combined[best_k:]]
        i += 1
    return pieces


def build_cues(
    segments: Iterable[Segment], layout: CueLayout = CueLayout(), *, media_duration: float | None = None
) -> list[Cue]:
    """Readable, non-overlapping cues in time order.

    :param media_duration: when known, the last cue is not stretched past the end of the media.
    """
    cues: list[Cue] = []
    for segment in segments:
        tokens = _tokens(segment, layout.max_line_chars)
        if not tokens:
            continue
        for piece in _fix_short(_pack(tokens, layout), layout):
            lines = _wrap(piece, layout)
            assert lines is not None  # _pack and _fix_short only produce pieces that fit
            start = max(piece[0].start, segment.start)
            cues.append(Cue(start, max(piece[-1].end, start), lines))
    cues.sort(key=lambda c: c.start)

    # Stretch short cues into the silence after them (never over the next cue): reading
    # time costs nothing there. Then trim any overlap left by the backend's timestamps.
    out: list[Cue] = []
    for i, cue in enumerate(cues):
        limit = cues[i + 1].start if i + 1 < len(cues) else (media_duration or float("inf"))
        end = cue.end
        if end - cue.start < layout.min_duration:
            end = max(end, min(cue.start + layout.min_duration, limit))
        end = min(end, max(limit, cue.start))
        out.append(replace(cue, end=end))
    return out


# --- timestamps -------------------------------------------------------------------


def _clock(seconds: float, separator: str) -> str:
    ms = max(round(seconds * 1000), 0)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def srt_timestamp(seconds: float) -> str:
    return _clock(seconds, ",")


def vtt_timestamp(seconds: float) -> str:
    return _clock(seconds, ".")


# --- writers ----------------------------------------------------------------------


def cues_to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{i}\n{srt_timestamp(c.start)} --> {srt_timestamp(c.end)}\n{c.text}\n" for i, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def cues_to_vtt(cues: Sequence[Cue]) -> str:
    # Cue text is HTML-like in WebVTT: "<" would open a tag and "&" an entity.
    blocks = [
        f"{vtt_timestamp(c.start)} --> {vtt_timestamp(c.end)}\n{html.escape(c.text, quote=False)}\n" for c in cues
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_srt(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    return cues_to_srt(build_cues(transcript.segments, layout, media_duration=transcript.duration or None))


def to_vtt(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    return cues_to_vtt(build_cues(transcript.segments, layout, media_duration=transcript.duration or None))


def to_text(transcript: Transcript) -> str:
    """One segment per line: readable as is, and diff-friendly."""
    lines = [s.text.strip() for s in transcript.segments if s.text.strip()]
    return "\n".join(lines) + "\n" if lines else ""


def to_json(transcript: Transcript) -> str:
    # ensure_ascii=False keeps Cyrillic readable in the file instead of \u-escapes.
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n"


class TranscriptFormat(enum.StrEnum):
    SRT = "srt"
    VTT = "vtt"
    TXT = "txt"
    JSON = "json"

    @property
    def extension(self) -> str:
        return "." + self.value

    @property
    def file_name(self) -> str:
        """The name of this format's file in a video's outputs (``transcript.srt``)."""
        return outputs.transcript_name(self.extension)

    @property
    def content_type(self) -> str:
        return outputs.content_type(self.file_name)


def render(transcript: Transcript, fmt: TranscriptFormat, layout: CueLayout = CueLayout()) -> str:
    if fmt is TranscriptFormat.SRT:
        return to_srt(transcript, layout)
    if fmt is TranscriptFormat.VTT:
        return to_vtt(transcript, layout)
    if fmt is TranscriptFormat.TXT:
        return to_text(transcript)
    return to_json(transcript)


# --- parsers ----------------------------------------------------------------------

_SRT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"
_SRT_TIMING = re.compile(rf"^{_SRT_TIME} --> {_SRT_TIME}$")
_VTT_TIME = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_VTT_TIMING = re.compile(rf"^{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t].*)?$")


def _seconds(hours: str | None, minutes: str, secs: str, ms: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(ms) / 1000


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Blank-line separated blocks, each with the 1-based number of its first line."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    first = 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not current:
                first = number
            current.append(line)
        elif current:
            blocks.append((first, current))
            current = []
    if current:
        blocks.append((first, current))
    return blocks


def _cue(start: float, end: float, lines: list[str], where: int) -> Cue:
    if end < start:
        raise SubtitleParseError(f"line {where}: cue ends before it starts")
    if not lines:
        raise SubtitleParseError(f"line {where}: cue has no text")
    return Cue(start, end, tuple(lines))


def parse_srt(text: str) -> list[Cue]:
    """Parse SubRip strictly: sequential indexes from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, text."""
    cues: list[Cue] = []
    for first, block in _blocks(text):
        if len(block) < 2:
            raise SubtitleParseError(f"line {first}: incomplete cue {block!r}")
        if block[0].strip() != str(len(cues) + 1):
            raise SubtitleParseError(f"line {first}: expected cue number {len(cues) + 1}, got {block[0]!r}")
        timing = _SRT_TIMING.match(block[1].strip())
        if not timing:
            raise SubtitleParseError(f"line {first + 1}: bad timing line {block[1]!r}")
        g = timing.groups()
        cues.append(_cue(_seconds(*g[:4]), _seconds(*g[4:]), block[2:], first))
    return cues


def parse_vtt(text: str) -> list[Cue]:
    """Parse WebVTT: the ``WEBVTT`` header, optional cue identifiers; NOTE/STYLE/REGION blocks skipped."""
    blocks = _blocks(text)
    if not blocks or not re.match(r"^WEBVTT(?:[ \t].*)?$", blocks[0][1][0]):
        raise SubtitleParseError("line 1: missing WEBVTT header")
    cues: list[Cue] = []
    for first, block in blocks[1:]:
        if re.match(r"^(NOTE|STYLE|REGION)(?:[ \t]|$)", block[0]):
            continue
        offset = 0 if "-->" in block[0] else 1  # an optional cue identifier comes first
        if offset >= len(block):
            raise SubtitleParseError(f"line {first}: cue without timing {block!r}")
        timing = _VTT_TIMING.match(block[offset].strip())
        if not timing:
            raise SubtitleParseError(f"line {first + offset}: bad timing line {block[offset]!r}")
        g = timing.groups()
        lines = [html.unescape(line) for line in block[offset + 1 :]]
        cues.append(_cue(_seconds(*g[:4]), _seconds(*g[4:]), lines, first))
    return cues
