"""The transcript quality gate and word error rate: plain pytest, no model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from include.video_pipeline.core import quality
from include.video_pipeline.core.quality import (
    GateAction,
    compression_ratio,
    evaluate,
    is_non_speech_text,
    is_silent_segment,
    longest_repeated_phrase,
    normalize_words,
    word_error_rate,
)
from include.video_pipeline.core.transcript import Segment, TranscriptQuality

SPEECH_EN = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch. "
    "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage."
)
SPEECH_RU = (
    "Сегодня мы расскажем, как устроен наш монтажный процесс и почему мы перешли на новую камеру. "
    "Во-первых, она легче, во-вторых, батарея держит почти весь съёмочный день. "
    "Зрители часто спрашивают про звук: мы пишем его отдельно на петличку и сводим уже при монтаже."
)


def seg(text: str, start: float = 0.0, end: float = 5.0, logprob: float | None = -0.3, no_speech: float | None = 0.05):
    return Segment(start, end, text, avg_logprob=logprob, no_speech_prob=no_speech)


def segments_of(text: str, per_segment: int = 12) -> list[Segment]:
    words = text.split()
    chunks = [" ".join(words[i : i + per_segment]) for i in range(0, len(words), per_segment)]
    return [seg(c, 5.0 * i, 5.0 * (i + 1)) for i, c in enumerate(chunks)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Music]", True),
        ("♪ ♪", True),
        ("(upbeat music)", True),
        ("*laughs*", True),
        ("[МУЗЫКА]", True),
        ("...", True),
        ("", True),
        ("(laughs) Okay, let's go.", False),
        ("Привет", False),
        ("♪ la la la", False),
    ],
)
def test_non_speech_text(text, expected):
    assert is_non_speech_text(text) is expected


@pytest.mark.parametrize(
    ("segment", "silent"),
    [
        (seg("Thank you.", no_speech=0.94, logprob=-0.9), True),  # stock phrase over silence
        (seg(" You", no_speech=0.94, logprob=-0.94), True),
        (seg("Thank you.", no_speech=0.1, logprob=-0.2), False),  # said for real
        (seg("Субтитры сделал DimaTorzok", no_speech=0.1, logprob=-0.2), True),
        (seg("Редактор субтитров А.Семкин Корректор А.Егорова"), True),
        (seg("Продолжение следует...", no_speech=0.8, logprob=-0.5), True),
        (seg("We shipped the new release today.", no_speech=0.7, logprob=-1.3), True),  # Whisper's rule
        (seg("We shipped the new release today.", no_speech=0.7, logprob=-0.4), False),
        (seg("We shipped the new release today.", no_speech=None, logprob=None), False),
    ],
)
def test_silent_segment(segment, silent):
    assert is_silent_segment(segment) is silent


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        (SPEECH_EN, 1.0, 2.4),
        (SPEECH_RU, 1.0, 2.4),
        ("Thank you for watching. " * 20, 5.0, 100.0),
        ("Спасибо за просмотр. " * 20, 5.0, 100.0),
    ],
)
def test_compression_ratio(text, low, high):
    assert low < compression_ratio(text) < high


@pytest.mark.parametrize(
    ("words", "phrase", "repeats"),
    [
        ("a b c a b c a b c d".split(), ("a", "b", "c"), 3),
        ("да да да нет".split(), ("да",), 3),
        ("one two three four".split(), (), 0),
        ("x y x y x y x y".split(), ("x", "y"), 4),
    ],
)
def test_longest_repeated_phrase(words, phrase, repeats):
    assert longest_repeated_phrase(words, 8) == (phrase, repeats)


@pytest.mark.parametrize("text", [SPEECH_EN, SPEECH_RU, "Да, да, да, да, конечно."])
def test_normal_speech_is_accepted(text):
    decision = evaluate(segments_of(text))
    assert decision.action is GateAction.ACCEPT, decision.notes
    assert decision.quality is TranscriptQuality.OK
    assert decision.notes == ()
    assert len(decision.segments) == len(segments_of(text))


LOOP_EN = "I'm going to go ahead and do that. " * 8
LOOP_RU = "Я сейчас покажу, как это сделать. " * 8


@pytest.mark.parametrize("loop", [LOOP_EN, LOOP_RU])
@pytest.mark.parametrize(
    ("retried", "action", "quality_"),
    [(False, GateAction.RETRY, TranscriptQuality.SUSPECT), (True, GateAction.FLAG_SUSPECT, TranscriptQuality.SUSPECT)],
)
def test_repetition_loop_is_retried_then_flagged(loop, retried, action, quality_):
    decision = evaluate([*segments_of(SPEECH_EN[:120]), seg(loop, 10, 40)], retried=retried)
    assert decision.action is action
    assert decision.quality is quality_
    assert any("repetition loop" in n for n in decision.notes)
    assert decision.metrics.loop_repeats >= 4
    assert decision.segments, "a suspect transcript keeps its text"


def test_loop_spread_over_segments_is_found():
    # Whisper often emits a loop as many identical short segments, each looking harmless alone.
    segments = [seg("Thank you so much for watching.", i, i + 1) for i in range(8)]
    decision = evaluate(segments)
    assert decision.action is GateAction.RETRY
    assert decision.metrics.max_compression_ratio is not None
    assert decision.metrics.max_compression_ratio > 2.4


@pytest.mark.parametrize("logprob", [-1.2, -2.5])
def test_low_confidence_is_retried(logprob):
    decision = evaluate([seg(SPEECH_EN, logprob=logprob)])
    assert decision.action is GateAction.RETRY
    assert any("low confidence" in n for n in decision.notes)
    assert decision.metrics.avg_logprob == pytest.approx(logprob)


def test_confidence_is_weighted_by_duration():
    # One short unsure word must not condemn a long confident transcript.
    segments = [seg(SPEECH_EN, 0, 60, logprob=-0.3), seg("Hmm.", 60, 61, logprob=-3.0)]
    decision = evaluate(segments)
    assert decision.action is GateAction.ACCEPT
    assert decision.metrics.avg_logprob == pytest.approx((-0.3 * 60 - 3.0) / 61)


@pytest.mark.parametrize(
    "segments",
    [
        [],
        [seg("[Music]"), seg("♪")],
        [seg(" You", no_speech=0.94, logprob=-0.94)],
        [seg("Субтитры сделал DimaTorzok")],
    ],
)
def test_no_speech(segments):
    decision = evaluate(segments)
    assert decision.action is GateAction.NO_SPEECH
    assert decision.quality is TranscriptQuality.NO_SPEECH
    assert decision.segments == ()
    assert decision.notes and "no speech" in decision.notes[0]
    assert decision.metrics.dropped_segments == len(segments)


def test_non_speech_segments_are_dropped_from_real_speech():
    segments = [seg("[Music]", 0, 5), *segments_of(SPEECH_EN), seg("Субтитры сделал DimaTorzok", 90, 95)]
    decision = evaluate(segments)
    assert decision.action is GateAction.ACCEPT
    assert [s.text for s in decision.segments] == [s.text for s in segments_of(SPEECH_EN)]
    assert decision.metrics.dropped_segments == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("It's a dog's life.", ["it's", "a", "dog's", "life"]),
        ("Ёжик в тумане — ЁЛКА", ["ежик", "в", "тумане", "елка"]),
        ("don’t", ["don't"]),
        ("  ", []),
    ],
)
def test_normalize_words(text, words):
    assert normalize_words(text) == words


@pytest.mark.parametrize(
    ("reference", "hypothesis", "wer"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 0.0),
        ("The cat sat on the mat.", "the cat, sat on the mat", 0.0),
        ("the cat sat on the mat", "the cat sit on the mat", 1 / 6),  # substitution
        ("the cat sat on the mat", "the cat on the mat", 1 / 6),  # deletion
        ("the cat sat on the mat", "the cat sat down on the mat", 1 / 6),  # insertion
        ("the cat sat", "", 1.0),
        ("", "", 0.0),
        ("", "hallucinated words", 1.0),
        ("a b", "c d e f", 2.0),  # insertions can push WER past 1
        ("Привет, мир! Всё хорошо.", "привет мир все хорошо", 0.0),
        ("рыба плывёт", "рыбы плывет", 0.5),
    ],
)
def test_word_error_rate(reference, hypothesis, wer):
    assert word_error_rate(reference, hypothesis) == pytest.approx(wer)


FORBIDDEN = {"airflow", "boto3", "torch", "faster_whisper", "whisper", "av", "ctranslate2", "numpy"}


@pytest.mark.parametrize("module", ["quality.py", "subtitles.py"])
def test_core_module_is_pure(module):
    path = Path(quality.__file__).with_name(module)
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
