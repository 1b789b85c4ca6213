"""Grounding: making a schema-valid analysis agree with the transcript.

``ground_analysis`` keeps chapters inside the video (or chunk) and on segment
boundaries, keeps only quotes that were really said (timed by where the words
are), and applies the list caps. What it changes is reported as flags, never
silently.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from include.video_pipeline.core.analysis.chunking import Chunk
from include.video_pipeline.core.analysis.languages import normalize_language
from include.video_pipeline.core.analysis.schema import LIMITS, MAX_TITLE_CHARS, SCHEMA_VERSION, validate_analysis
from include.video_pipeline.core.transcript import Segment, Transcript


def transcript_duration(transcript: Transcript) -> float:
    last_end = max((s.end for s in transcript.segments), default=0.0)
    return max(transcript.duration, last_end)


_NON_WORD = re.compile(r"[\W_]+", flags=re.UNICODE)


def normalize_for_match(text: str) -> str:
    """Casefolded words separated by single spaces; punctuation and ``ё``/``е`` differences ignored.

    Models re-punctuate and re-case quotes; what must match is the words.
    """
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return " ".join(_NON_WORD.sub(" ", text).split())


@dataclass(frozen=True)
class _TranscriptIndex:
    text: str  # normalised segments joined by single spaces
    offsets: tuple[int, ...]  # where each segment starts in ``text``
    segments: tuple[Segment, ...]

    @classmethod
    def build(cls, segments: Sequence[Segment]) -> _TranscriptIndex:
        parts: list[str] = []
        offsets: list[int] = []
        kept: list[Segment] = []
        position = 0
        for segment in segments:
            normalized = normalize_for_match(segment.text)
            if not normalized:
                continue
            offsets.append(position)
            parts.append(normalized)
            kept.append(segment)
            position += len(normalized) + 1
        return cls(" ".join(parts), tuple(offsets), tuple(kept))

    def find(self, quote: str) -> Segment | None:
        """The segment where ``quote`` begins, matching on word boundaries, or None."""
        needle = normalize_for_match(quote)
        if not needle:
            return None
        haystack = f" {self.text} "
        at = haystack.find(f" {needle} ")
        if at < 0:
            return None
        return self.segments[bisect.bisect_right(self.offsets, at) - 1]


def _clean_strings(values: Iterable[Any], *, limit: int, casefold_dedupe: bool = True) -> tuple[list[str], bool]:
    seen: set[str] = set()
    result: list[str] = []
    for value in values:
        text = " ".join(str(value).split())
        key = text.casefold() if casefold_dedupe else text
        if text and key not in seen:
            seen.add(key)
            result.append(text)
    return result[:limit], len(result) > limit


def _snap(value: float, boundaries: Sequence[float]) -> float:
    at = bisect.bisect_left(boundaries, value)
    candidates = boundaries[max(0, at - 1) : at + 1]
    return min(candidates, key=lambda b: (abs(b - value), b)) if candidates else value


def ground_analysis(
    data: dict[str, Any],
    transcript: Transcript,
    *,
    language: str,
    chunk: Chunk | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Make a schema-valid analysis agree with the transcript; return it and what was changed.

    ``chunk`` limits chapters and quotes to that part of the transcript (used
    when a long transcript is analysed in parts). Flags are stable codes, each
    listed once, in the order the checks run.
    """
    result = copy.deepcopy(data)
    flags: list[str] = []

    def flag(code: str) -> None:
        if code not in flags:
            flags.append(code)

    result["schema_version"] = SCHEMA_VERSION
    if normalize_language(result.get("language")) != language:
        flag("language_corrected")
    result["language"] = language

    title = " ".join(result["title_suggestion"].split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
        flag("title_truncated")
    result["title_suggestion"] = title
    result["summary"] = result["summary"].strip()

    for key in ("key_points", "topics", "tags", "action_items"):
        result[key], truncated = _clean_strings(result[key], limit=LIMITS[key])
        if truncated:
            flag(f"{key}_truncated")
    result["tags"], _ = _clean_strings((t.lower() for t in result["tags"]), limit=LIMITS["tags"])
    for kind in ("people", "organizations", "places"):
        result["entities"][kind], truncated = _clean_strings(result["entities"][kind], limit=LIMITS["entities"])
        if truncated:
            flag("entities_truncated")

    segments = chunk.segments if chunk else tuple(s for s in transcript.segments if s.text.strip())
    window_start, window_end = (chunk.start, chunk.end) if chunk else (0.0, transcript_duration(transcript))
    result["chapters"] = _ground_chapters(result["chapters"], segments, window_start, window_end, flag)
    result["quotes"] = _ground_quotes(result["quotes"], segments, flag)
    return validate_analysis(result), flags


def _ground_chapters(
    chapters: list[dict[str, Any]],
    segments: Sequence[Segment],
    window_start: float,
    window_end: float,
    flag: Callable[[str], None],
) -> list[dict[str, Any]]:
    if not segments:
        if chapters:
            flag("chapters_dropped_no_speech")
        return []
    starts = sorted({s.start for s in segments})
    ends = sorted({s.end for s in segments})
    cleaned: list[dict[str, Any]] = []
    for chapter in chapters:
        start, end = float(chapter["start"]), float(chapter["end"])
        if not (math.isfinite(start) and math.isfinite(end)):
            flag("chapter_dropped_invalid_time")
            continue
        if end < start:
            start, end = end, start
            flag("chapter_times_swapped")
        if start < window_start or end > window_end:
            flag("chapter_clamped")
            start, end = max(start, window_start), min(end, window_end)
            if start >= end:
                flag("chapter_dropped_out_of_range")
                continue
        cleaned.append(
            {
                "start": _snap(start, starts),
                "end": _snap(end, ends),
                "title": " ".join(str(chapter["title"]).split()),
                "summary": str(chapter["summary"]).strip(),
            }
        )
    if any(a["start"] > b["start"] for a, b in itertools.pairwise(cleaned)):
        flag("chapters_reordered")
    cleaned.sort(key=lambda c: (c["start"], c["end"]))
    grounded: list[dict[str, Any]] = []
    for i, chapter in enumerate(cleaned):
        if grounded and chapter["start"] < grounded[-1]["end"]:
            flag("chapters_overlap_fixed")
            # End the earlier chapter on the last segment end before the later
            # one starts, so both still sit on segment boundaries.
            earlier = [e for e in ends if e <= chapter["start"]]
            grounded[-1]["end"] = earlier[-1] if earlier else grounded[-1]["start"]
            if grounded[-1]["end"] <= grounded[-1]["start"]:
                grounded.pop()
        if chapter["end"] <= chapter["start"]:
            # Snapping can collapse a chapter shorter than one segment; extend it
            # to the end of the segment it starts in when that is still free.
            following = [e for e in ends if e > chapter["start"]]
            next_start = cleaned[i + 1]["start"] if i + 1 < len(cleaned) else math.inf
            if following and following[0] <= next_start:
                chapter["end"] = following[0]
            else:
                flag("chapter_dropped_empty")
                continue
        grounded.append(chapter)
    if len(grounded) > LIMITS["chapters"]:
        flag("chapters_truncated")
    return grounded[: LIMITS["chapters"]]


def _ground_quotes(
    quotes: list[dict[str, Any]], segments: Sequence[Segment], flag: Callable[[str], None]
) -> list[dict[str, Any]]:
    index = _TranscriptIndex.build(segments)
    grounded: list[dict[str, Any]] = []
    seen: set[str] = set()
    for quote in quotes:
        text = " ".join(str(quote["text"]).split()).strip("\"'«»“”„ ")
        segment = index.find(text)
        if segment is None:
            flag("quote_not_in_transcript")
            continue
        key = normalize_for_match(text)
        if key in seen:
            continue
        seen.add(key)
        # The timestamp comes from where the words are, not from the model.
        if abs(float(quote["start"]) - segment.start) > 1.0:
            flag("quote_start_corrected")
        grounded.append({"text": text, "start": segment.start})
    if len(grounded) > LIMITS["quotes"]:
        flag("quotes_truncated")
    return grounded[: LIMITS["quotes"]]
