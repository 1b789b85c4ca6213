#!/usr/bin/env bash
# Install the system packages the pipeline needs, only when they are missing.
#   runtime (make run): ffmpeg (media), PostgreSQL server binaries (results DB + Airflow metadata)
#   test (make test):   espeak-ng (speech for transcription tests), Chromium (report.html in a browser)
#
#   tools/ensure_system_packages.sh runtime|test          install what is missing
#   tools/ensure_system_packages.sh --plan runtime|test   print what would be installed, change nothing
#
# Debian and Ubuntu name these packages alike except Chromium: Debian has a `chromium`
# .deb, Ubuntu ships Chromium only as a snap (its `chromium-browser` .deb just installs
# the snap), so on Ubuntu it comes from `snap install chromium` where snapd runs, and
# elsewhere this stops with one sentence saying what to install.
# BOOTSTRAP_OS_RELEASE, BOOTSTRAP_EUID and BOOTSTRAP_SNAPD_SOCKET stand in for /etc/os-release,
# the user id and snapd's socket in tests (tests/tools/test_bootstrap_venv.py).
set -euo pipefail

OS_RELEASE=${BOOTSTRAP_OS_RELEASE:-/etc/os-release}
EUID_=${BOOTSTRAP_EUID:-$EUID}
SNAPD_SOCKET=${BOOTSTRAP_SNAPD_SOCKET:-/run/snapd.socket}
plan_only=0
if [[ ${1:-} == --plan ]]; then
  plan_only=1
  shift
fi
layer=${1:-runtime}

stop() {
  printf '✗ %s\n' "$*" >&2
  exit 1
}

os_id() {
  local line id="" like=""
  if [[ -r $OS_RELEASE ]]; then
    while IFS= read -r line; do
      line=${line//\"/}
      case $line in
        ID=*) id=${line#ID=} ;;
        ID_LIKE=*) like=${line#ID_LIKE=} ;;
      esac
    done <"$OS_RELEASE"
  fi
  # Ubuntu derivatives (Mint, Pop!_OS) say ID_LIKE="ubuntu debian": treat them as Ubuntu.
  case " $id $like " in
    *" ubuntu "*) echo ubuntu ;;
    *" debian "*) echo debian ;;
    *) echo "${id:-unknown}" ;;
  esac
}

snapd_usable() { command -v snap >/dev/null && snap version >/dev/null 2>&1 && [[ -S $SNAPD_SOCKET ]]; }

distro=$(os_id)
apt=()
snap=()
case $layer in
  runtime)
    command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || apt+=(ffmpeg)
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null || apt+=(postgresql)
    ;;
  test)
    command -v espeak-ng >/dev/null || apt+=(espeak-ng)
    if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
      if [[ $distro == ubuntu ]]; then
        snapd_usable || stop "Ubuntu ships Chromium only as a snap and snapd is not running here: install" \
          "Chromium so that \`chromium\` is on PATH (e.g. \`sudo snap install chromium\` on a machine with snapd)," \
          "then run make test again."
        snap+=(chromium)
      else
        apt+=(chromium)
      fi
    fi
    ;;
  *)
    echo "usage: $0 [--plan] runtime|test" >&2
    exit 2
    ;;
esac

if ((plan_only)); then
  echo "distro=$distro apt=$(
    IFS=,
    echo "${apt[*]}"
  ) snap=$(
    IFS=,
    echo "${snap[*]}"
  )"
  exit 0
fi
((${#apt[@]} + ${#snap[@]})) || exit 0

sudo=""
if ((EUID_ != 0)); then
  command -v sudo >/dev/null || stop "missing system packages (${apt[*]} ${snap[*]}) and no sudo to install them:" \
    "as root run \`apt-get install ${apt[*]}\`${snap:+ and \`snap install ${snap[*]}\`}, then run make again."
  sudo=sudo
fi
if ((${#apt[@]})); then
  command -v apt-get >/dev/null || stop "this system has no apt-get: install ${apt[*]} with its package manager," \
    "then run make again."
  echo "• installing system packages: ${apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${apt[@]}" >/dev/null
fi
if ((${#snap[@]})); then
  echo "• installing snaps: ${snap[*]}"
  $sudo snap install "${snap[@]}"
fi
