-- 005: full-text search over what was said (per transcript segment, with its time) and over
-- each video's name, title, summary and tags, for the Videos page and GET /search.
--
-- Every row is indexed with the text search configuration of its language, so Russian gets
-- Russian morphology ("бюджета" finds "бюджет") and English gets English stemming. A query is
-- parsed with each configuration and the parses are OR-ed, so one search box serves both.
-- search_documents is kept by triggers on transcripts and analyses: the pipeline's writes need
-- no change, and the current version of each is what is searched.

CREATE OR REPLACE FUNCTION vp_search_config(lang text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE lower(split_part(coalesce(lang, ''), '-', 1))
        WHEN 'ru' THEN 'russian' WHEN 'en' THEN 'english' WHEN 'de' THEN 'german'
        WHEN 'fr' THEN 'french' WHEN 'es' THEN 'spanish' WHEN 'it' THEN 'italian'
        WHEN 'pt' THEN 'portuguese' WHEN 'nl' THEN 'dutch' WHEN 'uk' THEN 'simple'
        ELSE 'simple' END)::regconfig
$$;

CREATE TABLE IF NOT EXISTS search_documents (
    id             bigserial PRIMARY KEY,
    video_id       text NOT NULL REFERENCES videos (video_id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('segment', 'title', 'summary', 'tags')),
    start_seconds  double precision,          -- segments only: where the words are said
    end_seconds    double precision,
    config         regconfig NOT NULL,
    body           text NOT NULL,
    tsv            tsvector GENERATED ALWAYS AS (to_tsvector(config, body)) STORED
);
CREATE INDEX IF NOT EXISTS search_documents_tsv ON search_documents USING gin (tsv);
CREATE INDEX IF NOT EXISTS search_documents_by_video ON search_documents (video_id, kind);
-- The Videos page lists newest arrivals first and filters by state and date.
CREATE INDEX IF NOT EXISTS videos_by_state_and_arrival ON videos (state, uploaded_at DESC);

CREATE OR REPLACE FUNCTION vp_index_transcript(vid text) RETURNS void LANGUAGE sql AS $$
    DELETE FROM search_documents WHERE video_id = vid AND kind = 'segment';
    INSERT INTO search_documents (video_id, kind, start_seconds, end_seconds, config, body)
    SELECT t.video_id, 'segment', (s ->> 'start')::double precision, (s ->> 'end')::double precision,
           vp_search_config(t.language), s ->> 'text'
      FROM (SELECT video_id, language, segments FROM transcripts
             WHERE video_id = vid AND is_current ORDER BY updated_at DESC, id DESC LIMIT 1) t,
           jsonb_array_elements(t.segments) s
     WHERE btrim(coalesce(s ->> 'text', '')) <> '';
$$;

CREATE OR REPLACE FUNCTION vp_index_analysis(vid text) RETURNS void LANGUAGE sql AS $$
    DELETE FROM search_documents WHERE video_id = vid AND kind IN ('title', 'summary', 'tags');
    INSERT INTO search_documents (video_id, kind, config, body)
    SELECT vid, d.kind, d.config, d.body
      FROM (SELECT v.source_key, a.language, a.data
              FROM videos v
              LEFT JOIN LATERAL (SELECT language, data FROM analyses
                                  WHERE video_id = v.video_id AND is_current
                                  ORDER BY updated_at DESC, id DESC LIMIT 1) a ON true
             WHERE v.video_id = vid) x,
           LATERAL (VALUES
               ('title', vp_search_config(x.language),
                -- Dots, dashes and underscores split the file name into words: the parser would
                -- otherwise read "upload.mp4" as one file-name token.
                regexp_replace(regexp_replace(x.source_key, '^.*/', ''), '[._-]+', ' ', 'g')
                || ' ' || coalesce(x.data ->> 'title_suggestion', '')),
               ('summary', vp_search_config(x.language), coalesce(x.data ->> 'summary', '')),
               ('tags', vp_search_config(x.language),
                coalesce((SELECT string_agg(value, ' ') FROM jsonb_array_elements_text(
                    CASE WHEN jsonb_typeof(x.data -> 'tags') = 'array' THEN x.data -> 'tags' ELSE '[]' END)), '')
                || ' ' ||
                coalesce((SELECT string_agg(value, ' ') FROM jsonb_array_elements_text(
                    CASE WHEN jsonb_typeof(x.data -> 'topics') = 'array' THEN x.data -> 'topics' ELSE '[]' END)), ''))
           ) AS d(kind, config, body)
     WHERE btrim(d.body) <> '';
$$;

CREATE OR REPLACE FUNCTION vp_transcripts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vp_index_transcript(NEW.video_id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION vp_analyses_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vp_index_analysis(NEW.video_id);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS transcripts_search ON transcripts;
CREATE TRIGGER transcripts_search AFTER INSERT OR UPDATE ON transcripts
    FOR EACH ROW EXECUTE FUNCTION vp_transcripts_changed();
DROP TRIGGER IF EXISTS analyses_search ON analyses;
CREATE TRIGGER analyses_search AFTER INSERT OR UPDATE ON analyses
    FOR EACH ROW EXECUTE FUNCTION vp_analyses_changed();
-- A video's file name is searchable as soon as it is in the ledger.
CREATE OR REPLACE FUNCTION vp_videos_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vp_index_analysis(NEW.video_id);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS videos_search ON videos;
CREATE TRIGGER videos_search AFTER INSERT ON videos
    FOR EACH ROW EXECUTE FUNCTION vp_videos_added();

-- What was there before this migration.
SELECT vp_index_transcript(video_id) FROM (SELECT DISTINCT video_id FROM transcripts WHERE is_current) t;
SELECT vp_index_analysis(video_id) FROM videos;
