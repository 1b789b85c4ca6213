-- 008: the search index takes new rows into the index itself, not into a pending list.
--
-- With GIN's default fastupdate, a new transcript's rows wait in the index's pending list
-- (up to gin_pending_list_limit, 4 MB) until a vacuum or a full list merges them, and every
-- search reads that whole list besides the index: measured on the 10,000-video library with
-- 7,240 rows pending, a selective query took twice as long (4-5 ms to 8-9 ms). Without it a
-- transcript's ~200 segments cost its save about 35 ms instead of 15-25 ms, once per video.
ALTER INDEX search_documents_tsv SET (fastupdate = off);
-- What is already pending is merged now, not at the next vacuum.
SELECT gin_clean_pending_list('search_documents_tsv'::regclass);
