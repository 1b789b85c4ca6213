"""OpenAICompatibleHook through ModelAnalyzer: real HTTP (httpx) against a loopback chat/completions server."""

from __future__ import annotations

import json

import pytest

from include.video_pipeline.config import AnalysisSettings
from include.video_pipeline.core.analysis import ModelAnalyzer, schema_errors
from include.video_pipeline.core.errors import (
    InputRejected,
    PermanentError,
    PipelineError,
    QuotaExhausted,
    RejectReason,
)
from include.video_pipeline.hooks.analyzers import build_analyzer
from include.video_pipeline.hooks.gemini import InvalidModelOutput
from include.video_pipeline.hooks.openai_compatible import OpenAICompatibleHook
from tests.fakes.openai_server import ChatReply, FakeOpenAIServer
from tests.hooks.test_gemini_hook import Waits, make_transcript

KEY = "sk-loopback-test-key-0123456789"
MODEL = "qwen2.5:14b"

# The smallest valid JPEG header is enough: the hook only sniffs the type.
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "AIRFLOW_CONN_OPENAI_DEFAULT"):
        monkeypatch.delenv(name, raising=False)


def analyzer_for(server, waits=None, *, max_retries=3, **settings) -> ModelAnalyzer:
    analysis = AnalysisSettings(
        analyzer="openai-compatible",
        openai_base_url=settings.pop("base_url") if "base_url" in settings else server.base_url,
        openai_model=MODEL,
        max_retries=max_retries,
        **settings,
    )
    analyzer = build_analyzer(analysis, backoff_base_seconds=0.01, sleep=waits if waits is not None else Waits())
    assert isinstance(analyzer, ModelAnalyzer) and analyzer.name == "openai-compatible"
    return analyzer


def test_json_schema_answer_becomes_a_grounded_analysis(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(api_key=KEY) as server:
        result = analyzer_for(server).analyze(make_transcript(), title="Встреча.mp4")
        [request] = server.chat_requests
    assert result.analyzer == "openai-compatible" and result.model == MODEL and result.language == "ru"
    assert schema_errors(result.data) == [] and result.flags == ()
    assert result.usage.calls == 1 and result.usage.input_tokens > 0
    assert result.usage.cost_usd is None  # no price for a self-hosted model unless configured
    assert request.bearer_token == KEY
    assert request.body["model"] == MODEL
    fmt = request.response_format
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert "propertyOrdering" not in fmt["json_schema"]["schema"]
    assert "Russian (language code: ru)" in request.system_text
    assert "[4.5-9.8] Бюджет на разработку сайта" in request.prompt_text


def test_server_without_json_schema_falls_back_to_json_object_once():
    with FakeOpenAIServer(json_schema=False) as server:
        analyzer = analyzer_for(server)
        first = analyzer.analyze(make_transcript(), title="x")
        analyzer.analyze(make_transcript(), title="y")
        kinds = [r.response_format["type"] for r in server.chat_requests]
    assert schema_errors(first.data) == []
    # Refused once, then json_object for the rest of the hook's life: no refusal per call.
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert '"title_suggestion"' in server.chat_requests[1].system_text  # the schema moved into the prompt


def test_key_from_the_airflow_connection_and_url_from_its_host(monkeypatch):
    with FakeOpenAIServer(api_key="conn-key") as server:
        conn = {"conn_type": "generic", "host": server.base_url, "password": "conn-key"}
        monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", json.dumps(conn))
        result = analyzer_for(server, base_url=None).analyze(make_transcript(), title="x")
        assert server.chat_requests[0].bearer_token == "conn-key"
    assert result.usage.calls == 1


def test_local_server_needs_no_key():
    with FakeOpenAIServer() as server:
        analyzer_for(server).analyze(make_transcript(), title="x")
        assert server.chat_requests[0].bearer_token is None


def test_fenced_json_is_accepted_and_invalid_json_asked_again():
    with FakeOpenAIServer() as server:
        server.enqueue(ChatReply.text("Sure! Here is the analysis:"), ChatReply.analysis(fenced=True))
        result = analyzer_for(server).analyze(make_transcript(), title="x")
        assert len(server.chat_requests) == 2
    assert schema_errors(result.data) == [] and result.usage.calls == 2


def test_invalid_twice_raises():
    with FakeOpenAIServer() as server:
        server.enqueue(ChatReply.analysis(update={"chapters": "none"}), ChatReply.text("[]"))
        with pytest.raises(InvalidModelOutput, match="OpenAI-compatible"):
            analyzer_for(server).analyze(make_transcript(), title="x")


def test_invented_quotes_are_dropped_as_for_gemini():
    quotes = [{"text": "Мы удвоим прибыль", "start": 3.0}, {"text": "Главный риск — сроки", "start": 0.0}]
    with FakeOpenAIServer() as server:
        server.enqueue(ChatReply.analysis(update={"quotes": quotes}))
        result = analyzer_for(server).analyze(make_transcript(), title="x")
    assert result.data["quotes"] == [{"text": "Главный риск — сроки", "start": 10.1}]
    assert {"quote_not_in_transcript", "quote_start_corrected"} <= set(result.flags)


def test_rate_limits_and_overload_are_retried_with_retry_after():
    waits = Waits()
    with FakeOpenAIServer() as server:
        server.enqueue(ChatReply.rate_limited(retry_after=2), ChatReply.server_error(503))
        result = analyzer_for(server, waits).analyze(make_transcript(), title="x")
        assert len(server.chat_requests) == 3
    assert result.usage.calls == 1
    assert waits[0] >= 2.0 and len(waits) == 2


def test_persistent_rate_limit_requeues_and_errors_exhaust():
    with FakeOpenAIServer() as server:
        server.enqueue(*[ChatReply.rate_limited()] * 3)
        with pytest.raises(QuotaExhausted):
            analyzer_for(server, max_retries=2).analyze(make_transcript(), title="x")
        server.enqueue(*[ChatReply.server_error(500)] * 3)
        with pytest.raises(PipelineError, match="after 3 attempt") as caught:
            analyzer_for(server, max_retries=2).analyze(make_transcript(), title="x")
        assert type(caught.value) is PipelineError


def test_insufficient_quota_requeues_without_retrying():
    waits = Waits()
    with FakeOpenAIServer() as server:
        server.enqueue(ChatReply.insufficient_quota())
        with pytest.raises(QuotaExhausted, match="quota"):
            analyzer_for(server, waits).analyze(make_transcript(), title="x")
        assert len(server.chat_requests) == 1 and waits == []


def test_wrong_key_is_permanent_and_never_shown(monkeypatch, caplog):
    wrong = "sk-wrong-key-9876543210"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with FakeOpenAIServer(api_key=KEY) as server:
        with pytest.raises(PermanentError, match="refused the key") as caught:
            analyzer_for(server).analyze(make_transcript(), title="x")
    assert wrong not in str(caught.value) + repr(caught.value) + caplog.text


def test_unknown_model_is_permanent():
    with FakeOpenAIServer() as server:
        server.enqueue(ChatReply.model_not_found())
        with pytest.raises(PermanentError, match="not found"):
            analyzer_for(server).analyze(make_transcript(), title="x")


@pytest.mark.parametrize("reply", [ChatReply.content_filter(), ChatReply.content_policy()], ids=["finish", "400"])
def test_content_refusals_reject_the_input(reply):
    with FakeOpenAIServer() as server:
        server.enqueue(reply)
        with pytest.raises(InputRejected) as caught:
            analyzer_for(server).analyze(make_transcript(), title="x")
        assert len(server.chat_requests) == 1
    assert caught.value.reason == RejectReason.CONTENT_BLOCKED


def test_server_down_is_retried_then_fails(unused_tcp_port_url):
    waits = Waits()
    analyzer = analyzer_for(None, waits, max_retries=1, base_url=unused_tcp_port_url)
    with pytest.raises(PipelineError, match="ConnectError"):
        analyzer.analyze(make_transcript(), title="x")
    assert len(waits) == 1


def test_images_are_sent_as_data_urls_before_the_text():
    with FakeOpenAIServer() as server:
        result = analyzer_for(server).analyze(make_transcript(), title="x", images=[JPEG])
        [request] = server.chat_requests
    assert request.images == [("image/jpeg", JPEG)]
    assert request.body["messages"][1]["content"][-1]["type"] == "text"
    assert result.prompt_version == "analysis_v1+images_v1"
    assert "1 image(s) from the video are attached" in request.prompt_text


def test_configured_prices_make_a_cost_record():
    with FakeOpenAIServer() as server:
        result = analyzer_for(server, prices=(("qwen2.5", 0.5, 1.5),)).analyze(make_transcript(), title="x")
    usage = result.usage
    assert usage.cost_usd == pytest.approx((usage.input_tokens * 0.5 + usage.output_tokens * 1.5) / 1e6, abs=1e-6)


def test_missing_base_url_fails_when_the_analyzer_is_built():
    settings = AnalysisSettings(analyzer="openai-compatible", openai_model=MODEL, openai_conn_id="openai_missing")
    with pytest.raises(PermanentError, match="VIDEO_PIPELINE_OPENAI_BASE_URL"):
        build_analyzer(settings)


def test_no_token_counting_endpoint_means_the_estimate_is_used():
    hook = OpenAICompatibleHook(model=MODEL, base_url="http://127.0.0.1:9/v1")
    assert hook.count_tokens("anything") is None


@pytest.fixture
def unused_tcp_port_url():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# -- the preflight: GET /models, before any upload is claimed ------------------------------------


def test_preflight_accepts_a_server_that_serves_the_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(api_key=KEY, models=("llama3.1:8b", MODEL)) as server:
        assert analyzer_for(server).hook.preflight() == MODEL
        assert server.chat_requests == []  # nothing paid for, nothing generated


@pytest.mark.parametrize(
    ("case", "reason", "words"),
    [
        ("model not served", "model_unavailable", "llama3.1:8b"),
        ("wrong key", "provider_auth", "refused the key"),
        ("server down", "provider_unreachable", "does not answer"),
    ],
)
def test_preflight_failures_say_what_to_fix(case, reason, words, monkeypatch, unused_tcp_port_url):
    from include.video_pipeline.hooks.llm_base import ProviderUnavailable

    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-000000" if case == "wrong key" else KEY)
    with FakeOpenAIServer(api_key=KEY, models=("llama3.1:8b",) if case == "model not served" else (MODEL,)) as server:
        url = unused_tcp_port_url if case == "server down" else server.base_url
        hook = analyzer_for(server, base_url=url, max_retries=1).hook
        with pytest.raises(ProviderUnavailable) as failure:
            hook.preflight()
    assert failure.value.reason == reason and words in str(failure.value)
    assert "sk-wrong-key" not in str(failure.value)
