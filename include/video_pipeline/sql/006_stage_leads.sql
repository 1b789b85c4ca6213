-- 005: one computation per distinct content at a time.
--
-- When several uploads with the same bytes are processed at once (one batch, or
-- two runs), the first stage attempt for a cache key takes the lead here and
-- computes; the others wait for its result and reuse it instead of running
-- ffmpeg, Whisper or the model again. A lead expires, so a worker that died
-- while holding one never blocks its duplicates for longer than the lease.

CREATE TABLE IF NOT EXISTS stage_leads (
    cache_key         text PRIMARY KEY,
    stage             text NOT NULL,
    video_id          text NOT NULL,
    run_id            text,
    started_at        timestamptz NOT NULL DEFAULT now(),
    lease_expires_at  timestamptz NOT NULL
);
