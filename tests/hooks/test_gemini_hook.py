"""GeminiHook and GeminiAnalyzer: the real google-genai SDK against a loopback Gemini server."""

from __future__ import annotations

import itertools

import pytest

from include.video_pipeline.config import AnalysisSettings
from include.video_pipeline.core.analysis import MODEL_RESPONSE_SCHEMA, normalize_for_match, schema_errors
from include.video_pipeline.core.errors import (
    InputRejected,
    PermanentError,
    PipelineError,
    QuotaExhausted,
    RejectReason,
)
from include.video_pipeline.core.offline_analyzer import OfflineAnalyzer
from include.video_pipeline.core.transcript import Segment, Transcript, TranscriptQuality
from include.video_pipeline.hooks.analyzers import build_analyzer
from include.video_pipeline.hooks.gemini import GeminiAnalyzer, GeminiHook, InvalidModelOutput
from tests.fakes import FakeGeminiServer, Reply

API_KEY = "AIzaSy-test-key-0123456789"

RU_LINES = [
    (0.0, 4.2, "Добрый день, коллеги. Сегодня обсуждаем бюджет на запуск нового сайта."),
    (4.5, 9.8, "Бюджет на разработку сайта мы согласовали с финансовым отделом."),
    (10.1, 15.0, "Главный риск — сроки: дизайн сайта ещё не утверждён."),
    (40.0, 46.0, "Теперь про маркетинг. Рекламная кампания стартует в Казани в апреле."),
    (46.3, 52.0, "Треть маркетингового бюджета уходит на рекламу в социальных сетях."),
    (52.5, 58.0, "Нужно подготовить отчёт по рекламной кампании к концу месяца."),
]


def make_transcript(lines=RU_LINES, *, language="ru", quality=TranscriptQuality.OK) -> Transcript:
    return Transcript(
        language=language,
        language_probability=0.98,
        duration=60.0,
        segments=tuple(Segment(a, b, t) for a, b, t in lines),
        backend="faster-whisper",
        model="small",
        quality=quality,
    )


@pytest.fixture
def no_key_env(monkeypatch):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "AIRFLOW_CONN_GEMINI_DEFAULT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(monkeypatch, no_key_env):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with FakeGeminiServer(api_key=API_KEY) as fake:
        yield fake


class Waits(list):
    """Records the hook's waits instead of sleeping, so backoff is asserted, not endured."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def waits():
    return Waits()


def make_analyzer(server, waits, *, max_retries=3, max_chunk_tokens=30_000, **hook_kwargs) -> GeminiAnalyzer:
    settings = AnalysisSettings(analyzer="gemini", gemini_base_url=server.base_url, max_retries=max_retries)
    analyzer = build_analyzer(
        settings, max_chunk_tokens=max_chunk_tokens, backoff_base_seconds=0.01, sleep=waits, **hook_kwargs
    )
    assert isinstance(analyzer, GeminiAnalyzer)
    return analyzer


def test_well_formed_answer_becomes_a_grounded_russian_analysis(server, waits):
    result = make_analyzer(server, waits).analyze(make_transcript(), title="Встреча.mp4")

    assert result.analyzer == "gemini" and result.model == "gemini-3.1-flash-lite"
    assert result.language == result.data["language"] == "ru"
    assert schema_errors(result.data) == []
    assert result.flags == ()
    assert result.usage.calls == 1 and result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.usage.cost_usd is not None and result.usage.cost_usd > 0
    assert result.usage.latency_seconds >= 0
    assert result.data["quotes"][0]["text"] in make_transcript().text

    [request] = server.generate_requests
    assert request.model == "gemini-3.1-flash-lite"
    assert request.api_key == API_KEY
    config = request.generation_config
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == MODEL_RESPONSE_SCHEMA
    assert "[4.5-9.8] Бюджет на разработку сайта" in request.prompt_text
    assert "Russian (language code: ru)" in request.system_text
    assert waits == []


def test_requested_output_language_overrides_the_transcripts(server, waits):
    result = make_analyzer(server, waits).analyze(make_transcript(), title="x", output_language="en")
    assert result.language == "en"
    assert "English (language code: en)" in server.generate_requests[0].system_text


def test_invalid_json_is_asked_for_once_more(server, waits):
    server.enqueue(Reply.text('{"title_suggestion": "cut off'), Reply.analysis())
    result = make_analyzer(server, waits).analyze(make_transcript(), title="x")
    assert schema_errors(result.data) == []
    assert len(server.generate_requests) == 2
    assert result.usage.calls == 2  # the rejected answer was paid for too


def test_schema_violation_twice_raises(server, waits):
    server.enqueue(Reply.analysis(update={"chapters": "none"}), Reply.text("[]"))
    with pytest.raises(InvalidModelOutput, match="not an object"):
        make_analyzer(server, waits).analyze(make_transcript(), title="x")
    assert len(server.generate_requests) == 2


def test_chapters_out_of_range_and_invented_quotes_are_repaired(server, waits):
    chapters = [
        {"start": 38.0, "end": 900.0, "title": "Маркетинг", "summary": "Реклама."},
        {"start": -3.0, "end": 15.5, "title": "Сайт", "summary": "Бюджет."},
    ]
    quotes = [
        {"text": "Рекламная кампания стартует в Казани", "start": 1.0},
        {"text": "Мы удвоим прибыль", "start": 20.0},
    ]
    server.enqueue(Reply.analysis(update={"chapters": chapters, "quotes": quotes}))
    result = make_analyzer(server, waits).analyze(make_transcript(), title="x")
    assert [(c["start"], c["end"]) for c in result.data["chapters"]] == [(0.0, 15.0), (40.0, 58.0)]
    assert result.data["quotes"] == [{"text": "Рекламная кампания стартует в Казани", "start": 40.0}]
    assert {"chapter_clamped", "chapters_reordered", "quote_not_in_transcript", "quote_start_corrected"} <= set(
        result.flags
    )


def test_rate_limit_waits_at_least_retry_after_then_succeeds(server, waits):
    server.enqueue(Reply.rate_limited(retry_after=3), Reply.rate_limited(retry_delay="1.5s"))
    result = make_analyzer(server, waits).analyze(make_transcript(), title="x")
    assert result.usage.calls == 1
    assert len(server.generate_requests) == 3
    assert waits[0] >= 3.0  # the header is a floor on the wait
    assert waits[1] >= 1.5  # RetryInfo in the body when there is no header


def test_server_errors_back_off_exponentially_then_succeed(server, waits):
    server.enqueue(Reply.server_error(500), Reply.server_error(503), Reply.server_error(500))
    result = make_analyzer(server, waits, max_retries=3).analyze(make_transcript(), title="x")
    assert schema_errors(result.data) == []
    assert len(waits) == 3
    # Jittered within [ceiling/2, ceiling] with the ceiling doubling from 0.01 s.
    for attempt, wait in enumerate(waits):
        assert 0.01 * 2**attempt / 2 <= wait <= 0.01 * 2**attempt


def test_server_errors_exhaust_retries_and_raise(server, waits):
    server.enqueue(*[Reply.server_error(500)] * 3)
    with pytest.raises(PipelineError, match="after 3 attempt") as caught:
        make_analyzer(server, waits, max_retries=2).analyze(make_transcript(), title="x")
    assert type(caught.value) is PipelineError  # retryable by Airflow, not quota, not permanent
    assert len(server.generate_requests) == 3 and len(waits) == 2


def test_retry_after_beyond_the_wait_budget_stops_early_as_quota(server, waits):
    server.enqueue(Reply.rate_limited(retry_after=3600))
    with pytest.raises(QuotaExhausted):
        make_analyzer(server, waits, max_total_wait_seconds=60).analyze(make_transcript(), title="x")
    assert waits == [] and len(server.generate_requests) == 1


def test_daily_quota_exhausted_raises_without_retrying(server, waits):
    server.enqueue(Reply.quota_exhausted())
    with pytest.raises(QuotaExhausted, match="daily quota"):
        make_analyzer(server, waits).analyze(make_transcript(), title="x")
    assert len(server.generate_requests) == 1 and waits == []


def test_invalid_key_is_permanent_and_never_shows_the_key(monkeypatch, no_key_env, waits, caplog):
    wrong_key = "AIzaSy-wrong-key-9876543210"
    monkeypatch.setenv("GEMINI_API_KEY", wrong_key)
    with FakeGeminiServer(api_key=API_KEY) as server:
        with pytest.raises(PermanentError, match="rejected the API key") as caught:
            make_analyzer(server, waits).analyze(make_transcript(), title="x")
        assert server.generate_requests[0].api_key == wrong_key
    text = str(caught.value) + repr(caught.value) + caplog.text + str(caught.value.__cause__ or "")
    assert wrong_key not in text
    assert waits == []


def test_permission_denied_is_permanent(server, waits):
    server.enqueue(Reply.permission_denied())
    with pytest.raises(PermanentError, match="403"):
        make_analyzer(server, waits).analyze(make_transcript(), title="x")


@pytest.mark.parametrize("reply", [Reply.blocked_prompt(), Reply.safety_stop()], ids=["prompt", "finish"])
def test_blocked_content_rejects_the_input(server, waits, reply):
    server.enqueue(reply)
    with pytest.raises(InputRejected) as caught:
        make_analyzer(server, waits).analyze(make_transcript(), title="x")
    assert caught.value.reason == RejectReason.CONTENT_BLOCKED
    assert len(server.generate_requests) == 1


def test_long_transcript_is_chunked_and_merged(server, waits):
    lines = [
        (i * 6.0, i * 6.0 + 5.0, f"Часть {i}: обсуждаем бюджет, сроки и рекламную кампанию проекта номер {i}.")
        for i in range(30)
    ]
    transcript = make_transcript(lines)
    result = make_analyzer(server, waits, max_chunk_tokens=250).analyze(transcript, title="long.mp4")

    requests = server.generate_requests
    assert len(requests) > 2
    assert result.usage.calls == len(requests)
    assert "chunked" in result.flags
    assert f"part 1 of {len(requests)}" in requests[0].prompt_text
    # Every line was sent exactly once across the parts.
    sent = [line for r in requests for line in r.prompt_text.splitlines() if line.startswith("[")]
    assert len(sent) == len(lines)
    chapters = result.data["chapters"]
    assert len(chapters) >= len(requests)  # each part contributed its chapters
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(chapters))
    assert chapters[-1]["end"] == lines[-1][1]
    spoken = normalize_for_match(transcript.text)
    assert all(normalize_for_match(q["text"]) in spoken for q in result.data["quotes"])
    assert schema_errors(result.data) == []


def test_silent_transcript_needs_no_call(server, waits):
    transcript = Transcript.empty(
        quality=TranscriptQuality.NO_SPEECH, duration=20.0, backend="faster-whisper", model="small", note="silence"
    )
    result = make_analyzer(server, waits).analyze(transcript, title="x", output_language="ru")
    assert result.flags == ("no_speech",) and "речи" in result.data["summary"]
    assert server.requests == []


def test_auto_picks_offline_without_a_key(no_key_env):
    analyzer = build_analyzer(AnalysisSettings(analyzer="auto", gemini_conn_id="gemini_missing_for_tests"))
    assert isinstance(analyzer, OfflineAnalyzer) and analyzer.name == "offline"


def test_auto_picks_gemini_with_a_key_from_the_airflow_connection(monkeypatch, no_key_env):
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", '{"conn_type": "generic", "password": "conn-key-123"}')
    analyzer = build_analyzer(AnalysisSettings(analyzer="auto"))
    assert isinstance(analyzer, GeminiAnalyzer)
    assert analyzer.hook.get_api_key() == "conn-key-123"


def test_auto_accepts_the_old_pipelines_google_api_key(monkeypatch, no_key_env):
    monkeypatch.setenv("GOOGLE_API_KEY", "old-name-key")
    assert GeminiHook("gemini_missing_for_tests").get_api_key() == "old-name-key"
    assert build_analyzer(AnalysisSettings(gemini_conn_id="gemini_missing_for_tests")).name == "gemini"


def test_gemini_without_a_key_is_a_permanent_error(no_key_env):
    with pytest.raises(PermanentError, match="no Gemini API key"):
        build_analyzer(AnalysisSettings(analyzer="gemini", gemini_conn_id="gemini_missing_for_tests"))


def test_offline_setting_never_looks_for_a_key(monkeypatch, no_key_env):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    assert build_analyzer(AnalysisSettings(analyzer="offline")).name == "offline"


# -- today's API: retired models, regions, thinking tokens, body-only RetryInfo -----------------


def test_a_retired_model_is_skipped_once_and_the_next_one_answers(server, waits, caplog):
    from include.video_pipeline.hooks.llm_base import model_hook

    model_hook._WARNED_MODELS.discard("gemini-2.5-flash")
    settings = AnalysisSettings(
        analyzer="gemini", gemini_base_url=server.base_url, gemini_model="gemini-2.5-flash,gemini-3.5-flash"
    )
    analyzer = build_analyzer(settings, backoff_base_seconds=0.01, sleep=waits)
    with caplog.at_level("WARNING"):
        first = analyzer.analyze(make_transcript(), title="a.mp4")
        second = analyzer.analyze(make_transcript(), title="b.mp4")

    assert first.model == second.model == "gemini-3.5-flash"
    assert [r.model for r in server.generate_requests] == ["gemini-2.5-flash", "gemini-3.5-flash", "gemini-3.5-flash"]
    retired = [r for r in caplog.records if "gemini-2.5-flash is retired" in r.getMessage()]
    assert len(retired) == 1 and "using gemini-3.5-flash" in retired[0].getMessage()
    assert waits == []  # a retired model is not a reason to back off


def test_only_retired_models_is_a_provider_failure_that_names_a_current_one(server, waits):
    from include.video_pipeline.hooks.llm_base import MODEL_UNAVAILABLE, ProviderUnavailable

    settings = AnalysisSettings(analyzer="gemini", gemini_base_url=server.base_url, gemini_model="gemini-2.5-pro")
    hook = build_analyzer(settings, sleep=waits).hook
    with pytest.raises(ProviderUnavailable) as failure:
        hook.preflight()
    assert failure.value.reason == MODEL_UNAVAILABLE
    assert "gemini-2.5-pro" in str(failure.value) and "gemini-3.1-flash-lite" in str(failure.value)
    assert [r.action for r in server.requests] == ["get"]


def test_preflight_checks_the_model_and_the_key_with_free_calls_only(server, waits):
    settings = AnalysisSettings(analyzer="gemini", gemini_base_url=server.base_url)
    assert build_analyzer(settings, sleep=waits).hook.preflight() == "gemini-3.1-flash-lite"
    assert [(r.method, r.action) for r in server.requests] == [("GET", "get"), ("POST", "countTokens")]
    assert server.generate_requests == []


def test_unsupported_location_says_what_to_use_instead(monkeypatch, no_key_env, waits):
    from include.video_pipeline.hooks.llm_base import LOCATION_UNSUPPORTED, ProviderUnavailable

    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with FakeGeminiServer(api_key=API_KEY, location_unsupported=True) as fake:
        hook = build_analyzer(AnalysisSettings(analyzer="gemini", gemini_base_url=fake.base_url), sleep=waits).hook
        with pytest.raises(ProviderUnavailable) as failure:
            hook.preflight()
    assert failure.value.reason == LOCATION_UNSUPPORTED
    message = str(failure.value)
    assert "User location is not supported" in message and "Vertex AI" in message and "europe-west4" in message
    assert "OpenAI-compatible" in message and waits == []


def test_invalid_key_fails_the_preflight_as_provider_auth(monkeypatch, no_key_env, waits):
    from include.video_pipeline.hooks.llm_base import PROVIDER_AUTH, ProviderUnavailable

    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSy-wrong-key-000000000")
    with FakeGeminiServer(api_key=API_KEY) as fake:
        hook = build_analyzer(AnalysisSettings(analyzer="gemini", gemini_base_url=fake.base_url), sleep=waits).hook
        with pytest.raises(ProviderUnavailable) as failure:
            hook.preflight()
    assert failure.value.reason == PROVIDER_AUTH and "wrong-key" not in str(failure.value)


def test_thinking_and_cached_tokens_are_billed_at_their_rates(monkeypatch, no_key_env, waits):
    from include.video_pipeline.core.analysis import estimate_cost_usd

    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with FakeGeminiServer(api_key=API_KEY, thoughts_tokens=1000, cached_tokens=40) as fake:
        settings = AnalysisSettings(analyzer="gemini", gemini_base_url=fake.base_url, gemini_model="gemini-3.5-flash")
        result = build_analyzer(settings, sleep=waits).analyze(make_transcript(), title="x.mp4")
    usage = result.usage
    assert usage.thinking_tokens == 1000 and usage.cached_tokens == 40
    # 3.5 Flash: $1.50 input, $0.15 cached input, $9.00 output (thinking included) per million.
    expected = ((usage.input_tokens - 40) * 1.50 + 40 * 0.15 + (usage.output_tokens + 1000) * 9.00) / 1e6
    assert usage.cost_usd == pytest.approx(expected, abs=2e-6)
    assert usage.cost_usd == estimate_cost_usd(
        "gemini-3.5-flash", usage.input_tokens, usage.output_tokens, thinking_tokens=1000, cached_tokens=40
    )


def test_a_429_with_retry_info_only_in_the_body_is_waited_out(server, waits):
    server.enqueue(Reply.per_minute_limit(7, limit=10))
    result = make_analyzer(server, waits).analyze(make_transcript(), title="x.mp4")
    assert result.usage.calls == 1 and len(server.generate_requests) == 2
    assert waits and waits[0] >= 7  # no Retry-After header: the body's RetryInfo set the wait


def _parallel_analyses(server, count: int, state_for) -> list:
    """``count`` analyses at once, each in its own thread with its own DB connection (like mapped tasks)."""
    from concurrent.futures import ThreadPoolExecutor

    from include.video_pipeline.hooks.results_db import ResultsDbHook

    def one(i: int):
        db = ResultsDbHook(postgres_conn_id="postgres_default")
        try:
            settings = AnalysisSettings(analyzer="gemini", gemini_base_url=server.base_url, max_retries=8)
            analyzer = build_analyzer(settings, state=state_for(db, i), backoff_base_seconds=0.05)
            return analyzer.analyze(make_transcript(), title=f"video-{i}.mp4")
        finally:
            db.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_ten_parallel_analyses_share_one_rate_limit_and_get_no_429(results_db, monkeypatch, no_key_env):
    from include.video_pipeline.hooks.provider_state import ProviderState

    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with FakeGeminiServer(api_key=API_KEY, rpm_limit=3, rpm_window_seconds=2) as fake:
        shared = _parallel_analyses(
            fake,
            10,
            lambda db, i: ProviderState(
                db, scope="gemini:test", run_id="run-1", video_id=f"v{i}", requests_per_window=3, window_seconds=2
            ),
        )
        refused_with = fake.rate_limited
        # Without the shared budget: ten workers each within their own limits still storm the project's.
        storm = _parallel_analyses(fake, 10, lambda db, i: None)
        refused_without = fake.rate_limited - refused_with
    assert len(storm) == len(shared) == 10 and all(r.usage.calls == 1 for r in shared)
    assert refused_without >= 5  # the server allows 3 per window; the rest of a burst of 10 is refused
    assert refused_with == 0


def test_the_preflight_task_stops_on_an_exhausted_daily_quota_and_records_why(results_db, server, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.video_pipeline.hooks.provider_state import provider_check
    from include.video_pipeline.operators.preflight import check_analysis_provider

    monkeypatch.setenv("VIDEO_PIPELINE_ANALYZER", "gemini")
    monkeypatch.setenv("VIDEO_PIPELINE_GEMINI_BASE_URL", server.base_url)
    server.count_tokens_reply = Reply.quota_exhausted()
    with pytest.raises(AirflowFailException, match=r"\(quota_exhausted\).*until \d\d:\d\d Pacific"):
        check_analysis_provider({"run_id": "run-q"})
    check = provider_check(results_db, "run-q")
    assert check["ok"] is False and check["reason"] == "quota_exhausted" and "pending/" in check["message"]

    server.count_tokens_reply = None  # the quota is back: the next run's check passes
    assert check_analysis_provider({"run_id": "run-r"})["model"] == "gemini-3.1-flash-lite"
    assert provider_check(results_db, "run-r")["ok"] is True
