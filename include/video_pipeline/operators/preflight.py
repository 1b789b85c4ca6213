"""The run's first check: can the analysis provider work at all? Before any upload is claimed.

A wrong key, a retired model, a country the Gemini API does not serve or an
exhausted daily quota fails every analysis in the same way. Found after the
claim, each would cost every upload of the batch its run; found here, the run
stops with one message that says what to change, and every upload stays in
``pending/`` for the run after the fix.

The checks are the provider's own free calls (``GeminiHook.preflight``:
``models.get`` and ``countTokens``; ``OpenAICompatibleHook.preflight``:
``GET /models``); a daily quota the provider reports exhausted stops the run
with the time it resets (midnight Pacific). A retired model is skipped (once, with a
warning) and the next configured one is checked; analyses of this run then
start from the model that answered. With no provider configured (the offline
analyzer) there is nothing to check.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from include.video_pipeline.config import load_settings
from include.video_pipeline.core.errors import QuotaExhausted
from include.video_pipeline.hooks.llm_base import ProviderUnavailable

log = logging.getLogger(__name__)


def check_analysis_provider(context: Any) -> dict[str, Any]:
    """The preflight task's body: returns what was checked, or fails the run with why."""
    from include.video_pipeline.hooks.analyzers import build_hook
    from include.video_pipeline.hooks.provider_state import ProviderState, record_provider_check
    from include.video_pipeline.hooks.results_db import ResultsDbHook

    settings = load_settings()
    analysis = settings.analysis
    run_id = context["run_id"]
    db = ResultsDbHook(postgres_conn_id=settings.results_conn_id)
    try:
        db.migrate()
        state = ProviderState.for_analysis(db, analysis, run_id=run_id)
        try:
            hook = build_hook(analysis, state=state)
            if hook is None:
                log.info("Analysis: the offline analyzer (no provider to check)")
                return {"analyzer": "offline", "ok": True}
            held = state.daily_quota_hold()
            if held is not None:
                # Only the provider knows whether it reset early or was raised: ask it anyway.
                log.warning(
                    "A run found the daily quota exhausted (until %s Pacific); checking again", _pacific(held[0])
                )
            try:
                model = hook.preflight()
            except QuotaExhausted as exc:
                raise ProviderUnavailable("quota_exhausted", str(exc)) from None
            if state.budget_enabled:
                _check_priced(hook)
        except ProviderUnavailable as exc:
            message = (
                f"Analysis provider check failed ({exc.reason}): {exc} Nothing was claimed: every upload stays "
                "in pending/."
            )
            record_provider_check(db, run_id, ok=False, reason=exc.reason, message=message)
            raise AirflowFailException(message) from None
        record_provider_check(db, run_id, ok=True, reason=None, message=f"{hook.provider_label} {model}")
    finally:
        db.close()
    log.info("Analysis provider ready: %s %s", hook.provider_label, model)
    return {"analyzer": analysis.analyzer, "provider": hook.provider_label, "model": model, "ok": True}


def _check_priced(hook: Any) -> None:
    from include.video_pipeline.core.analysis import model_price
    from include.video_pipeline.hooks.llm_base import PROVIDER_MISCONFIGURED

    if model_price(hook.model, hook.prices) is None:
        raise ProviderUnavailable(
            PROVIDER_MISCONFIGURED,
            f"A budget is set but {hook.model} has no price, so its cost cannot be checked: add it to "
            "VIDEO_PIPELINE_PRICES_JSON.",
        )


def _pacific(when: Any) -> str:
    from zoneinfo import ZoneInfo

    return f"{when.astimezone(ZoneInfo('America/Los_Angeles')):%H:%M}"
