-- 001: the upload ledger and the per-video results.
--
-- videos is the ledger: one row per version of an upload (bucket, key, etag).
-- A claim is an UPDATE/INSERT that only succeeds when no other run holds the
-- video, and the partial unique index below makes two active claims on one key
-- impossible whatever the timing: the database, not the scheduler, guarantees
-- that no upload is processed twice at once.

CREATE TABLE IF NOT EXISTS videos (
    video_id          text PRIMARY KEY,
    bucket            text NOT NULL,
    source_key        text NOT NULL,          -- key below the state prefixes
    etag              text NOT NULL,
    size_bytes        bigint NOT NULL,
    state             text NOT NULL CHECK (state IN ('pending', 'processing', 'completed', 'failed')),
    outcome           text CHECK (outcome IN ('succeeded', 'failed', 'requeue')),
    claim_run_id      text,
    claimed_at        timestamptz,
    lease_expires_at  timestamptz,
    claims            integer NOT NULL DEFAULT 0,
    error             jsonb,                  -- the FailureReport when outcome = 'failed'
    last_error        jsonb,                  -- the latest attempt's error, also on retries
    media             jsonb,                  -- probe summary and transcode facts
    manifest          jsonb,                  -- what publish wrote to outputs/<video_id>/
    outputs_prefix    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);

CREATE UNIQUE INDEX IF NOT EXISTS videos_one_active_claim_per_key
    ON videos (bucket, source_key) WHERE state = 'processing';
CREATE INDEX IF NOT EXISTS videos_by_run ON videos (claim_run_id);
CREATE INDEX IF NOT EXISTS videos_by_state ON videos (state, lease_expires_at);
CREATE INDEX IF NOT EXISTS videos_by_claim_time ON videos (claimed_at);

-- Per-stage timings, one row per attempt, for the benchmark and the UI.
CREATE TABLE IF NOT EXISTS stage_runs (
    id            bigserial PRIMARY KEY,
    video_id      text NOT NULL REFERENCES videos (video_id) ON DELETE CASCADE,
    stage         text NOT NULL,
    run_id        text,
    try_number    integer NOT NULL DEFAULT 1,
    status        text NOT NULL CHECK (status IN ('success', 'failed', 'rejected', 'requeued')),
    started_at    timestamptz NOT NULL,
    seconds       double precision NOT NULL,
    details       jsonb
);
CREATE INDEX IF NOT EXISTS stage_runs_by_video ON stage_runs (video_id, stage);

-- Results are versioned: a new model or prompt adds a row and becomes current;
-- earlier rows are kept for comparison and rollback.
CREATE TABLE IF NOT EXISTS transcripts (
    id                    bigserial PRIMARY KEY,
    video_id              text NOT NULL REFERENCES videos (video_id) ON DELETE CASCADE,
    backend               text NOT NULL,
    model                 text NOT NULL,
    settings_hash         text NOT NULL,
    language              text,
    language_probability  double precision,
    duration_seconds      double precision,
    quality               text NOT NULL,
    segment_count         integer NOT NULL,
    text                  text NOT NULL,
    segments              jsonb NOT NULL,
    is_current            boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (video_id, backend, model, settings_hash)
);

CREATE TABLE IF NOT EXISTS analyses (
    id              bigserial PRIMARY KEY,
    video_id        text NOT NULL REFERENCES videos (video_id) ON DELETE CASCADE,
    analyzer        text NOT NULL,
    model           text NOT NULL,
    prompt_version  text NOT NULL,
    language        text,
    data            jsonb NOT NULL,
    flags           jsonb NOT NULL DEFAULT '[]'::jsonb,
    usage           jsonb NOT NULL DEFAULT '{}'::jsonb,
    cost_usd        numeric(12, 6),
    is_current      boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (video_id, analyzer, model, prompt_version)
);
