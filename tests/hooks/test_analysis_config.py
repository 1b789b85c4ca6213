"""The analysis part of load_settings: provider choices, their settings and the errors for bad values."""

from __future__ import annotations

import pytest

from include.video_pipeline.config import AnalysisSettings, ConfigError, load_settings


def test_defaults_keep_the_existing_behaviour():
    analysis = load_settings({}).analysis
    assert analysis == AnalysisSettings()
    assert (analysis.analyzer, analysis.gemini_sdk, analysis.multimodal) == ("auto", "google-genai", False)
    assert (analysis.max_chunk_tokens, analysis.prices) == (30_000, ())


@pytest.mark.parametrize("name", ["auto", "gemini", "vertex", "offline", "GEMINI"])
def test_analyzer_choices(name):
    assert load_settings({"VIDEO_PIPELINE_ANALYZER": name}).analysis.analyzer == name.lower()


def test_every_new_setting_is_read():
    env = {
        "VIDEO_PIPELINE_ANALYZER": "openai-compatible",
        "VIDEO_PIPELINE_OPENAI_BASE_URL": "http://ollama:11434/v1",
        "VIDEO_PIPELINE_OPENAI_MODEL": "qwen2.5:14b",
        "VIDEO_PIPELINE_OPENAI_CONN_ID": "ollama",
        "VIDEO_PIPELINE_VERTEX_PROJECT": "media-team",
        "VIDEO_PIPELINE_VERTEX_LOCATION": "europe-west4",
        "VIDEO_PIPELINE_GCP_CONN_ID": "gcp",
        "VIDEO_PIPELINE_ANALYSIS_MULTIMODAL": "true",
        "VIDEO_PIPELINE_GEMINI_MAX_CHUNK_TOKENS": "12000",
        "VIDEO_PIPELINE_ANALYSIS_BACKOFF_BASE_SECONDS": "1.5",
        "VIDEO_PIPELINE_ANALYSIS_BACKOFF_MAX_SECONDS": "30",
        "VIDEO_PIPELINE_ANALYSIS_MAX_RETRY_WAIT_SECONDS": "90",
        "VIDEO_PIPELINE_PRICES_JSON": '{"qwen2.5": [0, 0], "gemini-2.5-flash": [0.3, 2.5]}',
        "VIDEO_PIPELINE_GEMINI_SDK": "google-genai",
    }
    analysis = load_settings(env).analysis
    assert analysis.analyzer == "openai-compatible"
    assert (analysis.openai_base_url, analysis.openai_model, analysis.openai_conn_id) == (
        "http://ollama:11434/v1",
        "qwen2.5:14b",
        "ollama",
    )
    assert (analysis.vertex_project, analysis.vertex_location, analysis.gcp_conn_id) == (
        "media-team",
        "europe-west4",
        "gcp",
    )
    assert analysis.multimodal is True and analysis.max_chunk_tokens == 12_000
    assert (analysis.backoff_base_seconds, analysis.backoff_max_seconds, analysis.max_total_wait_seconds) == (
        1.5,
        30.0,
        90.0,
    )
    assert analysis.prices == (("qwen2.5", 0.0, 0.0), ("gemini-2.5-flash", 0.3, 2.5))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIDEO_PIPELINE_ANALYZER": "claude"}, "VIDEO_PIPELINE_ANALYZER must be one of"),
        ({"VIDEO_PIPELINE_ANALYZER": "openai-compatible"}, "needs VIDEO_PIPELINE_OPENAI_MODEL"),
        ({"VIDEO_PIPELINE_GEMINI_SDK": "google-generativeai"}, "protobuf"),
        ({"VIDEO_PIPELINE_PRICES_JSON": "[1, 2]"}, "JSON object"),
        ({"VIDEO_PIPELINE_PRICES_JSON": "{oops"}, "JSON object"),
        ({"VIDEO_PIPELINE_PRICES_JSON": '{"m": [1]}'}, "needs \\[input, output\\]"),
        ({"VIDEO_PIPELINE_PRICES_JSON": '{"m": [-1, 2]}'}, "needs \\[input, output\\]"),
        ({"VIDEO_PIPELINE_GEMINI_MAX_CHUNK_TOKENS": "10"}, "VIDEO_PIPELINE_GEMINI_MAX_CHUNK_TOKENS must be"),
        ({"VIDEO_PIPELINE_ANALYSIS_MULTIMODAL": "maybe"}, "true or false"),
        (
            {"VIDEO_PIPELINE_ANALYSIS_BACKOFF_BASE_SECONDS": "10", "VIDEO_PIPELINE_ANALYSIS_BACKOFF_MAX_SECONDS": "5"},
            "BACKOFF_MAX_SECONDS must be >=",
        ),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_default_models_are_current_and_match_the_price_table():
    from include.video_pipeline.config import DEFAULT_GEMINI_MODEL
    from include.video_pipeline.core.analysis import DEFAULT_GEMINI_MODELS, model_price

    analysis = load_settings({}).analysis
    assert analysis.gemini_models == DEFAULT_GEMINI_MODELS == tuple(DEFAULT_GEMINI_MODEL.split(","))
    assert not any(m.startswith("gemini-2.") for m in DEFAULT_GEMINI_MODELS)  # the 2.x family is retired
    assert all(model_price(m) is not None for m in DEFAULT_GEMINI_MODELS)  # every default has a price
    assert (analysis.budget_usd_per_day, analysis.budget_usd_per_video) == (None, None)  # budgets off
    assert (analysis.requests_per_minute, analysis.tokens_per_minute, analysis.rate_window_seconds) == (
        60,
        1_000_000,
        60.0,
    )


def test_model_list_budgets_rate_limits_and_cached_prices_are_read():
    analysis = load_settings(
        {
            "VIDEO_PIPELINE_GEMINI_MODEL": " gemini-3.5-flash , gemini-3.1-flash-lite ",
            "VIDEO_PIPELINE_BUDGET_USD_PER_DAY": "5",
            "VIDEO_PIPELINE_BUDGET_USD_PER_VIDEO": "0.25",
            "VIDEO_PIPELINE_GEMINI_RPM": "0",
            "VIDEO_PIPELINE_GEMINI_TPM": "250000",
            "VIDEO_PIPELINE_GEMINI_RATE_WINDOW_SECONDS": "30",
            "VIDEO_PIPELINE_PRICES_JSON": '{"gemini-3.5-flash": [1.5, 9, 0.15]}',
        }
    ).analysis
    assert analysis.gemini_models == ("gemini-3.5-flash", "gemini-3.1-flash-lite")
    assert (analysis.budget_usd_per_day, analysis.budget_usd_per_video) == (5.0, 0.25)
    assert (analysis.requests_per_minute, analysis.tokens_per_minute, analysis.rate_window_seconds) == (0, 250_000, 30)
    assert analysis.prices == (("gemini-3.5-flash", 1.5, 9.0, 0.15),)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIDEO_PIPELINE_GEMINI_MODEL": "gemini 3.5 flash"}, "VIDEO_PIPELINE_GEMINI_MODEL"),
        ({"VIDEO_PIPELINE_BUDGET_USD_PER_DAY": "ten"}, "VIDEO_PIPELINE_BUDGET_USD_PER_DAY"),
        ({"VIDEO_PIPELINE_GEMINI_RPM": "-1"}, "VIDEO_PIPELINE_GEMINI_RPM"),
        ({"VIDEO_PIPELINE_PRICES_JSON": '{"m": [1, 2, 3, 4]}'}, "cached input"),
    ],
)
def test_bad_analysis_limits_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_gemini_batch_is_off_unless_asked_for():
    analysis = load_settings({}).analysis
    assert (analysis.gemini_batch, analysis.batch_poll_seconds) == ("never", 60.0)
    # New uploads, reprocessing runs: online by default, whatever the run.
    assert not any(analysis.wants_batch(mode) for mode in ("none", "backfill", "failed", "video"))
    env = {"VIDEO_PIPELINE_GEMINI_BATCH": "reprocess", "VIDEO_PIPELINE_GEMINI_BATCH_POLL_SECONDS": "5"}
    analysis = load_settings(env).analysis
    assert (analysis.gemini_batch, analysis.batch_poll_seconds) == ("reprocess", 5.0)


@pytest.mark.parametrize(
    ("policy", "mode", "requested", "expected"),
    [
        ("reprocess", "none", None, False),  # new uploads keep minutes, not hours
        ("reprocess", "backfill", None, True),
        ("reprocess", "failed", "auto", True),
        ("reprocess", "video", None, True),
        ("reprocess", "backfill", "online", False),  # the run's param wins
        ("never", "none", "batch", True),  # a bulk import that can wait, asked for by hand
        ("never", "backfill", None, False),
    ],
)
def test_which_runs_use_the_batch_api(policy, mode, requested, expected):
    settings = AnalysisSettings(analyzer="gemini", gemini_batch=policy)
    assert settings.wants_batch(mode, requested) is expected


def test_only_the_gemini_api_has_inline_batches_and_bad_choices_are_refused():
    for analyzer in ("vertex", "openai-compatible", "offline"):
        assert not AnalysisSettings(analyzer=analyzer, gemini_batch="reprocess").wants_batch("backfill", "batch")
    with pytest.raises(ValueError, match="gemini_batch must be one of auto, online, batch"):
        AnalysisSettings(analyzer="gemini").wants_batch("none", "sometimes")
    with pytest.raises(ConfigError, match="VIDEO_PIPELINE_GEMINI_BATCH must be one of never, reprocess"):
        load_settings({"VIDEO_PIPELINE_GEMINI_BATCH": "always"})
