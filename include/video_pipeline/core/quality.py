"""The transcript quality gate, and the word error rate used to measure it.

Whisper fails in a few well-known ways, and each needs a different answer:

* **Repetition loops**: the decoder gets stuck and emits the same phrase for
  minutes. Detected by the zlib compression ratio of windows of text (a loop
  compresses far better than speech) and by phrases repeated back to back.
  Usually caused by conditioning on already-looping previous text, so a retry
  without it tends to fix them.
* **Low confidence**: a low duration-weighted average log-probability means
  the model was guessing (wrong language, heavy noise, a too-small model).
  A retry with plain greedy-at-temperature-0 decoding sometimes helps.
* **Nothing said**: silence or music. Whisper may still "hear" ``Thank you.``
  or ``[Music]``; such segments are dropped and the transcript is empty with
  quality NO_SPEECH, which is a valid result, not an error.

:func:`evaluate` turns segments into a :class:`QualityDecision`; the hook acts
on it (accept, retry once with safer settings, flag SUSPECT). Pure Python: it
runs on any backend's output and in tests without a model.
"""

from __future__ import annotations

import enum
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from include.video_pipeline.core.transcript import Segment, TranscriptQuality


class GateAction(enum.StrEnum):
    ACCEPT = "accept"
    RETRY = "retry"  # decode again with safer settings
    FLAG_SUSPECT = "flag_suspect"  # keep the text, but warn downstream
    NO_SPEECH = "no_speech"  # nothing was said: an empty transcript


@dataclass(frozen=True)
class QualityThresholds:
    """Defaults follow Whisper's own fallback thresholds where one exists."""

    # Whisper falls back to a higher temperature above 2.4; the same number works
    # for windows of text of similar length (~30 s of speech).
    max_compression_ratio: float = 2.4
    # zlib's fixed overhead makes short strings look incompressible, and a short
    # cue can legitimately repeat ("no, no, no"): only judge windows this long.
    compression_window_chars: int = 400
    min_compression_chars: int = 200
    # A phrase of n words repeated k times in a row is a loop when k >= min_repeats
    # and it covers at least min_repeated_words words: "да да да" is speech, the
    # same sentence four times running is not.
    min_repeats: int = 4
    min_repeated_words: int = 12
    max_ngram: int = 8
    # Whisper treats a window with avg_logprob below -1.0 as a failed decode.
    min_avg_logprob: float = -1.0
    # A segment is silence when the model says so *and* is unsure of its text:
    # Whisper's own no-speech rule (no_speech_prob > 0.6 and avg_logprob < -1).
    no_speech_prob: float = 0.6
    no_speech_logprob: float = -1.0


@dataclass(frozen=True)
class QualityMetrics:
    words: int
    max_compression_ratio: float | None  # None when the text is too short to judge
    longest_loop: str | None  # the repeated phrase, when there is one
    loop_repeats: int
    avg_logprob: float | None  # duration-weighted; None when the backend gave none
    dropped_segments: int  # segments removed as non-speech


@dataclass(frozen=True)
class QualityDecision:
    action: GateAction
    segments: tuple[Segment, ...]  # the segments to keep (non-speech ones removed)
    notes: tuple[str, ...]
    metrics: QualityMetrics

    @property
    def quality(self) -> TranscriptQuality:
        """The quality to record if the hook stops here (a RETRY that cannot be retried is SUSPECT)."""
        if self.action is GateAction.NO_SPEECH:
            return TranscriptQuality.NO_SPEECH
        if self.action is GateAction.ACCEPT:
            return TranscriptQuality.OK
        return TranscriptQuality.SUSPECT


# Whisper's training data is full of captions such as "[Music]", "(applause)",
# "♪ ... ♪" and "*laughs*"; on music or noise it reproduces them. They carry no speech.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪[^♪]*♪|[♪♫♬🎵🎶]")


def is_non_speech_text(text: str) -> bool:
    """True when ``text`` holds nothing but sound annotations and punctuation."""
    rest = _ANNOTATION.sub(" ", text)
    return not any(ch.isalnum() for ch in rest)


# What Whisper says over silence, learned from subtitled videos. The credits lines
# (well known from Russian-language output) are never real speech; the short
# phrases can be, so they count only when the model also thinks nobody spoke.
_CREDITS = re.compile(
    r"субтитр\w* (сделал|создавал|подогнал)|редактор субтитров|корректор [а-я]\.|amara\.org|dimatorzok",
    re.IGNORECASE,
)
_STOCK_PHRASES = frozenset(
    {
        "you",
        "thank you",
        "thanks for watching",
        "thank you for watching",
        "bye",
        "спасибо",
        "спасибо за внимание",
        "спасибо за просмотр",
        "продолжение следует",
    }
)


def is_silent_segment(segment: Segment, thresholds: QualityThresholds = QualityThresholds()) -> bool:
    """True for a segment that is not speech: annotations, subtitle credits, or Whisper's no-speech rule."""
    if is_non_speech_text(segment.text) or _CREDITS.search(segment.text):
        return True
    if segment.no_speech_prob is None or segment.no_speech_prob <= thresholds.no_speech_prob:
        return False
    if " ".join(normalize_words(segment.text)) in _STOCK_PHRASES:
        return True
    return segment.avg_logprob is not None and segment.avg_logprob < thresholds.no_speech_logprob


def compression_ratio(text: str) -> float:
    """Bytes over zlib-compressed bytes, as Whisper computes it."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def max_window_compression_ratio(text: str, window_chars: int, min_chars: int) -> float | None:
    """The worst compression ratio over consecutive windows of ``text``.

    The whole transcript is not judged at once because ordinary speech compresses
    better the longer it gets; windows keep the threshold meaningful for an hour of audio.
    """
    if len(text) < min_chars:
        return None
    step = max(window_chars // 2, 1)
    starts = range(0, max(len(text) - window_chars, 0) + 1, step)
    ratios = [compression_ratio(text[i : i + window_chars]) for i in starts]
    tail = text[-window_chars:]
    ratios.append(compression_ratio(tail))
    return max(ratios)


def longest_repeated_phrase(words: Sequence[str], max_ngram: int) -> tuple[tuple[str, ...], int]:
    """The n-gram repeated back to back the most times (by words covered), and its count."""
    best: tuple[tuple[str, ...], int] = ((), 0)
    best_cover = 0
    for n in range(1, max_ngram + 1):
        i = 0
        while i + 2 * n <= len(words):
            gram = tuple(words[i : i + n])
            repeats = 1
            while tuple(words[i + repeats * n : i + (repeats + 1) * n]) == gram:
                repeats += 1
            if repeats > 1 and repeats * n > best_cover:
                best, best_cover = (gram, repeats), repeats * n
            # Skip over a found run: its inner offsets only rediscover the same loop.
            i += (repeats - 1) * n + 1 if repeats > 1 else 1
    return best


def weighted_avg_logprob(segments: Iterable[Segment]) -> float | None:
    total = weight_sum = 0.0
    for segment in segments:
        if segment.avg_logprob is None:
            continue
        weight = max(segment.end - segment.start, 0.01)
        total += segment.avg_logprob * weight
        weight_sum += weight
    return total / weight_sum if weight_sum else None


def evaluate(
    segments: Sequence[Segment],
    *,
    retried: bool = False,
    thresholds: QualityThresholds = QualityThresholds(),
) -> QualityDecision:
    """Judge a decoded transcript.

    :param segments: every segment the backend produced, in order.
    :param retried: whether these segments already come from the safer retry;
        a failing gate then flags SUSPECT instead of asking for another retry.
    """
    kept = tuple(s for s in segments if not is_silent_segment(s, thresholds))
    dropped = len(segments) - len(kept)
    text = " ".join(s.text.strip() for s in kept if s.text.strip())
    words = normalize_words(text)
    ratio = max_window_compression_ratio(text, thresholds.compression_window_chars, thresholds.min_compression_chars)
    phrase, repeats = longest_repeated_phrase(words, thresholds.max_ngram)
    is_loop = repeats >= thresholds.min_repeats and repeats * len(phrase) >= thresholds.min_repeated_words
    logprob = weighted_avg_logprob(kept)
    metrics = QualityMetrics(
        words=len(words),
        max_compression_ratio=ratio,
        longest_loop=" ".join(phrase) if is_loop else None,
        loop_repeats=repeats if is_loop else 0,
        avg_logprob=logprob,
        dropped_segments=dropped,
    )

    if not words:
        note = "no speech detected"
        if dropped:
            note += f" ({dropped} segment(s) of non-speech such as music or silence dropped)"
        return QualityDecision(GateAction.NO_SPEECH, (), (note,), metrics)

    problems: list[str] = []
    if ratio is not None and ratio > thresholds.max_compression_ratio:
        problems.append(f"repetitive text: compression ratio {ratio:.2f} > {thresholds.max_compression_ratio}")
    if is_loop:
        problems.append(f"repetition loop: {' '.join(phrase)!r} repeated {repeats} times in a row")
    if logprob is not None and logprob < thresholds.min_avg_logprob:
        problems.append(f"low confidence: average log-probability {logprob:.2f} < {thresholds.min_avg_logprob}")

    if not problems:
        return QualityDecision(GateAction.ACCEPT, kept, (), metrics)
    action = GateAction.FLAG_SUSPECT if retried else GateAction.RETRY
    return QualityDecision(action, kept, tuple(problems), metrics)


_WORD = re.compile(r"[\w']+")


def normalize_words(text: str) -> list[str]:
    """Lower-cased words without punctuation; Unicode-aware so Cyrillic works (ё folds to е)."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е").replace("’", "'")
    return [w.strip("'") for w in _WORD.findall(folded) if w.strip("'")]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalized words.

    An empty reference gives 0.0 for an empty hypothesis and 1.0 otherwise, so
    "said nothing, heard something" still counts as an error.
    """
    ref = normalize_words(reference)
    hyp = normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    # One row of the Levenshtein table at a time: memory is O(len(hyp)).
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[-1] / len(ref)
