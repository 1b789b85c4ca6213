#!/usr/bin/env bash
# Create the project's virtualenv with a Python 3.11-3.13, and put uv in it.
#
#   tools/bootstrap_venv.sh VENV UV_VERSION     create VENV (make run / make test call this)
#   tools/bootstrap_venv.sh --plan              print the decision only, change nothing
#
# Stock machines differ: Debian 12 has python3 3.11 but no venv module until the
# python3.11-venv package is installed; Ubuntu 24.04 has 3.12 (same venv gap);
# Ubuntu 22.04 has 3.10, too old, and python3.11 only as an extra package. So, in order:
#   1. $PYTHON if set, else the first of python3.11, python3.12, python3.13, python3 on
#      PATH that is 3.11-3.13;
#   2. it has venv: use it; else uv (on PATH or ~/.local/bin) makes the venv (uv needs
#      no venv module); else apt-get installs pythonX.Y-venv (as root, or with sudo);
#   3. no such Python: uv provides one; else, on a Debian/Ubuntu release that packages
#      one, apt-get installs it; else a python3 with pip installs uv into .data/bootstrap;
#   4. otherwise stop with one sentence that says what to install.
# BOOTSTRAP_OS_RELEASE and BOOTSTRAP_EUID stand in for /etc/os-release and the user id
# (tests/tools/test_bootstrap_venv.py simulates Ubuntu and Debian machines with them).
set -euo pipefail

MIN_MINOR=11
MAX_MINOR=13
OS_RELEASE=${BOOTSTRAP_OS_RELEASE:-/etc/os-release}
EUID_=${BOOTSTRAP_EUID:-$EUID}

say() { printf '%s\n' "$*" >&2; }
stop() {
  say "✗ $*"
  exit 1
}

# "3.11" for an interpreter, or nothing when it does not run.
version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }
supported() {
  local v=$1
  [[ $v =~ ^3\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= MIN_MINOR && BASH_REMATCH[1] <= MAX_MINOR))
}
has_venv() { "$1" -c 'import ensurepip, venv' >/dev/null 2>&1; }
has_pip() { "$1" -m pip --version >/dev/null 2>&1; }

find_uv() {
  local uv
  for uv in "$(command -v uv || true)" "${HOME:-/nonexistent}/.local/bin/uv" "${HOME:-/nonexistent}/.cargo/bin/uv"; do
    [[ -n $uv && -x $uv ]] && { printf '%s\n' "$uv"; return 0; }
  done
  return 1
}

# How apt-get can be run here: "" as root, "sudo" with sudo, or fail.
apt_prefix() {
  command -v apt-get >/dev/null || return 1
  if ((EUID_ == 0)); then
    printf '\n'
  elif command -v sudo >/dev/null; then
    printf 'sudo\n'
  else
    return 1
  fi
}

os_field() {
  local key=$1 line
  [[ -r $OS_RELEASE ]] || return 0
  while IFS= read -r line; do
    if [[ $line == "$key="* ]]; then
      line=${line#*=}
      line=${line#\"}
      printf '%s\n' "${line%\"}"
      return 0
    fi
  done <"$OS_RELEASE"
}

# The packaged Python 3.11+ of a Debian/Ubuntu release, or nothing (too old, or unknown).
packaged_python() {
  case "$(os_field ID) $(os_field VERSION_ID)" in
    "debian 12") echo 3.11 ;;
    "debian 13") echo 3.13 ;;
    "ubuntu 22.04") echo 3.11 ;; # universe, beside the system's 3.10
    "ubuntu 24.04") echo 3.12 ;;
    "ubuntu 25.04" | "ubuntu 25.10") echo 3.13 ;;
  esac
}

# Prints: method=<venv|apt|uv|pip-uv> python=<path, or version for uv/apt> apt=<packages> uv=<path>
plan() {
  local candidates py v found="" found_v="" seen="" uv prefix want
  if [[ -n ${PYTHON:-} ]]; then
    candidates=("$PYTHON")
  else
    candidates=(python3.11 python3.12 python3.13 python3)
  fi
  for py in "${candidates[@]}"; do
    py=$(command -v "$py" || true)
    [[ -n $py ]] || continue
    v=$(version_of "$py")
    [[ -n $v ]] && seen+="${seen:+, }${py##*/} is $v"
    if supported "$v"; then
      found=$py found_v=$v
      break
    fi
  done
  if [[ -n ${PYTHON:-} && -z $found ]]; then
    stop "PYTHON=$PYTHON is ${seen:-not a working interpreter}; the project needs Python 3.$MIN_MINOR-3.$MAX_MINOR."
  fi
  uv=$(find_uv || true)

  if [[ -n $found ]]; then
    if has_venv "$found"; then
      echo "method=venv python=$found apt= uv="
    elif [[ -n $uv ]]; then
      echo "method=uv python=$found apt= uv=$uv"
    elif prefix=$(apt_prefix); then
      echo "method=apt python=$found apt=python$found_v-venv uv= sudo=$prefix"
    else
      stop "Python $found_v ($found) cannot create virtual environments: install python$found_v-venv" \
        "(sudo apt-get install python$found_v-venv) or uv, then run make again."
    fi
    return
  fi

  want=$(packaged_python)
  if [[ -n $uv ]]; then
    echo "method=uv python=3.$MIN_MINOR apt= uv=$uv"
  elif [[ -n $want ]] && prefix=$(apt_prefix); then
    echo "method=apt python=$want apt=python$want,python$want-venv uv= sudo=$prefix"
  elif py=$(command -v python3) && has_pip "$py"; then
    echo "method=pip-uv python=3.$MIN_MINOR apt= uv= pip=$py"
  elif [[ -n $want ]]; then
    stop "No Python 3.$MIN_MINOR-3.$MAX_MINOR found (${seen:-no python3 on PATH}): install python$want and" \
      "python$want-venv (sudo apt-get install python$want python$want-venv), then run make again."
  else
    stop "No Python 3.$MIN_MINOR-3.$MAX_MINOR found (${seen:-no python3 on PATH}) and this system packages" \
      "none: install uv (pip install --user uv) or a Python 3.$MIN_MINOR+, then run make again."
  fi
}

field() { # field NAME "<plan line>"
  local part
  for part in $2; do
    [[ $part == "$1="* ]] && { printf '%s\n' "${part#*=}"; return 0; }
  done
}

if [[ ${1:-} == --plan ]]; then
  plan
  exit 0
fi
[[ $# -eq 2 ]] || stop "usage: $0 VENV UV_VERSION (or --plan)"
VENV=$1 UV_VERSION=$2

if [[ -x $VENV/bin/python ]] && supported "$(version_of "$VENV/bin/python")"; then
  : # an earlier run made it (perhaps without uv): keep it
else
  [[ -e $VENV ]] && say "• $VENV is not a Python 3.$MIN_MINOR-3.$MAX_MINOR virtualenv; making it again" && rm -rf "$VENV"
  decision=$(plan)
  method=$(field method "$decision") python=$(field python "$decision") uv=$(field uv "$decision")
  case $method in
    venv) "$python" -m venv "$VENV" ;;
    apt)
      sudo=$(field sudo "$decision") packages=$(field apt "$decision")
      say "• installing system packages: ${packages//,/ }"
      export DEBIAN_FRONTEND=noninteractive
      $sudo apt-get update -qq
      # shellcheck disable=SC2086 # one word per package name
      $sudo apt-get install -y -qq --no-install-recommends ${packages//,/ } >/dev/null
      [[ $python == /* ]] || python=$(command -v "python$python")
      "$python" -m venv "$VENV"
      ;;
    uv | pip-uv)
      if [[ $method == pip-uv ]]; then
        say "• installing uv $UV_VERSION into .data/bootstrap/uv (no Python 3.$MIN_MINOR+ here; uv brings one)"
        "$(field pip "$decision")" -m pip install -q --disable-pip-version-check --target .data/bootstrap/uv \
          "uv==$UV_VERSION"
        uv=.data/bootstrap/uv/bin/uv
      fi
      "$uv" venv -q -p "$python" "$VENV"
      "$uv" pip install -q -p "$VENV/bin/python" "uv==$UV_VERSION"
      ;;
  esac
fi

if [[ ! -x $VENV/bin/uv ]] || [[ "$("$VENV/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
  if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    "$VENV/bin/python" -m ensurepip >/dev/null # a venv made by uv has no pip
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
