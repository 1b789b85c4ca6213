#!/usr/bin/env bash
# Install the Debian packages the pipeline needs, only when they are missing.
#   runtime: ffmpeg (media), PostgreSQL server binaries (results DB + Airflow metadata)
#   test:    espeak-ng (speech for transcription tests)
set -euo pipefail

need=()
case "${1:-runtime}" in
  runtime)
    command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || need+=(postgresql)
    ;;
  test)
    command -v espeak-ng >/dev/null || need+=(espeak-ng)
    command -v chromium >/dev/null || need+=(chromium)
    ;;
  *) echo "usage: $0 runtime|test" >&2; exit 2 ;;
esac

[ ${#need[@]} -eq 0 ] && exit 0
echo "• installing system packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
