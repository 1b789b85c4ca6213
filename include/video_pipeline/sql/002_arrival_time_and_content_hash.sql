-- 002: when an upload arrived (backfill selects by it) and what its bytes hash to
-- (duplicate uploads reuse stored results through the stage cache).

ALTER TABLE videos ADD COLUMN IF NOT EXISTS uploaded_at timestamptz;
ALTER TABLE videos ADD COLUMN IF NOT EXISTS content_sha256 text;
UPDATE videos SET uploaded_at = COALESCE(uploaded_at, claimed_at, created_at);
CREATE INDEX IF NOT EXISTS videos_by_upload_time ON videos (uploaded_at);
CREATE INDEX IF NOT EXISTS videos_by_content ON videos (content_sha256) WHERE content_sha256 IS NOT NULL;

-- The stage cache looks results up by key: (content hash, stage, settings).
ALTER TABLE stage_runs ADD COLUMN IF NOT EXISTS cache_key text;
CREATE INDEX IF NOT EXISTS stage_runs_by_cache_key ON stage_runs (cache_key) WHERE status = 'success';
