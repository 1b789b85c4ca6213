-- The results database `video_pipeline` and the role the pipeline writes it with.
--
-- Kept apart from Airflow's metadata database so it can be backed up, restored and granted on
-- its own. Run by psql with three variables (see 10-init-results-db.sh, which the postgres image
-- runs once on an empty data directory):
--
--   psql -v results_db=video_pipeline -v results_user=video_pipeline -v results_password=... \
--        -f init-results-db.sql
--
-- Idempotent: safe to run again by hand against a cluster that already has the role/database,
-- e.g. when the postgres volume predates this file. The tables themselves are created by the
-- pipeline's migrations (include/video_pipeline/sql/), not here.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'results_user', :'results_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'results_user')
\gexec

-- Re-running with a new password in .env rotates it.
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'results_user', :'results_password')
\gexec

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'results_db', :'results_user', 'UTF8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'results_db')
\gexec

-- Only the owner (and superusers) may connect; in particular not Airflow's metadata role.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'results_db')
\gexec

\connect :"results_db"

-- PostgreSQL 15+ no longer lets every role create in `public`; the pipeline's migrations need to.
SELECT format('ALTER SCHEMA public OWNER TO %I', :'results_user')
\gexec
