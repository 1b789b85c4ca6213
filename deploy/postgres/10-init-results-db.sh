#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d, when the postgres container starts on an empty
# data directory. Creates the results database next to Airflow's metadata database.
# To run it against an existing volume:
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-init-results-db.sh
set -euo pipefail

: "${RESULTS_DB_PASSWORD:?RESULTS_DB_PASSWORD must be set (see .env.example)}"

psql --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v results_db="${RESULTS_DB_NAME:-video_pipeline}" \
    -v results_user="${RESULTS_DB_USER:-video_pipeline}" \
    -v results_password="${RESULTS_DB_PASSWORD}" \
    -f "${RESULTS_DB_INIT_SQL:-/opt/video-pipeline/init-results-db.sql}"
