"""VertexGeminiHook: google-genai in Vertex mode, credentials from the google provider, all on loopback.

The service-account key is generated per session and its ``token_uri`` points at
the fake server, so google-auth signs a real JWT and exchanges it for a bearer
token over HTTP; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from include.video_pipeline.config import AnalysisSettings
from include.video_pipeline.core.analysis import MODEL_RESPONSE_SCHEMA, schema_errors
from include.video_pipeline.core.errors import PermanentError, QuotaExhausted
from include.video_pipeline.hooks.analyzers import build_analyzer
from include.video_pipeline.hooks.gemini import GeminiAnalyzer
from include.video_pipeline.hooks.vertex import VertexGeminiHook
from tests.fakes import FakeGeminiServer, Reply
from tests.fakes.gemini_server import ACCESS_TOKEN
from tests.hooks.test_gemini_hook import Waits, make_transcript

PROJECT = "vp-test-project"


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def server():
    with FakeGeminiServer(api_key="unused-for-vertex") as fake:
        yield fake


@pytest.fixture
def gcp_connection(monkeypatch, server, private_key_pem):
    """google_cloud_default as an operator would set it: a key file's JSON in the connection's extra."""
    keyfile = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "loopback-key-1",
        "private_key": private_key_pem,
        "client_email": f"pipeline@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": f"{server.base_url}/token",
    }
    conn = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(keyfile)}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return keyfile


def vertex_analyzer(server, waits, **settings) -> GeminiAnalyzer:
    analysis = AnalysisSettings(analyzer="vertex", gemini_base_url=server.base_url, max_retries=2, **settings)
    analyzer = build_analyzer(analysis, backoff_base_seconds=0.01, sleep=waits)
    assert isinstance(analyzer, GeminiAnalyzer)
    return analyzer


def test_vertex_analysis_uses_the_connections_service_account(server, gcp_connection):
    waits = Waits()
    analyzer = vertex_analyzer(server, waits, vertex_location="europe-west4")
    result = analyzer.analyze(make_transcript(), title="Встреча.mp4")

    assert result.analyzer == "vertex" and result.language == "ru"
    assert schema_errors(result.data) == [] and result.usage.calls == 1
    assert result.usage.cost_usd is not None
    # google-auth exchanged a signed JWT for the token at the key file's token_uri.
    [token_request] = server.token_requests
    assert token_request["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert token_request["assertion"][0].count(".") == 2
    [request] = server.generate_requests
    assert (request.project, request.location, request.model) == (PROJECT, "europe-west4", "gemini-3.1-flash-lite")
    assert request.path.startswith("/v1beta1/projects/")
    assert request.bearer_token == ACCESS_TOKEN and request.api_key is None
    assert request.generation_config["responseJsonSchema"] == MODEL_RESPONSE_SCHEMA
    # countTokens went to Vertex too, with the same token.
    counts = [r for r in server.requests if r.action == "countTokens"]
    assert counts and counts[0].project == PROJECT and counts[0].bearer_token == ACCESS_TOKEN


def test_vertex_project_setting_overrides_the_key_files(server, gcp_connection):
    vertex_analyzer(server, Waits(), vertex_project="other-project").analyze(make_transcript(), title="x")
    assert server.generate_requests[0].project == "other-project"


def test_vertex_rate_limits_are_retried_then_requeue(server, gcp_connection):
    waits = Waits()
    server.enqueue(*[Reply.rate_limited(retry_after=0.5)] * 3)
    with pytest.raises(QuotaExhausted, match="Vertex AI Gemini"):
        vertex_analyzer(server, waits).analyze(make_transcript(), title="x")
    assert len(server.generate_requests) == 3 and all(w >= 0.5 for w in waits)


def test_vertex_permission_denied_names_the_role_not_a_key(server, gcp_connection, private_key_pem, caplog):
    server.enqueue(Reply.permission_denied())
    with pytest.raises(PermanentError, match=r"roles/aiplatform\.user") as caught:
        vertex_analyzer(server, Waits()).analyze(make_transcript(), title="x")
    text = str(caught.value) + caplog.text
    assert ACCESS_TOKEN not in text and "PRIVATE KEY" not in text


def test_explicit_credentials_without_a_connection(server, monkeypatch):
    """Credentials handed in directly: the token the server accepts, the project from the hook."""
    from google.oauth2.credentials import Credentials

    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", raising=False)
    hook = VertexGeminiHook(
        "google_cloud_missing_for_tests",
        project=PROJECT,
        location="us-central1",
        credentials=Credentials(token=ACCESS_TOKEN),
        base_url=server.base_url,
    )
    result = GeminiAnalyzer(hook, name="vertex").analyze(make_transcript(), title="x")
    assert result.analyzer == "vertex"
    assert server.generate_requests[0].location == "us-central1"


def test_a_token_the_server_refuses_is_permanent(server, monkeypatch):
    from google.oauth2.credentials import Credentials

    hook = VertexGeminiHook(project=PROJECT, credentials=Credentials(token="stale"), base_url=server.base_url)
    with pytest.raises(PermanentError, match="Vertex AI refused the credentials"):
        GeminiAnalyzer(hook, name="vertex").analyze(make_transcript(), title="x")


def test_vertex_without_a_project_is_a_permanent_error(monkeypatch):
    from google.oauth2.credentials import Credentials

    hook = VertexGeminiHook(credentials=Credentials(token=ACCESS_TOKEN))
    with pytest.raises(PermanentError, match="VIDEO_PIPELINE_VERTEX_PROJECT"):
        hook.get_credentials_and_project()


def test_vertex_preflight_in_an_eu_region_checks_the_model_there(server, gcp_connection):
    # The set-up for countries the Gemini API does not serve: Vertex AI from europe-west4.
    hook = vertex_analyzer(server, Waits(), vertex_location="europe-west4").hook
    assert hook.preflight() == "gemini-3.1-flash-lite"
    # models.get names no region (Vertex serves it from the regional host); countTokens does.
    lookups = [(r.method, r.action, r.location) for r in server.requests]
    assert lookups == [("GET", "get", None), ("POST", "countTokens", "europe-west4")]
    assert all(r.bearer_token == ACCESS_TOKEN for r in server.requests) and server.generate_requests == []
