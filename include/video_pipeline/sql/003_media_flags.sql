-- 003: what was odd about a playable upload (sound that starts late or ends early,
-- gaps, several audio tracks, no duration in the container, a few damaged frames).
-- Never a rejection: a flag per code, {"audio_ends_early": "the sound ends 0.8 s before
-- the picture", ...}; the codes are listed in include/video_pipeline/core/integrity.py.

ALTER TABLE videos ADD COLUMN IF NOT EXISTS media_flags jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX IF NOT EXISTS videos_by_media_flag ON videos USING gin (media_flags);
