"""The analysis schema, grounding, prompts, chunking and merging (pure, no Airflow)."""

from __future__ import annotations

import copy
import json
import re

import pytest

from include.video_pipeline.core.analysis import (
    ANALYSIS_SCHEMA,
    LIMITS,
    MODEL_RESPONSE_SCHEMA,
    PROMPT_VERSION,
    SCHEMA_VERSION,
    AnalysisResult,
    AnalysisValidationError,
    Usage,
    build_prompt,
    chunk_transcript,
    empty_analysis,
    estimate_cost_usd,
    estimate_tokens,
    ground_analysis,
    merge_analyses,
    normalize_for_match,
    resolve_output_language,
    schema_errors,
    silent_analysis,
    validate_analysis,
)
from include.video_pipeline.core.transcript import Segment, Transcript, TranscriptQuality

RU_LINES = [
    (0.0, 4.2, "Добрый день, коллеги. Сегодня обсуждаем бюджет на запуск нового сайта."),
    (4.5, 9.8, "Бюджет на разработку сайта мы согласовали с Марией Ивановой во вторник."),
    (10.1, 15.0, "Главный риск — сроки: дизайн сайта ещё не утверждён."),
    (15.2, 21.0, "Мария, пришлите, пожалуйста, финальный макет до пятницы."),
    (40.0, 46.0, "Теперь про маркетинг. Рекламная кампания стартует в Москве в марте."),
    (46.3, 52.0, "На рекламу в социальных сетях выделяем треть маркетингового бюджета."),
]


def make_transcript(lines, *, language="ru", duration=None, quality=TranscriptQuality.OK) -> Transcript:
    segments = tuple(Segment(start, end, text) for start, end, text in lines)
    return Transcript(
        language=language,
        language_probability=0.97,
        duration=duration if duration is not None else (segments[-1].end + 2 if segments else 10.0),
        segments=segments,
        backend="faster-whisper",
        model="small",
        quality=quality,
    )


def valid_analysis(**changes) -> dict:
    data = empty_analysis("ru")
    data.update(
        title_suggestion="Бюджет сайта и маркетинг",
        summary="Команда обсуждает бюджет сайта и рекламную кампанию.",
        key_points=["Бюджет согласован."],
        topics=["бюджет"],
        tags=["бюджет", "маркетинг"],
        chapters=[{"start": 0.0, "end": 21.0, "title": "Сайт", "summary": "Бюджет и сроки сайта."}],
        quotes=[{"text": "Главный риск — сроки", "start": 10.1}],
    )
    data.update(changes)
    return data


# -- schema --------------------------------------------------------------------


def test_valid_analysis_passes_and_model_schema_omits_schema_version():
    assert validate_analysis(valid_analysis())["schema_version"] == SCHEMA_VERSION
    assert "schema_version" not in MODEL_RESPONSE_SCHEMA["properties"]
    assert "schema_version" not in MODEL_RESPONSE_SCHEMA["required"]
    assert set(MODEL_RESPONSE_SCHEMA["propertyOrdering"]) == set(MODEL_RESPONSE_SCHEMA["properties"])
    assert "schema_version" in ANALYSIS_SCHEMA["required"]  # the stored schema is unchanged
    json.dumps(MODEL_RESPONSE_SCHEMA)  # must be plain JSON to be sent


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.pop("summary"), "<root>"),
        (lambda d: d.update(tags="бюджет"), "tags"),
        (lambda d: d["chapters"][0].update(start="0:00"), "chapters/0/start"),
        (lambda d: d["entities"].pop("places"), "entities"),
        (lambda d: d.update(extra=1), "<root>"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d["quotes"].append({"text": "x"}), "quotes/1"),
    ],
)
def test_schema_violations_are_reported_with_their_path(mutate, where):
    data = valid_analysis()
    mutate(data)
    errors = schema_errors(data)
    assert errors and any(e.startswith(where + ":") for e in errors), errors
    with pytest.raises(AnalysisValidationError):
        validate_analysis(data)


# -- language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transcript_language", "requested", "expected"),
    [("ru", None, "ru"), ("ru", "en", "en"), ("en", None, "en"), (None, None, "en"), ("RU", " ru-RU ", "ru")],
)
def test_output_language_defaults_to_the_transcripts(transcript_language, requested, expected):
    transcript = make_transcript(RU_LINES, language=transcript_language)
    assert resolve_output_language(transcript, requested) == expected


# -- grounding -----------------------------------------------------------------


def test_grounding_keeps_a_good_analysis_and_flags_nothing():
    transcript = make_transcript(RU_LINES)
    grounded, flags = ground_analysis(valid_analysis(), transcript, language="ru")
    assert flags == []
    assert grounded["chapters"] == valid_analysis()["chapters"]
    assert grounded["quotes"] == [{"text": "Главный риск — сроки", "start": 10.1}]


def test_chapters_are_clamped_reordered_snapped_and_overlaps_fixed():
    transcript = make_transcript(RU_LINES, duration=54.0)
    chapters = [
        {"start": 39.0, "end": 500.0, "title": "Маркетинг", "summary": "Реклама."},  # past the end
        {"start": -5.0, "end": 16.0, "title": "Сайт", "summary": "Бюджет."},  # before 0, out of order
        {"start": 6.0, "end": 22.0, "title": "Макет", "summary": "Сроки."},  # overlaps the previous
        {"start": 600.0, "end": 700.0, "title": "Нет", "summary": "Вне видео."},  # wholly outside
    ]
    grounded, flags = ground_analysis(valid_analysis(chapters=chapters), transcript, language="ru")
    got = [(c["start"], c["end"], c["title"]) for c in grounded["chapters"]]
    segment_starts = {s.start for s in transcript.segments}
    segment_ends = {s.end for s in transcript.segments}
    assert all(start in segment_starts and end in segment_ends for start, end, _ in got)
    assert got == [(0.0, 4.2, "Сайт"), (4.5, 21.0, "Макет"), (40.0, 52.0, "Маркетинг")]
    assert {"chapter_clamped", "chapter_dropped_out_of_range", "chapters_reordered", "chapters_overlap_fixed"} <= set(
        flags
    )


def test_swapped_chapter_times_are_fixed():
    grounded, flags = ground_analysis(
        valid_analysis(chapters=[{"start": 21.0, "end": 0.0, "title": "Сайт", "summary": ""}]),
        make_transcript(RU_LINES),
        language="ru",
    )
    assert grounded["chapters"][0]["start"] == 0.0 and grounded["chapters"][0]["end"] == 21.0
    assert "chapter_times_swapped" in flags


def test_quotes_must_be_in_the_transcript_and_get_their_real_start():
    quotes = [
        {"text": "«бюджет на разработку сайта, мы согласовали»", "start": 99.0},  # re-punctuated, wrong time
        {"text": "Мы утроим выручку к лету", "start": 3.0},  # never said
        {"text": "ДИЗАЙН САЙТА ЕЩЕ НЕ УТВЕРЖДЕН", "start": 10.0},  # case and ё differ
        {"text": "сайта мы", "start": 4.5},  # words but across a word boundary is fine
        {"text": "бюдж", "start": 0.0},  # a word fragment is not a quote
    ]
    grounded, flags = ground_analysis(valid_analysis(quotes=quotes), make_transcript(RU_LINES), language="ru")
    assert [(q["text"], q["start"]) for q in grounded["quotes"]] == [
        ("бюджет на разработку сайта, мы согласовали", 4.5),
        ("ДИЗАЙН САЙТА ЕЩЕ НЕ УТВЕРЖДЕН", 10.1),
        ("сайта мы", 4.5),
    ]
    assert "quote_not_in_transcript" in flags and "quote_start_corrected" in flags


def test_a_quote_spanning_two_segments_is_found_where_it_begins():
    grounded, _ = ground_analysis(
        valid_analysis(quotes=[{"text": "до пятницы. Теперь про маркетинг", "start": 40.0}]),
        make_transcript(RU_LINES),
        language="ru",
    )
    assert grounded["quotes"] == [{"text": "до пятницы. Теперь про маркетинг", "start": 15.2}]


def test_lists_are_deduplicated_capped_and_language_forced():
    data = valid_analysis(
        tags=["Бюджет", "бюджет", " маркетинг "] + [f"тег{i}" for i in range(30)],
        key_points=["Один.", "один.", ""],
        language="Russian",
    )
    grounded, flags = ground_analysis(data, make_transcript(RU_LINES), language="ru")
    assert grounded["tags"][:2] == ["бюджет", "маркетинг"]
    assert len(grounded["tags"]) == LIMITS["tags"]
    assert grounded["key_points"] == ["Один."]
    assert grounded["language"] == "ru"
    assert {"tags_truncated", "language_corrected"} <= set(flags)


def test_grounding_does_not_mutate_its_input():
    data = valid_analysis(chapters=[{"start": 0.0, "end": 999.0, "title": "x", "summary": "y"}])
    before = copy.deepcopy(data)
    ground_analysis(data, make_transcript(RU_LINES), language="ru")
    assert data == before


def test_normalize_for_match_ignores_case_punctuation_and_yo():
    assert normalize_for_match("Ещё — «раз»,  Всё!") == normalize_for_match("еще раз все")


# -- silent videos -------------------------------------------------------------


@pytest.mark.parametrize(
    ("quality", "language", "summary_word"),
    [
        (TranscriptQuality.NO_AUDIO, "ru", "звуковой дорожки"),
        (TranscriptQuality.NO_SPEECH, "ru", "речи"),
        (TranscriptQuality.NO_SPEECH, "en", "speech"),
        (TranscriptQuality.NO_AUDIO, "de", "audio track"),  # no German text: English, truthfully labelled
    ],
)
def test_silent_analysis_says_so_and_claims_nothing(quality, language, summary_word):
    transcript = Transcript.empty(quality=quality, duration=30.0, backend="faster-whisper", model="small", note="n")
    result = silent_analysis(transcript, language=language, analyzer="gemini", model="m", prompt_version="v")
    assert summary_word in result.data["summary"]
    assert result.flags == (quality.value,)
    assert result.usage.calls == 0
    assert result.language == result.data["language"] == ("en" if language == "de" else language)
    for key in ("key_points", "topics", "tags", "chapters", "action_items", "quotes"):
        assert result.data[key] == []


# -- prompt --------------------------------------------------------------------


def test_prompt_renders_timestamps_language_and_title():
    transcript = make_transcript(RU_LINES)
    prompt = build_prompt(transcript, title="Встреча 1.mp4", language="ru")
    assert prompt.version == PROMPT_VERSION
    assert "[4.5-9.8] Бюджет на разработку сайта" in prompt.user
    assert "Встреча 1.mp4" in prompt.user
    assert "Russian (language code: ru)" in prompt.system
    assert not re.search(r"\$\w", prompt.system + prompt.user)  # every placeholder was filled
    assert "part 1 of" not in prompt.user


def test_prompt_text_with_dollars_is_not_treated_as_placeholders():
    transcript = make_transcript([(0.0, 3.0, "It costs $price, or $5 total.")], language="en")
    prompt = build_prompt(transcript, title="$title", language="en")
    assert "It costs $price, or $5 total." in prompt.user


def test_chunk_prompt_names_its_part_and_suspect_transcripts_are_flagged():
    transcript = make_transcript(RU_LINES, quality=TranscriptQuality.SUSPECT)
    chunks = chunk_transcript(transcript, max_tokens=60)
    assert len(chunks) > 1
    prompt = build_prompt(transcript, title="t", language="en", chunk=chunks[1])
    assert f"part 2 of {len(chunks)}" in prompt.user
    assert RU_LINES[0][2] not in prompt.user  # only this chunk's lines
    assert "unreliable" in prompt.user
    assert "English (language code: en)" in prompt.system


# -- tokens and chunks -----------------------------------------------------------


def test_cyrillic_is_estimated_at_more_tokens_per_character():
    assert estimate_tokens("а" * 100) > estimate_tokens("a" * 100)
    assert estimate_tokens("") == 0


@pytest.mark.parametrize("max_tokens", [40, 80, 200, 10_000])
def test_chunks_cover_every_segment_once_in_order_within_budget(max_tokens):
    lines = [(i * 5.0, i * 5.0 + 4.0, f"Предложение номер {i} о бюджете и сроках проекта.") for i in range(40)]
    transcript = make_transcript(lines)
    chunks = chunk_transcript(transcript, max_tokens=max_tokens)
    assert [s for c in chunks for s in c.segments] == list(transcript.segments)
    assert all(c.count == len(chunks) for c in chunks)
    for chunk in chunks:
        rendered = "\n".join(f"[{s.start:.1f}-{s.end:.1f}] {s.text}" for s in chunk.segments)
        assert len(chunk.segments) == 1 or estimate_tokens(rendered) <= max_tokens
    assert (len(chunks) == 1) == (max_tokens == 10_000)


# -- merging ---------------------------------------------------------------------


def test_merge_is_deterministic_and_keeps_every_part():
    transcript = make_transcript(RU_LINES)
    chunks = chunk_transcript(transcript, max_tokens=60)
    first = valid_analysis(
        tags=["бюджет", "сайт"],
        key_points=["A1", "A2", "A3"],
        entities={"people": ["Мария Иванова"], "organizations": [], "places": []},
        chapters=[{"start": 0.0, "end": 9.8, "title": "Сайт", "summary": "..."}],
        quotes=[{"text": "Главный риск — сроки", "start": 10.1}],
    )
    second = valid_analysis(
        title_suggestion="Другое",
        tags=["маркетинг", "Бюджет"],
        key_points=["B1"],
        entities={"people": ["мария иванова"], "organizations": [], "places": ["Москва"]},
        chapters=[{"start": 40.0, "end": 52.0, "title": "Маркетинг", "summary": "..."}],
        quotes=[{"text": "Рекламная кампания стартует в Москве", "start": 40.0}],
    )
    merged = merge_analyses([first, second], language="ru")
    assert merged == merge_analyses([copy.deepcopy(first), copy.deepcopy(second)], language="ru")
    assert merged["title_suggestion"] == "Бюджет сайта и маркетинг"
    assert merged["key_points"] == ["A1", "B1", "A2", "A3"]  # interleaved: a cap keeps both parts
    assert merged["tags"] == ["бюджет", "сайт", "маркетинг"]  # named by both parts first
    assert merged["entities"]["people"] == ["Мария Иванова"]
    assert merged["entities"]["places"] == ["Москва"]
    assert [c["title"] for c in merged["chapters"]] == ["Сайт", "Маркетинг"]
    assert merged["summary"].count("Команда обсуждает") == 2
    grounded, flags = ground_analysis(merged, transcript, language="ru")
    assert flags == [] and len(grounded["quotes"]) == 2
    assert len(chunks) > 1


# -- results and cost ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-2.5-flash", 0.30 + 2.50),
        ("models/gemini-2.5-flash-lite", 0.10 + 0.40),  # longest prefix wins
        ("gemini-2.5-flash-preview-09-2025", 0.30 + 2.50),
        ("gemini-2.5-pro", 1.25 + 10.0),
        ("some-other-model", None),
    ],
)
def test_cost_estimate_uses_the_longest_matching_price(model, expected):
    cost = estimate_cost_usd(model, 1_000_000, 1_000_000)
    assert cost == (pytest.approx(expected) if expected is not None else None)


def test_usage_adds_up_and_result_serialises_to_json():
    usage = Usage(10, 5, 1.5, 1, 0.001) + Usage(20, 7, 0.5, 1, None)
    assert usage == Usage(30, 12, 2.0, 2, pytest.approx(0.001))
    assert (Usage() + Usage()).cost_usd is None
    result = AnalysisResult(
        analyzer="gemini",
        model="gemini-2.5-flash",
        prompt_version=PROMPT_VERSION,
        language="ru",
        data=valid_analysis(),
        flags=("quote_not_in_transcript",),
        usage=usage,
    )
    as_dict = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    assert as_dict["flags"] == ["quote_not_in_transcript"]
    assert as_dict["usage"]["input_tokens"] == 30 and as_dict["usage"]["calls"] == 2
    assert as_dict["schema_version"] == SCHEMA_VERSION and as_dict["data"]["summary"]


# -- providers: price overrides, token-count scaling, images ------------------------------

from include.video_pipeline.core import analysis as core_analysis  # noqa: E402


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-2.5-flash", 0.30 + 2.50),
        ("publishers/google/models/gemini-2.5-flash", 0.30 + 2.50),  # as Vertex AI reports it
        ("models/gemini-2.5-flash-lite", 0.10 + 0.40),
        ("qwen2.5:14b", None),
    ],
)
def test_cost_uses_the_longest_prefix_and_ignores_path_prefixes(model, expected):
    cost = core_analysis.estimate_cost_usd(model, 1_000_000, 1_000_000)
    assert cost == (pytest.approx(expected) if expected is not None else None)


def test_price_overrides_add_models_and_correct_built_in_prices():
    table = core_analysis.price_table([("qwen2.5", 0.0, 0.0), ("gemini-2.5-flash", 0.5, 3.0)])
    assert core_analysis.estimate_cost_usd("qwen2.5:14b", 1000, 1000, prices=table) == 0.0
    assert core_analysis.estimate_cost_usd("gemini-2.5-flash", 1_000_000, 0, prices=table) == pytest.approx(0.5)
    assert core_analysis.estimate_cost_usd("gemini-2.5-pro", 1_000_000, 0, prices=table) == pytest.approx(1.25)
    assert core_analysis.PRICES_PER_MILLION_TOKENS["gemini-2.5-flash"] == (0.30, 2.50)  # the built-ins untouched


def test_a_batch_call_costs_half_the_online_price_at_every_rate():
    # 3.1 Flash-Lite: $0.25 in, $1.50 out, $0.025 cached online; the Batch API bills half of each.
    online = core_analysis.estimate_cost_usd("gemini-3.1-flash-lite", 1_000_000, 1_000_000, cached_tokens=400_000)
    batch = core_analysis.estimate_cost_usd(
        "gemini-3.1-flash-lite", 1_000_000, 1_000_000, cached_tokens=400_000, batch=True
    )
    assert online == pytest.approx(0.6 * 0.25 + 0.4 * 0.025 + 1.50)
    assert batch == pytest.approx(online * core_analysis.BATCH_PRICE_SHARE) and core_analysis.BATCH_PRICE_SHARE == 0.5
    assert core_analysis.estimate_cost_usd("qwen2.5:14b", 1000, 1000, batch=True) is None  # unpriced stays unpriced


def test_token_scale_splits_finer_when_the_real_count_is_higher():
    lines = [(i * 5.0, i * 5.0 + 4.0, f"Предложение номер {i} про бюджет и сроки проекта.") for i in range(20)]
    transcript = make_transcript(lines)
    budget = core_analysis.estimate_tokens(core_analysis.render_transcript(transcript.segments)) + 60
    assert len(core_analysis.chunk_transcript(transcript, max_tokens=budget)) == 1
    scaled = core_analysis.chunk_transcript(transcript, max_tokens=budget, token_scale=3.0)
    assert len(scaled) >= 3
    assert [s for c in scaled for s in c.segments] == list(transcript.segments)
    with pytest.raises(ValueError):
        core_analysis.chunk_transcript(transcript, max_tokens=budget, token_scale=0)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png"),
        (b"RIFF1234WEBPVP8 ", "image/webp"),
    ],
)
def test_image_types_are_sniffed(data, mime):
    assert core_analysis.image_mime_type(data) == mime


def test_an_unknown_image_type_is_refused():
    with pytest.raises(ValueError):
        core_analysis.image_mime_type(b"GIF89a")


def test_images_add_a_versioned_note_to_the_prompt():
    transcript = make_transcript([(0.0, 2.0, "Привет всем.")])
    plain = core_analysis.build_prompt(transcript, title="t", language="ru")
    with_images = core_analysis.build_prompt(transcript, title="t", language="ru", images=2)
    assert plain.version == "analysis_v1" and with_images.version == "analysis_v1+images_v1"
    assert with_images.user.startswith("2 image(s) from the video are attached")
    assert with_images.user.endswith(plain.user) and with_images.system == plain.system
