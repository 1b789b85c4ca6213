-- 004: what every worker shares about the analysis provider.
--
-- Google's rate limits and quotas are per project, not per task, so the state
-- that keeps many parallel videos inside them lives here, where every worker
-- sees it (hooks/provider_state.py).

-- The shared requests/tokens-per-minute budget: one row per call, counted over a
-- sliding window; rows older than two windows are deleted as calls are made.
CREATE TABLE IF NOT EXISTS provider_calls (
    id      bigserial PRIMARY KEY,
    scope   text NOT NULL,                       -- provider and endpoint, e.g. "gemini https://…"
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    tokens  integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS provider_calls_by_scope_time ON provider_calls (scope, at);

-- "Everyone wait": a 429's RetryInfo, or a daily quota until it resets.
CREATE TABLE IF NOT EXISTS provider_holds (
    scope       text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('rate_limit', 'daily_quota')),
    until       timestamptz NOT NULL,
    message     text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, kind)
);

-- Models found retired or unknown in a run: skipped by every later task of the run.
CREATE TABLE IF NOT EXISTS model_skips (
    run_id      text NOT NULL,
    scope       text NOT NULL,
    model       text NOT NULL,
    message     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, scope, model)
);

-- Spend: a 'reserved' row holds an analysis' estimate while it runs (so parallel
-- videos cannot all pass the same cap), each paid call adds a 'spent' row.
CREATE TABLE IF NOT EXISTS analysis_spend (
    id               bigserial PRIMARY KEY,
    video_id         text,
    run_id           text,
    day              date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
    kind             text NOT NULL CHECK (kind IN ('reserved', 'spent')),
    model            text NOT NULL,
    usd              numeric(12, 6) NOT NULL DEFAULT 0,
    input_tokens     integer NOT NULL DEFAULT 0,
    output_tokens    integer NOT NULL DEFAULT 0,
    thinking_tokens  integer NOT NULL DEFAULT 0,
    cached_tokens    integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS analysis_spend_by_day ON analysis_spend (day, kind);
CREATE INDEX IF NOT EXISTS analysis_spend_by_run ON analysis_spend (run_id, video_id);

-- What each run's preflight found: reconcile fails the run with the reason, and the
-- run summary carries it, when the provider could not work.
CREATE TABLE IF NOT EXISTS provider_checks (
    run_id      text PRIMARY KEY,
    ok          boolean NOT NULL,
    reason      text,
    message     text NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now()
);
