#!/usr/bin/env bash
# Updates an installed mapreduce from this git checkout (the original's auto-update was a bare
# `git pull`; this one tests before it swaps and rolls back when the new daemon is not healthy).
#
#   scripts/update.sh [--ref REF] [--skip-tests] [--prefix /usr/local] [--timeout 60] [ROLE ...]
#
#   --ref REF      tag or branch to update to (default: the upstream of the current branch)
#   --skip-tests   do not run scripts/test before swapping (not advised)
#   --prefix DIR   where the binaries are installed (default /usr/local)
#   --timeout S    seconds a restarted daemon has to report healthy (default 60)
#   ROLE           miner | validator | bench: units to restart (default: every active mapreduce unit)
#
# Steps: fetch, check out REF, build release, run the tests, keep the installed binaries as
# *.prev, install the new ones, restart the units, wait for each to be active and to answer
# `mrctl status`; on any failure put the previous binaries back and restart again.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REF="" TESTS=1 PREFIX=/usr/local TIMEOUT=60 ROLES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) REF="$2"; shift 2 ;;
    --skip-tests) TESTS=0; shift ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    miner|validator|bench) ROLES+=("$1"); shift ;;
    *) echo "update.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { echo "update.sh: $*" >&2; exit 1; }
DEST="$PREFIX/bin"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

if [ ${#ROLES[@]} -eq 0 ]; then
  for r in miner validator bench; do
    systemctl is-active --quiet "mapreduce-$r" 2>/dev/null && ROLES+=("$r")
  done
fi
[ ${#ROLES[@]} -gt 0 ] || die "no active mapreduce unit; name the roles to restart"

cd "$ROOT"
say "fetching"
git fetch --tags --quiet
if [ -z "$REF" ]; then
  REF="$(git rev-parse --abbrev-ref --symbolic-full-name '@{upstream}')" ||
    die "the current branch has no upstream: pass --ref"
fi
OLD="$(git rev-parse HEAD)"
git checkout --quiet --detach "$REF"
say "updating $(git rev-parse --short "$OLD") -> $(git rev-parse --short HEAD) ($REF)"
cargo build --release -p mapreduce -p mrctl
if [ "$TESTS" = 1 ]; then
  say "running the tests (scripts/test)"
  scripts/test || { git checkout --quiet "$OLD"; die "tests failed: nothing was installed"; }
fi

swap_in() { # $1: source dir, $2: suffix of the files there ("" or ".prev")
  for b in mrd mrctl; do
    install -m 0755 "$1/$b$2" "$DEST/.$b.new"
    mv -f "$DEST/.$b.new" "$DEST/$b"
  done
}
healthy() { # $1: role
  local end=$((SECONDS + TIMEOUT))
  while [ $SECONDS -lt $end ]; do
    if systemctl is-active --quiet "mapreduce-$1" &&
      runuser -u mapreduce -- "$DEST/mrctl" status --role "$1" --json >/dev/null 2>&1; then
      return 0
    fi
    sleep 2
  done
  return 1
}

say "keeping the installed binaries as $DEST/*.prev"
for b in mrd mrctl; do cp -p "$DEST/$b" "$DEST/$b.prev"; done
swap_in "$BIN" ""
for r in "${ROLES[@]}"; do
  say "restarting mapreduce-$r"
  systemctl restart "mapreduce-$r"
  if ! healthy "$r"; then
    echo "update.sh: mapreduce-$r not healthy within ${TIMEOUT}s: rolling back" >&2
    swap_in "$DEST" ".prev"
    for x in "${ROLES[@]}"; do systemctl restart "mapreduce-$x" || true; done
    git checkout --quiet "$OLD"
    die "rolled back to $(git rev-parse --short "$OLD"); see journalctl -u mapreduce-$r"
  fi
  echo "   mapreduce-$r healthy"
done
say "updated to $(git rev-parse --short HEAD)"
