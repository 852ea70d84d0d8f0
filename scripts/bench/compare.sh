#!/usr/bin/env bash
# Side-by-side benchmark, all in one run on 127.0.0.1: the loopback ceiling (iperf3, 3 parallel
# streams), the gloo baselines (the original's topology and plain ring, gloo_baseline.py), and
# `mrctl bench local` in f32, f16 and bf16, and the bare traffic of both designs (relays and ring
# moved by the simplest code with no protocol work: daemon/examples/bare_traffic.rs); prints a
# markdown table of figures and ratios.
#
#   scripts/bench/compare.sh                 # P=3, M=3, D=100 MiB, 5 reps
#   PEERS=4 MIB=16 REPS=5 scripts/bench/compare.sh
#   EXTRA=1 scripts/bench/compare.sh         # also D=16 MiB and 1 GiB, P=2 and P=4
#   ROUNDS=3 scripts/bench/compare.sh        # the main set 3 times, interleaved; medians of rounds
#
# Needs iperf3 (installed from Debian if missing) and torch (`pip install torch`). A benchmark,
# not a test: figures depend on the machine and on what else runs; compare ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/../.."

PEERS=${PEERS:-3}
MIB=${MIB:-100}
REPS=${REPS:-5}
EXTRA=${EXTRA:-0}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-$(mktemp -d)}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"

if ! command -v iperf3 >/dev/null; then
    echo "==> installing iperf3" >&2
    apt-get install -y iperf3 >/dev/null
fi
python3 -c "import torch" 2>/dev/null || { echo "gloo_baseline.py needs torch: pip install torch" >&2; exit 1; }

echo "==> building (release)" >&2
cargo build --release -q -p mapreduce -p mrctl
cargo build --release -q -p mapreduce --example bare_traffic
MRCTL="$TARGET/release/mrctl"
BARE="$TARGET/release/examples/bare_traffic"

iperf() {
    local port=$((20000 + RANDOM % 20000))
    iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
    local pid=$!
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$port" -P 3 -t 5 -J >"$1"
    wait "$pid" || true
}

mr() { # name peers mib dtype
    echo "==> mrctl bench local P=$2 D=$3 MiB $4" >&2
    "$MRCTL" bench local --peers "$2" --miners "$2" --mib "$3" --dtype "$4" --reps "$REPS" --json >"$OUT/$1.json"
}

bare() { # name peers mib [args]
    echo "==> bare traffic P=$2 D=$3 MiB ${*:4}" >&2
    "$BARE" --peers "$2" --miners "$2" --mib "$3" --reps "$REPS" --json "${@:4}" >"$OUT/$1.json"
}

gloo() { # name peers mib [args]
    echo "==> gloo baselines P=$2 D=$3 MiB" >&2
    python3 scripts/bench/gloo_baseline.py --peers "$2" --mib "$3" --reps "$REPS" "${@:4}" >"$OUT/$1.json" 2>"$OUT/$1.err"
}

# Each round runs every contender back to back, so a disturbance from whatever else the machine
# runs hits one round, not one contender; the summary takes the median over rounds.
for r in $(seq 1 "$ROUNDS"); do
    echo "==> round $r of $ROUNDS: iperf3, 3 parallel streams on 127.0.0.1" >&2
    iperf "$OUT/iperf_r$r.json"
    gloo "gloo_r$r" "$PEERS" "$MIB"
    mr "mr_f32_r$r" "$PEERS" "$MIB" f32
    mr "mr_f16_r$r" "$PEERS" "$MIB" f16
    mr "mr_bf16_r$r" "$PEERS" "$MIB" bf16
    # Every peer drives its sockets from one thread (as ours and gloo's do); relays without and with
    # the frames' checksums, and a ring's traffic.
    bare "bare_relay_r$r" "$PEERS" "$MIB" --poll
    bare "bare_relay_ck_r$r" "$PEERS" "$MIB" --poll --checksums
    bare "bare_relay16_r$r" "$PEERS" "$MIB" --poll --wire-bytes 2
    bare "bare_relay16_ck_r$r" "$PEERS" "$MIB" --poll --checksums --wire-bytes 2
    bare "bare_ring_r$r" "$PEERS" "$MIB" --ring --poll
done
if [ "$EXTRA" = 1 ]; then
    gloo gloo_16 "$PEERS" 16
    mr mr_16 "$PEERS" 16 f32
    mr mr_1024 "$PEERS" 1024 f32
    for p in 2 4; do
        gloo "gloo_p$p" "$p" "$MIB"
        mr "mr_p$p" "$p" "$MIB" f32
    done
fi
echo "==> results in $OUT" >&2
python3 scripts/bench/summarize.py "$OUT" "$PEERS" "$MIB"
