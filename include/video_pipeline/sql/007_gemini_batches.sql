-- 007: Gemini Batch API jobs, where every worker sees them.
--
-- An analysis sent through the Batch API (half price, results within hours) is paid
-- for when Google runs it, so a retried or restarted analyze task must find the batch
-- it submitted and wait for that one instead of submitting (and paying) again. The
-- task that submits writes the row before it calls Google ('submitting'), then the
-- batch's name; a row left 'submitting' by a task that died in between is matched to
-- Google's list of batches by its display name before anything is submitted again.
-- No secret is stored here: the API key stays in its Airflow connection.

CREATE TABLE IF NOT EXISTS gemini_batches (
    id             bigserial PRIMARY KEY,
    video_id       text NOT NULL,
    run_id         text NOT NULL,                 -- the run that waits for it (a later run adopts a dead run's)
    request_key    text NOT NULL,                 -- SHA-256 of the model and everything sent
    display_name   text NOT NULL UNIQUE,          -- what Google lists it by
    model          text NOT NULL,
    request_count  integer NOT NULL,              -- one request per transcript chunk
    estimate_usd   numeric(12, 6),                -- held against the daily budget until collected
    batch_name     text UNIQUE,                   -- batches/…; NULL until Google accepted it
    state          text NOT NULL DEFAULT 'submitting'
                   CHECK (state IN ('submitting', 'pending', 'running', 'succeeded', 'failed', 'cancelled',
                                    'expired')),
    message        text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    submitted_at   timestamptz,
    finished_at    timestamptz,
    collected_at   timestamptz,                   -- its answers (or its failure) became the analysis
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One batch in flight per video and request: a second submission of the same thing
-- conflicts here instead of reaching Google.
CREATE UNIQUE INDEX IF NOT EXISTS gemini_batches_in_flight ON gemini_batches (video_id, request_key)
    WHERE collected_at IS NULL AND state NOT IN ('failed', 'cancelled', 'expired');
CREATE INDEX IF NOT EXISTS gemini_batches_by_run ON gemini_batches (video_id, request_key, run_id);
