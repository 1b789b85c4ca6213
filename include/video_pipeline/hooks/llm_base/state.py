"""What the hooks share across tasks and workers, and the record of one paid call.

``SharedProviderState`` is the protocol ``hooks/provider_state.py`` implements over
the results database (rate limit, model skips, spending caps); ``CallRecord`` is
what a successful call cost, for that state and for the analysis' usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from include.video_pipeline.core.analysis import Usage


class SharedProviderState(Protocol):
    """What the hooks share across tasks and workers (``hooks/provider_state.py``)."""

    def acquire(self, tokens: int) -> float:
        """Wait for a share of the requests/tokens-per-minute budget; returns the seconds waited."""
        ...

    def call_done(self) -> None:
        """The call that ``acquire`` admitted has been answered (or failed)."""
        ...

    def hold_off(self, seconds: float) -> None:
        """Every worker waits ``seconds`` before its next call (the server said 429)."""
        ...

    def skipped_models(self) -> dict[str, str]:
        """Models found retired or unknown earlier in this run, with why."""
        ...

    def skip_model(self, model: str, message: str) -> bool:
        """Record ``model`` as skipped for the run; True when this is the first report of it."""
        ...

    def reserve(self, model: str, estimate_usd: float) -> None:
        """Hold ``estimate_usd`` against the caps, or raise ``BudgetExceeded``."""
        ...

    def release(self) -> None:
        """Drop the hold taken by ``reserve`` (what was spent is recorded by ``spend``)."""
        ...

    def spend(self, record: CallRecord) -> None:
        """Record a paid call."""
        ...

    def quota_exhausted(self, message: str) -> None:
        """The daily quota is gone: runs before it resets stop at the preflight."""
        ...

    @property
    def budget_enabled(self) -> bool: ...


@dataclass(frozen=True)
class CallRecord:
    """One successful model call, for cost tracking and logs."""

    model: str
    input_tokens: int
    output_tokens: int
    latency_seconds: float
    attempts: int
    cost_usd: float | None = None
    thinking_tokens: int = 0
    cached_tokens: int = 0

    @property
    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_seconds=self.latency_seconds,
            calls=1,
            cost_usd=self.cost_usd,
            thinking_tokens=self.thinking_tokens,
            cached_tokens=self.cached_tokens,
        )
