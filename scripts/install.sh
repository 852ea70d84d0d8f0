#!/usr/bin/env bash
# Installs mapreduce on this host: release binaries, the systemd units, a service user, and an
# example configuration. It starts nothing; it prints what to do next.
#
#   scripts/install.sh [--prefix /usr/local] [--destdir DIR] [--no-build] [--bin-dir DIR] [--no-user]
#
#   --prefix DIR   where binaries go (DIR/bin; default /usr/local)
#   --destdir DIR  stage everything under DIR instead of / (packaging, or a dry look); implies --no-user
#   --no-build     install binaries already built in target/release
#   --bin-dir DIR  install mrd and mrctl from DIR (implies --no-build)
#   --no-user      do not create the `mapreduce` system user
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/usr/local DESTDIR="" BUILD=1 USER_ADD=1 BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --destdir) DESTDIR="$2"; USER_ADD=0; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --bin-dir) BIN="$2"; BUILD=0; shift 2 ;;
    --no-user) USER_ADD=0; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

if [ "$BUILD" = 1 ]; then
  say "building release binaries"
  (cd "$ROOT" && cargo build --release -p mapreduce -p mrctl)
fi
for b in mrd mrctl; do
  [ -x "$BIN/$b" ] || { echo "install.sh: $BIN/$b missing (drop --no-build)" >&2; exit 1; }
done

say "binaries -> $DESTDIR$PREFIX/bin"
install -d "$DESTDIR$PREFIX/bin"
for b in mrd mrctl; do
  # Copy beside, then rename: a running daemon keeps its old inode, nothing sees half a file.
  install -m 0755 "$BIN/$b" "$DESTDIR$PREFIX/bin/.$b.new"
  mv -f "$DESTDIR$PREFIX/bin/.$b.new" "$DESTDIR$PREFIX/bin/$b"
done

say "systemd units -> $DESTDIR/etc/systemd/system"
install -d "$DESTDIR/etc/systemd/system"
for u in "$ROOT"/scripts/systemd/*.service "$ROOT"/scripts/systemd/*.timer; do
  [ -f "$u" ] || continue
  sed "s|/usr/local/bin/|$PREFIX/bin/|g; s|/usr/local/src/mapreduce|$ROOT|g" "$u" \
    >"$DESTDIR/etc/systemd/system/$(basename "$u")"
  chmod 0644 "$DESTDIR/etc/systemd/system/$(basename "$u")"
done

say "configuration -> $DESTDIR/etc/mapreduce (existing files are kept)"
install -d -m 0755 "$DESTDIR/etc/mapreduce"
[ -f "$DESTDIR/etc/mapreduce/config.toml" ] ||
  install -m 0644 "$ROOT/config.toml.example" "$DESTDIR/etc/mapreduce/config.toml"
[ -f "$DESTDIR/etc/mapreduce/mapreduce.env" ] ||
  install -m 0600 "$ROOT/scripts/systemd/mapreduce.env.example" "$DESTDIR/etc/mapreduce/mapreduce.env"

if [ "$USER_ADD" = 1 ]; then
  if id mapreduce >/dev/null 2>&1; then
    echo "   user mapreduce exists"
  else
    say "creating the system user mapreduce (home /var/lib/mapreduce)"
    useradd --system --home-dir /var/lib/mapreduce --no-create-home --shell /usr/sbin/nologin mapreduce
  fi
fi
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

cat <<NEXT

Installed. Nothing was started. Next:
  1. Edit /etc/mapreduce/config.toml (netuid, subtensor, axon.external_ip ...) and mapreduce.env.
  2. Put the wallet under /var/lib/mapreduce/.bittensor/wallets (owned by mapreduce, mode 0700), or
     point wallet.path at it (units may read /home, read-only).
  3. systemctl enable --now mapreduce-miner      (or mapreduce-validator, mapreduce-bench)
  4. sudo -u mapreduce mrctl status              (journalctl -u mapreduce-miner -f for logs)
NEXT
