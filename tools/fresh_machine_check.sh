#!/usr/bin/env bash
# The README's two commands on a bare Debian 12, from a plain clone with nothing beside it.
#
#   sudo tools/fresh_machine_check.sh [--keep] [--rebuild-base] [--steps "run test"]
#
# Builds (once, cached) a minimal Debian 12 root file system with debootstrap from the
# Debian package archive, copies it, installs only what a user who cloned the project
# has (git, make, CA certificates), clones this repository's committed HEAD into
# /root/video-pipeline, and runs `make run` then `make test` inside it, as root, with
# /proc, /sys, /dev and the network. Prints the time of each step and the first failure.
#
# For anyone preparing a release; not part of `make test` (it downloads the whole
# dependency tree, several GB with torch, and takes 30-60 minutes on 2 cores).
# Everything runs in private mount and PID namespaces: the mounts vanish and every
# process started inside (the PostgreSQL that `make run` leaves running, too) ends with
# the check, whatever happens. Needs root, debootstrap (installed when missing) and
# ~25 GB free in FRESH_WORK (default /var/tmp/vp-fresh); the copy is deleted at the end
# unless --keep.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FRESH_WORK:-/var/tmp/vp-fresh}
SUITE=bookworm
BASE=$WORK/base
ROOTFS=$WORK/rootfs
LOGS=$WORK/logs
keep=0 rebuild=0 steps="run test"
while (($#)); do
  case $1 in
    --keep) keep=1 ;;
    --rebuild-base) rebuild=1 ;;
    --steps) steps=$2 && shift ;;
    *) echo "usage: $0 [--keep] [--rebuild-base] [--steps \"run test\"]" >&2 && exit 2 ;;
  esac
  shift
done
((EUID == 0)) || { echo "✗ run as root (debootstrap and chroot need it)" >&2 && exit 1; }

stamp() { date -u +%H:%M:%S; }
log() { printf '[%s] %s\n' "$(stamp)" "$*"; }

mkdir -p "$WORK"
command -v debootstrap >/dev/null || {
  log "installing debootstrap"
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
}

if ((rebuild)) || [[ ! -f $BASE/.complete ]]; then
  log "debootstrap --variant=minbase $SUITE (cached in $BASE)"
  rm -rf "$BASE" "$BASE.tmp"
  started=$SECONDS
  debootstrap --variant=minbase "$SUITE" "$BASE.tmp" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; exit 1; }
  mv "$BASE.tmp" "$BASE" && touch "$BASE/.complete"
  log "base system built in $((SECONDS - started)) s"
fi

rm -rf "$ROOTFS" "$LOGS"
mkdir -p "$LOGS"
cp -a "$BASE" "$ROOTFS"
rm -f "$ROOTFS/.complete"
# A stock Debian 12 also reads bookworm-updates and the security archive.
read -r _ mirror _ <"$ROOTFS/etc/apt/sources.list"
security=${mirror%/debian}/debian-security
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
  "$mirror" "$mirror" "$security" >"$ROOTFS/etc/apt/sources.list"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
cp /etc/hosts "$ROOTFS/etc/hosts"
# Package scripts must not start daemons: this root file system shares the host's network.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d" && chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
mkdir -p "$ROOTFS/mnt/source"
# The network's TLS setup belongs to the machine, not the project: where this host trusts
# extra CAs (a TLS-inspecting egress proxy), the copy trusts them too, and the variables
# that point tools at the system bundle (uv reads SSL_CERT_FILE) are carried in.
mkdir -p "$ROOTFS/usr/local/share/ca-certificates/host"
if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
  awk -v dir="$ROOTFS/usr/local/share/ca-certificates/host" \
    '/BEGIN CERTIFICATE/ { n++; file = sprintf("%s/%03d.crt", dir, n) } file { print > file } /END CERTIFICATE/ { file = "" }' \
    /etc/ssl/certs/ca-certificates.crt
fi
tls_env=()
for name in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT REQUESTS_CA_BUNDLE CURL_CA_BUNDLE; do
  [[ -n ${!name:-} ]] && tls_env+=("$name=${!name}")
done

# Inside the namespaces: mounts, then each step under chroot with a clean environment.
inner=$(
  cat <<'INNER'
set -uo pipefail
R=$ROOTFS
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o size=2g tmpfs "$R/dev/shm"
mount --bind -o ro "$REPO" "$R/mnt/source"
in_root() {
  # shellcheck disable=SC2086 # TLS_ENV is a list of NAME=value words without spaces
  env -i HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8 $TLS_ENV \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$R" /bin/bash -c "$1"
}
step() { # step NAME COMMAND: times COMMAND, logs it, records its exit status
  local name=$1 started=$SECONDS rc
  printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$name"
  in_root "$2" >"$LOGS/$name.log" 2>&1
  rc=$?
  printf '%s %s %s\n' "$name" "$rc" "$((SECONDS - started))" >>"$LOGS/steps"
  return $rc
}
step prerequisites "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git make ca-certificates && update-ca-certificates >/dev/null" || exit 0
step clone "git clone -q /mnt/source /root/video-pipeline && git -C /root/video-pipeline log -1 --format='%h %s'" || exit 0
umount "$R/mnt/source"  # nothing beside the clone from here on
for name in $STEPS; do
  step "make-$name" "cd /root/video-pipeline && make $name" || exit 0
done
INNER
)
log "running in $ROOTFS (steps: $steps)"
ROOTFS=$ROOTFS REPO=$REPO LOGS=$LOGS STEPS=$steps TLS_ENV="${tls_env[*]}" \
  unshare --mount --pid --fork --propagation private bash -c "$inner" || true

echo
echo "== fresh Debian 12 ($SUITE, debootstrap minbase), repository $(git -C "$REPO" log -1 --format='%h')"
failed=""
while read -r name rc seconds; do
  printf '  %-14s %-6s %4d s\n' "$name" "$( ((rc == 0)) && echo ok || echo "rc=$rc")" "$seconds"
  ((rc == 0)) || failed=${failed:-$name}
done <"$LOGS/steps"
for name in make-run make-test; do
  [[ -f $LOGS/$name.log ]] || continue
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|^[0-9]+ (passed|failed)' "$LOGS/$name.log" | tail -1 || true)
  [[ -n $summary ]] && echo "  $name: $summary"
done
if [[ -n $failed ]]; then
  echo "  first failure: $failed (log: $LOGS/$failed.log)"
  first=$(grep -m1 -E '^(FAILED|ERROR) ' "$LOGS/$failed.log" || true)
  [[ -n $first ]] && echo "    $first"
  echo "  --- last lines of $failed.log"
  tail -25 "$LOGS/$failed.log" | sed 's/^/    /'
else
  echo "  first failure: none"
fi
if ((keep)); then
  echo "  root file system kept in $ROOTFS"
else
  rm -rf "$ROOTFS"
fi
[[ -z $failed ]]
