"""The offline analyzer on realistic English and Russian transcripts."""

from __future__ import annotations

import pytest

from include.video_pipeline.core.analysis import normalize_for_match, schema_errors
from include.video_pipeline.core.offline_analyzer import OfflineAnalyzer, split_sentences, stem, tokenize
from include.video_pipeline.core.transcript import Segment, Transcript, TranscriptQuality

# A product meeting: a budget part, a long pause, then a marketing part.
EN_LINES = [
    (0.0, 5.1, "Good morning everyone, today we review the budget for the new website."),
    (5.4, 11.0, "The website budget was approved by finance last week,"),
    (11.2, 15.8, "so the design agency can start on the website in March."),
    (16.0, 21.5, "The biggest risk is the schedule, because the website design is not final."),
    (21.9, 27.0, "Anna, please send the final website mockups by Friday."),
    (60.0, 66.2, "Now the marketing campaign. The campaign launches in Berlin in April."),
    (66.5, 72.0, "A third of the marketing budget goes to social media advertising."),
    (72.4, 78.3, "If the Berlin campaign works, we will extend the campaign to Munich."),
    (78.6, 84.0, "We need to prepare a campaign report by the end of the month."),
]

RU_LINES = [
    (0.0, 4.2, "Добрый день, коллеги. Сегодня обсуждаем бюджет на запуск нового сайта."),
    (4.5, 9.8, "Бюджет на разработку сайта мы согласовали с финансовым отделом на прошлой неделе,"),
    (10.1, 15.0, "поэтому дизайн-студия начнёт работу над сайтом в марте."),
    (15.2, 21.0, "Главный риск — сроки: дизайн сайта ещё не утверждён."),
    (21.4, 26.0, "Анна, пришлите, пожалуйста, финальные макеты сайта до пятницы."),
    (60.0, 66.0, "Теперь про маркетинг. Рекламная кампания стартует в Казани в апреле."),
    (66.3, 72.0, "Треть маркетингового бюджета уходит на рекламу в социальных сетях."),
    (72.5, 78.0, "Если кампания в Казани сработает, мы расширим кампанию на Самару."),
    (78.4, 84.0, "Нужно подготовить отчёт по рекламной кампании к концу месяца."),
]


def make_transcript(lines, language, *, quality=TranscriptQuality.OK) -> Transcript:
    return Transcript(
        language=language,
        language_probability=0.97,
        duration=86.0,
        segments=tuple(Segment(a, b, text) for a, b, text in lines),
        backend="faster-whisper",
        model="small",
        quality=quality,
    )


@pytest.fixture(params=[("en", EN_LINES), ("ru", RU_LINES)], ids=["en", "ru"])
def case(request):
    language, lines = request.param
    return language, make_transcript(lines, language)


def test_output_is_schema_valid_grounded_and_in_the_transcripts_language(case):
    language, transcript = case
    result = OfflineAnalyzer(chapter_seconds=40).analyze(transcript, title="meeting.mp4")
    assert schema_errors(result.data) == []
    assert result.analyzer == "offline" and result.usage.calls == 0
    assert result.language == result.data["language"] == language
    assert result.flags == ()  # its own output never needs repairs
    spoken = normalize_for_match(transcript.text)
    assert result.data["quotes"]
    for quote in result.data["quotes"]:
        assert normalize_for_match(quote["text"]) in spoken
    for sentence in result.data["key_points"] + result.data["action_items"]:
        assert normalize_for_match(sentence) in spoken  # extractive: nothing invented


@pytest.mark.parametrize(
    ("language", "lines", "expected_tags", "filler"),
    [
        ("en", EN_LINES, {"website", "campaign", "budget"}, {"the", "we", "is", "now", "please"}),
        ("ru", RU_LINES, {"сайта", "кампания", "бюджет"}, {"про", "мы", "на", "теперь", "пожалуйста"}),
    ],
)
def test_keywords_are_the_subject_not_filler(language, lines, expected_tags, filler):
    result = OfflineAnalyzer().analyze(make_transcript(lines, language), title="x")
    tags = result.data["tags"]
    assert expected_tags <= set(tags[:5]), tags
    assert not filler & set(tags)
    assert set(result.data["topics"]) <= set(tags)
    assert result.data["title_suggestion"]


def test_russian_word_forms_count_as_one_keyword():
    # "кампания", "кампанию", "кампании" are one word in three cases.
    result = OfflineAnalyzer().analyze(make_transcript(RU_LINES, "ru"), title="x")
    assert sum(tag.startswith("кампани") for tag in result.data["tags"]) == 1


def test_summary_is_top_sentences_in_original_order(case):
    _, transcript = case
    result = OfflineAnalyzer(summary_sentences=3).analyze(transcript, title="x")
    sentences = [s.text for s in split_sentences(transcript.segments)]
    picked = [s for s in sentences if s in result.data["summary"]]
    assert len(picked) == 3
    assert [sentences.index(s) for s in picked] == sorted(sentences.index(s) for s in picked)


def test_chapters_split_at_the_long_pause_and_are_titled_by_their_keywords(case):
    language, transcript = case
    chapters = OfflineAnalyzer(chapter_seconds=40).analyze(transcript, title="x").data["chapters"]
    assert [(c["start"], c["end"]) for c in chapters] == [(0.0, 27.0 if language == "en" else 26.0), (60.0, 84.0)]
    first, second = (c["title"].lower() for c in chapters)
    assert ("website" if language == "en" else "сайт") in first
    assert ("campaign" if language == "en" else "кампани") in second


def test_short_video_gets_one_chapter(case):
    _, transcript = case
    chapters = OfflineAnalyzer(chapter_seconds=300).analyze(transcript, title="x").data["chapters"]
    assert len(chapters) == 1 and chapters[0]["start"] == 0.0 and chapters[0]["end"] == 84.0


@pytest.mark.parametrize(
    ("language", "lines", "expected"),
    [
        ("en", EN_LINES, ["Anna, please send the final", "If the Berlin campaign works, we will", "We need to"]),
        ("ru", RU_LINES, ["Анна, пришлите, пожалуйста, финальные макеты", "Нужно подготовить отчёт"]),
    ],
)
def test_action_items_are_found_by_phrase(language, lines, expected):
    items = OfflineAnalyzer().analyze(make_transcript(lines, language), title="x").data["action_items"]
    assert len(items) == len(expected)
    for item, start in zip(items, expected, strict=True):
        assert item.startswith(start)


def test_sentences_carry_across_segments_with_the_start_of_their_first_segment():
    sentences = split_sentences(make_transcript(EN_LINES, "en").segments)
    joined = next(s for s in sentences if s.text.startswith("The website budget"))
    assert joined.text.endswith("in March.") and joined.start == 5.4 and joined.end == 15.8


def test_unpunctuated_speech_is_still_split():
    lines = [
        (i * 4.0, i * 4.0 + 3.5, "и вот мы снова говорим про бюджет проекта и сроки запуска сайта") for i in range(20)
    ]
    sentences = split_sentences(make_transcript(lines, "ru").segments, max_chars=300)
    assert len(sentences) > 3 and all(len(s.text) < 400 for s in sentences)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Ёлка-палка", ["елка-палка"]),
        ("Don’t stop", ["don't", "stop"]),
        ("COVID-19 и Москва", ["covid", "и", "москва"]),
    ],
)
def test_tokenize_is_cyrillic_aware(word, expected):
    assert tokenize(word) == expected


@pytest.mark.parametrize(
    ("forms", "same"),
    [
        (["бюджет", "бюджета", "бюджету", "бюджетом"], True),
        (["кампания", "кампании", "кампанию"], True),
        (["campaign", "campaigns"], True),
        (["дом", "дома"], False),  # too short to strip safely: a four-letter stem minimum
    ],
)
def test_stem_groups_word_forms(forms, same):
    assert (len({stem(f) for f in forms}) == 1) is same


@pytest.mark.parametrize("quality", [TranscriptQuality.NO_SPEECH, TranscriptQuality.NO_AUDIO])
def test_silent_video_gets_no_invented_content(quality):
    transcript = Transcript.empty(quality=quality, duration=12.0, backend="faster-whisper", model="small", note="n")
    result = OfflineAnalyzer().analyze(transcript, title="x", output_language="ru")
    assert result.language == "ru" and result.flags == (quality.value,)
    assert result.data["chapters"] == [] and result.data["tags"] == []
    assert schema_errors(result.data) == []


def test_requested_translation_is_flagged_not_faked():
    result = OfflineAnalyzer().analyze(make_transcript(RU_LINES, "ru"), title="x", output_language="en")
    assert result.language == "ru"
    assert "output_language_unavailable" in result.flags


def test_result_is_deterministic(case):
    _, transcript = case
    assert OfflineAnalyzer().analyze(transcript, title="x") == OfflineAnalyzer().analyze(transcript, title="x")
