"""Which analyzer a run uses: the provider hook ``AnalysisSettings`` names, or the offline one.

The one place that knows every provider (Gemini, Vertex AI, an OpenAI-compatible
server, offline), so the provider hooks need not know each other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from include.video_pipeline.config import AnalysisSettings
from include.video_pipeline.core.analysis import (
    DEFAULT_GEMINI_MODELS,
    Analyzer,
    AnalyzerName,
    ModelAnalyzer,
    price_table,
)
from include.video_pipeline.core.offline_analyzer import OfflineAnalyzer
from include.video_pipeline.hooks.gemini import API_KEY_ENV_VARS, GeminiAnalyzer, GeminiHook
from include.video_pipeline.hooks.llm_base import (
    PROVIDER_MISCONFIGURED,
    ModelHook,
    ProviderUnavailable,
    SharedProviderState,
)
from include.video_pipeline.hooks.results_db.gemini_batches import GeminiBatches

log = logging.getLogger(__name__)


def _hook_options(settings: AnalysisSettings, prices: Mapping[str, tuple[float, ...]]) -> dict[str, Any]:
    return {
        "timeout_seconds": settings.timeout_seconds,
        "max_retries": settings.max_retries,
        "backoff_base_seconds": settings.backoff_base_seconds,
        "backoff_max_seconds": settings.backoff_max_seconds,
        "max_total_wait_seconds": settings.max_total_wait_seconds,
        "prices": prices,
    }


def build_hook(
    settings: AnalysisSettings, *, state: SharedProviderState | None = None, **hook_kwargs: Any
) -> ModelHook | None:
    """The provider hook ``settings.analyzer`` asks for; None when the offline analyzer is to be used.

    ``auto`` uses Gemini when a key is configured and the offline analyzer
    otherwise; ``gemini`` without a key is a configuration error, raised now
    rather than after transcoding and transcribing. ``vertex`` and
    ``openai-compatible`` are used only when named. ``hook_kwargs`` override the
    hook's options (e.g. ``backoff_base_seconds`` or ``sleep`` in tests).
    """
    if settings.analyzer == "offline":
        return None
    options = {**_hook_options(settings, price_table(settings.prices)), "state": state, **hook_kwargs}
    models = settings.gemini_models or DEFAULT_GEMINI_MODELS
    if settings.analyzer == "vertex":
        from include.video_pipeline.hooks.vertex import VertexGeminiHook

        return VertexGeminiHook(
            settings.gcp_conn_id,
            project=settings.vertex_project,
            location=settings.vertex_location,
            model=models[0],
            fallback_models=models[1:],
            base_url=settings.gemini_base_url,
            **options,
        )
    if settings.analyzer == "openai-compatible":
        from include.video_pipeline.hooks.openai_compatible import OpenAICompatibleHook

        openai_hook = OpenAICompatibleHook(
            settings.openai_conn_id,
            model=settings.openai_model or "",
            base_url=settings.openai_base_url,
            **options,
        )
        openai_hook.resolve_base_url()  # fail now, not after transcoding, when there is none
        return openai_hook
    if not _any_api_key(settings):
        if settings.analyzer == "gemini":
            raise ProviderUnavailable(
                PROVIDER_MISCONFIGURED,
                f"VIDEO_PIPELINE_ANALYZER=gemini but no Gemini API key: set the password of Airflow connection "
                f"{settings.gemini_conn_id!r} or the environment variable {API_KEY_ENV_VARS[0]}",
            )
        return None
    return GeminiHook(
        settings.gemini_conn_id,
        model=models[0],
        fallback_models=models[1:],
        base_url=settings.gemini_base_url,
        **options,
    )


def _any_api_key(settings: AnalysisSettings) -> bool:
    return GeminiHook(settings.gemini_conn_id).has_api_key()


def build_analyzer(
    settings: AnalysisSettings,
    *,
    max_chunk_tokens: int | None = None,
    state: SharedProviderState | None = None,
    **hook_kwargs: Any,
) -> Analyzer:
    """The analyzer ``settings.analyzer`` asks for (see ``build_hook``); offline when there is no provider."""
    chunk_tokens = max_chunk_tokens if max_chunk_tokens is not None else settings.max_chunk_tokens
    hook = build_hook(settings, state=state, **hook_kwargs)
    if hook is None:
        if settings.analyzer != "offline":
            log.info("No Gemini API key configured; using the offline analyzer")
        return OfflineAnalyzer()
    if isinstance(hook, GeminiHook):
        name: AnalyzerName = "vertex" if settings.analyzer == "vertex" else "gemini"
        return GeminiAnalyzer(hook, name=name, max_chunk_tokens=chunk_tokens)
    return ModelAnalyzer(hook, name="openai-compatible", max_chunk_tokens=chunk_tokens)


def build_batch_analyzer(
    settings: AnalysisSettings,
    *,
    batches: GeminiBatches,
    video_id: str,
    run_id: str,
    state: SharedProviderState | None = None,
    **hook_kwargs: Any,
) -> Analyzer | None:
    """The Gemini Batch API analyzer for one video, or None when the provider has no inline batches.

    Only the Gemini API (an API key) takes inline batch requests; Vertex AI's batch
    prediction reads from Cloud Storage or BigQuery, and OpenAI-compatible servers and
    the offline analyzer have no batches: for those the caller analyses online.
    """
    hook = build_hook(settings, state=state, **hook_kwargs)
    if type(hook) is not GeminiHook:
        return None
    from include.video_pipeline.hooks.gemini_batch import GeminiBatchAnalyzer

    return GeminiBatchAnalyzer(
        hook,
        batches=batches,
        video_id=video_id,
        run_id=run_id,
        name="gemini",
        max_chunk_tokens=settings.max_chunk_tokens,
    )
