"""What every task and worker shares about the analysis provider, kept in the results database.

Gemini's limits are the project's, not a task's: ten videos analysed at once
by ten workers draw from one requests- and tokens-per-minute budget, one daily
quota and one bill. ``ProviderState`` is that shared view (the hooks use it
through ``llm_base.SharedProviderState``):

* ``acquire``: a sliding-window count of the calls of the last minute (table
  ``provider_calls``), serialised by a transaction-level advisory lock, so no
  worker sends a call the limit has no room for; it waits for the oldest call
  to leave the window instead. A 429's ``RetryInfo`` becomes a hold every
  worker honours (``provider_holds``).
* ``skip_model``: a model found retired is skipped by every later task of the
  run (``model_skips``), and warned about once.
* ``reserve`` / ``spend``: the spending caps. An analysis holds its estimate
  while it runs (so parallel videos cannot all pass the same cap), a submitted
  Gemini batch until its answers arrive (``gemini_batches``), and every paid
  call is recorded (``analysis_spend``), per video, run and UTC day.
* ``quota_exhausted``: a daily quota that ran out stops later runs at the
  preflight until it resets (midnight Pacific).

The database's clock is the only clock: workers on different machines agree.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.video_pipeline.config import AnalysisSettings
from include.video_pipeline.hooks.llm_base import BudgetExceeded, CallRecord, next_quota_reset
from include.video_pipeline.hooks.results_db.gemini_batches import BATCH_HOLD_INTERVAL

if TYPE_CHECKING:
    from include.video_pipeline.hooks.results_db import ResultsDbHook

log = logging.getLogger(__name__)

# A reservation older than this belongs to a task that died; it no longer holds budget.
_STALE_RESERVATION = "1 hour"
# Added to every wait: the server counts a call when it arrives, a little after
# this worker recorded it, so waiting exactly one window could land one call early.
_WINDOW_MARGIN_SECONDS = 0.25


def provider_scope(settings: AnalysisSettings) -> str:
    """Which shared budget a call draws from: the provider and where it is reached."""
    if settings.analyzer == "vertex":
        return f"vertex:{settings.vertex_project or '-'}:{settings.vertex_location}"
    if settings.analyzer == "openai-compatible":
        return f"openai-compatible:{settings.openai_base_url or settings.openai_conn_id}"
    return f"gemini:{settings.gemini_base_url or 'generativelanguage.googleapis.com'}"


class ProviderState:
    """The shared state of one provider for one task.

    :param db: the results database.
    :param scope: see ``provider_scope``.
    :param run_id: the DAG run (model skips last for the run); None outside a run.
    :param video_id: the video being analysed (per-video spend); None for the preflight.
    :param requests_per_window, tokens_per_window: the shared limits; 0 = none.
    :param window_seconds: the limits' window (Google: a minute).
    :param budget_usd_per_day, budget_usd_per_video: spending caps; None = none.
    """

    def __init__(
        self,
        db: ResultsDbHook,
        *,
        scope: str,
        run_id: str | None = None,
        video_id: str | None = None,
        requests_per_window: int = 0,
        tokens_per_window: int = 0,
        window_seconds: float = 60.0,
        budget_usd_per_day: float | None = None,
        budget_usd_per_video: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.db = db
        self.scope = scope
        self.run_id = run_id
        self.video_id = video_id
        self.requests_per_window = requests_per_window
        self.tokens_per_window = tokens_per_window
        self.window_seconds = window_seconds
        self.budget_usd_per_day = budget_usd_per_day
        self.budget_usd_per_video = budget_usd_per_video
        self.sleep = sleep
        self._reservation: int | None = None
        self._call: int | None = None

    @classmethod
    def for_analysis(
        cls, db: ResultsDbHook, settings: AnalysisSettings, *, run_id: str | None, video_id: str | None = None
    ) -> ProviderState:
        # The shared limits are Gemini's (API or Vertex AI); a self-hosted server has none.
        limited = settings.analyzer != "openai-compatible"
        return cls(
            db,
            scope=provider_scope(settings),
            run_id=run_id,
            video_id=video_id,
            requests_per_window=settings.requests_per_minute if limited else 0,
            tokens_per_window=settings.tokens_per_minute if limited else 0,
            window_seconds=settings.rate_window_seconds,
            budget_usd_per_day=settings.budget_usd_per_day,
            budget_usd_per_video=settings.budget_usd_per_video,
        )

    # -- the shared rate limit -------------------------------------------------

    def acquire(self, tokens: int) -> float:
        """Wait until the shared budget has room for one call of ``tokens``; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self._try_acquire(max(0, int(tokens)))
            if wait <= 0:
                if waited:
                    log.info("Shared rate limit (%s): waited %.1fs for a free slot", self.scope, waited)
                return waited
            # A little jitter so workers released by the same expiry do not all ask at once.
            delay = wait + _WINDOW_MARGIN_SECONDS + random.uniform(0, 0.1)  # noqa: S311 - jitter
            self.sleep(delay)
            waited += delay

    def _try_acquire(self, tokens: int) -> float:
        with self.db.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"vp-rate:{self.scope}",))
            cur.execute(
                "SELECT EXTRACT(EPOCH FROM max(until) - clock_timestamp()) FROM provider_holds"
                " WHERE scope = %s AND kind = 'rate_limit' AND until > clock_timestamp()",
                (self.scope,),
            )
            hold = cur.fetchone()[0]
            if hold is not None and float(hold) > 0:
                return float(hold)
            if not (self.requests_per_window or self.tokens_per_window):
                return 0.0
            window = float(self.window_seconds)
            cur.execute(
                "DELETE FROM provider_calls WHERE scope = %s AND at < clock_timestamp() - make_interval(secs => %s)",
                (self.scope, 2 * window),
            )
            cur.execute(
                "SELECT count(*), COALESCE(sum(tokens), 0),"
                " EXTRACT(EPOCH FROM min(at) + make_interval(secs => %s) - clock_timestamp())"
                " FROM provider_calls WHERE scope = %s AND at > clock_timestamp() - make_interval(secs => %s)",
                (window, self.scope, window),
            )
            count, used, oldest_leaves = cur.fetchone()
            over_requests = bool(self.requests_per_window) and count >= self.requests_per_window
            # One call bigger than the whole token budget still goes, alone in its window.
            over_tokens = bool(self.tokens_per_window) and count > 0 and used + tokens > self.tokens_per_window
            if over_requests or over_tokens:
                return max(float(oldest_leaves or 0.0), 0.05)
            cur.execute("INSERT INTO provider_calls (scope, tokens) VALUES (%s, %s) RETURNING id", (self.scope, tokens))
            self._call = int(cur.fetchone()[0])
            return 0.0

    def call_done(self) -> None:
        """The call acquired last has its answer: count it from now, when the server surely saw it.

        The server counts a call when it arrives, which is after this worker took
        its slot; moving the slot's time to the answer's keeps the window from
        freeing a slot early when a call waited in a queue on the way.
        """
        if self._call is None:
            return
        with self.db.cursor() as cur:
            cur.execute("UPDATE provider_calls SET at = clock_timestamp() WHERE id = %s", (self._call,))
        self._call = None

    def hold_off(self, seconds: float) -> None:
        with self.db.cursor() as cur:
            cur.execute(
                """
                INSERT INTO provider_holds (scope, kind, until, message)
                VALUES (%s, 'rate_limit', clock_timestamp() + make_interval(secs => %s), 'HTTP 429')
                ON CONFLICT (scope, kind) DO UPDATE
                   SET until = GREATEST(provider_holds.until, EXCLUDED.until), updated_at = now()
                """,
                (self.scope, float(seconds)),
            )

    def quota_exhausted(self, message: str) -> None:
        with self.db.cursor() as cur:
            cur.execute(
                """
                INSERT INTO provider_holds (scope, kind, until, message) VALUES (%s, 'daily_quota', %s, %s)
                ON CONFLICT (scope, kind) DO UPDATE
                   SET until = EXCLUDED.until, message = EXCLUDED.message, updated_at = now()
                """,
                (self.scope, next_quota_reset(), message[:500]),
            )

    def daily_quota_hold(self) -> tuple[datetime, str] | None:
        """(until, message) while a daily quota found exhausted has not reset yet."""
        with self.db.cursor() as cur:
            cur.execute(
                "SELECT until, message FROM provider_holds"
                " WHERE scope = %s AND kind = 'daily_quota' AND until > clock_timestamp()",
                (self.scope,),
            )
            row = cur.fetchone()
        return (row[0], str(row[1] or "")) if row else None

    # -- retired models ----------------------------------------------------------

    def skipped_models(self) -> dict[str, str]:
        if self.run_id is None:
            return {}
        with self.db.cursor() as cur:
            cur.execute(
                "SELECT model, message FROM model_skips WHERE run_id = %s AND scope = %s ORDER BY created_at",
                (self.run_id, self.scope),
            )
            return {str(model): str(message or "") for model, message in cur.fetchall()}

    def skip_model(self, model: str, message: str) -> bool:
        if self.run_id is None:
            return True
        with self.db.cursor() as cur:
            cur.execute(
                "INSERT INTO model_skips (run_id, scope, model, message) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING model",
                (self.run_id, self.scope, model, message[:500]),
            )
            return cur.fetchone() is not None

    # -- budgets -------------------------------------------------------------------

    @property
    def budget_enabled(self) -> bool:
        return self.budget_usd_per_day is not None or self.budget_usd_per_video is not None

    def reserve(self, model: str, estimate_usd: float) -> None:
        with self.db.cursor() as cur:
            # One check-and-hold at a time, so two videos cannot both take the last dollar.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('vp-budget'))")
            live = f"(kind = 'spent' OR created_at > now() - interval '{_STALE_RESERVATION}')"
            cur.execute(
                f"SELECT COALESCE(sum(usd), 0) FROM analysis_spend"
                f" WHERE day = (now() AT TIME ZONE 'UTC')::date AND {live}"
            )
            today = float(cur.fetchone()[0])
            # A submitted Gemini batch is billed when Google runs it, hours later: its estimate
            # holds against the day until its answers are recorded as spend.
            cur.execute(
                "SELECT COALESCE(sum(estimate_usd), 0) FROM gemini_batches WHERE collected_at IS NULL"
                " AND state NOT IN ('failed', 'cancelled', 'expired')"
                f" AND created_at > now() - interval '{BATCH_HOLD_INTERVAL}'"
            )
            today += float(cur.fetchone()[0])
            cur.execute(
                f"SELECT COALESCE(sum(usd), 0) FROM analysis_spend WHERE run_id = %s AND video_id = %s AND {live}",
                (self.run_id, self.video_id),
            )
            this_video = float(cur.fetchone()[0])
            day_cap, video_cap = self.budget_usd_per_day, self.budget_usd_per_video
            if day_cap is not None and today + estimate_usd > day_cap:
                raise BudgetExceeded(
                    f"daily analysis budget reached: ${today:.6f} of ${day_cap:.6f} spent or held today (UTC), "
                    f"and this analysis is estimated at ${estimate_usd:.6f} with {model} "
                    "(VIDEO_PIPELINE_BUDGET_USD_PER_DAY)"
                )
            if video_cap is not None and this_video + estimate_usd > video_cap:
                raise BudgetExceeded(
                    f"per-video analysis budget: this analysis is estimated at ${estimate_usd:.6f} with {model}, "
                    f"over ${video_cap:.6f} (VIDEO_PIPELINE_BUDGET_USD_PER_VIDEO)"
                )
            cur.execute(
                "INSERT INTO analysis_spend (video_id, run_id, kind, model, usd) VALUES (%s, %s, 'reserved', %s, %s)"
                " RETURNING id",
                (self.video_id, self.run_id, model, estimate_usd),
            )
            self._reservation = int(cur.fetchone()[0])

    def release(self) -> None:
        if self._reservation is None:
            return
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM analysis_spend WHERE id = %s AND kind = 'reserved'", (self._reservation,))
        self._reservation = None

    def spend(self, record: CallRecord) -> None:
        with self.db.cursor() as cur:
            cur.execute(
                """
                INSERT INTO analysis_spend (video_id, run_id, kind, model, usd, input_tokens, output_tokens,
                                            thinking_tokens, cached_tokens)
                VALUES (%s, %s, 'spent', %s, %s, %s, %s, %s, %s)
                """,
                (
                    self.video_id,
                    self.run_id,
                    record.model,
                    record.cost_usd or 0.0,
                    record.input_tokens,
                    record.output_tokens,
                    record.thinking_tokens,
                    record.cached_tokens,
                ),
            )


def spend_report(db: Any, run_id: str) -> dict[str, Any]:
    """What a run's analyses cost: per video, the run's total, and the UTC day's total so far (USD)."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT s.video_id, v.source_key, sum(s.usd), count(*) FROM analysis_spend s"
            " LEFT JOIN videos v USING (video_id)"
            " WHERE s.run_id = %s AND s.kind = 'spent' GROUP BY s.video_id, v.source_key ORDER BY v.source_key",
            (run_id,),
        )
        videos = [
            {"video_id": vid, "source_key": key, "usd": round(float(usd), 6), "calls": int(calls)}
            for vid, key, usd, calls in cur.fetchall()
        ]
        cur.execute(
            "SELECT (now() AT TIME ZONE 'UTC')::date, COALESCE(sum(usd), 0) FROM analysis_spend"
            " WHERE kind = 'spent' AND day = (now() AT TIME ZONE 'UTC')::date"
        )
        day, day_usd = cur.fetchone()
    return {
        "run_usd": round(sum(v["usd"] for v in videos), 6),
        "videos": videos,
        "day": str(day),
        "day_usd": round(float(day_usd), 6),
    }


def videos_without_analysis(db: Any, *, limit: int) -> list[dict[str, Any]]:
    """Completed videos whose current analysis is marked unavailable (the provider was down), oldest first."""
    if limit <= 0:
        return []
    with db.cursor() as cur:
        cur.execute(
            """
            SELECT v.* FROM videos v JOIN analyses a ON a.video_id = v.video_id AND a.is_current
             WHERE v.state = 'completed' AND a.flags ? 'analysis_unavailable'
             ORDER BY v.uploaded_at, v.video_id LIMIT %s
            """,
            (limit,),
        )
        rows: list[dict[str, Any]] = db._rows(cur)
    return rows


def record_provider_check(db: Any, run_id: str, *, ok: bool, reason: str | None, message: str) -> None:
    """What the run's preflight found (one row per run)."""
    with db.cursor() as cur:
        cur.execute(
            """
            INSERT INTO provider_checks (run_id, ok, reason, message) VALUES (%s, %s, %s, %s)
            ON CONFLICT (run_id) DO UPDATE
               SET ok = EXCLUDED.ok, reason = EXCLUDED.reason, message = EXCLUDED.message, checked_at = now()
            """,
            (run_id, ok, reason, message[:2000]),
        )


def provider_check(db: Any, run_id: str) -> dict[str, Any] | None:
    """The run's preflight result, or None when it did not run (offline, skipped sensor)."""
    with db.cursor() as cur:
        cur.execute("SELECT ok, reason, message FROM provider_checks WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
    return {"ok": bool(row[0]), "reason": row[1], "message": row[2]} if row else None
