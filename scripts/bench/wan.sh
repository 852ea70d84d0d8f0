#!/usr/bin/env bash
# Emulated-network benchmark (issue 14; root): our relay all_reduce (M = P miners) against plain
# gloo ring all_reduce among the peers, every peer and every miner in its own network namespace
# behind a tc-shaped link (scripts/netns/lab.sh), side by side in one run.
#
#   scripts/bench/wan.sh                                  # every profile, P in {2,4,8}, D in {16,100} MiB
#   PROFILES=wan PEERS="4 8" MIBS=100 scripts/bench/wan.sh
#   PROFILES=lan PEERS=2 MIBS=16 REPS=1 scripts/bench/wan.sh   # the smoke run
#   MAX_BOUND_S=10 scripts/bench/wan.sh                   # skip sizes whose link-rate bound is over 10 s
#
# Profiles (peer up/down, miner up/down): lan 1/1 Gbit/s, 10/10 Gbit/s; wan 200/200 Mbit/s,
# 2/2 Gbit/s; home 50 Mbit/s up, 200 Mbit/s down, 2/2 Gbit/s. Delay and loss (netem) are added only
# with NETEM="delay 20ms" and only where the kernel has netem; the output says which.
#
# Relay runs are `mrctl bench local` with --relay-netns/--peer-netns (real `mrd relay` and
# `mrd bench-peer` processes, every result checked bit for bit), wire dtypes in DTYPES
# (default f32 f16). Ring runs are scripts/bench/gloo_ring_rank.py, one rank per peer namespace,
# every result checked; they need torch (`pip install torch`): RING=auto (default) runs them when
# torch imports and says so when it does not, RING=1 requires them, RING=0 skips them.
# Prints a markdown table (times are medians over REPS after WARMUP); raw JSON stays in $OUT.
# A benchmark, not part of CI: figures depend on the machine (2 cores here: the CPU, not the
# shaped links, bounds the lan profile) and on what else runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILES=${PROFILES:-lan wan home}
PEERS=${PEERS:-2 4 8}
MIBS=${MIBS:-16 100}
DTYPES=${DTYPES:-f32 f16}
REPS=${REPS:-3}
WARMUP=${WARMUP:-1}
RING=${RING:-auto}
MAX_BOUND_S=${MAX_BOUND_S:-0}
NETEM=${NETEM:-}
WINDOW=${WINDOW:-}
BLOCK_KIB=${BLOCK_KIB:-}
OUT=${OUT:-$(mktemp -d /tmp/wan-bench.XXXXXX)}
mkdir -p "$OUT"

# shellcheck source=../netns/lab.sh
source scripts/netns/lab.sh
why=$(lab_can_run) || {
    echo "wan.sh: $why" >&2
    exit 2
}

if [ -z "${MRCTL:-}" ]; then
    echo "==> building (release)" >&2
    cargo build --release -q -p mapreduce -p mrctl
    MRCTL="${CARGO_TARGET_DIR:-target}/release/mrctl"
fi
MRD=${MRD:-$(dirname "$MRCTL")/mrd}
[ -x "$MRCTL" ] && [ -x "$MRD" ] || {
    echo "wan.sh: no mrctl/mrd at $MRCTL, $MRD" >&2
    exit 2
}
MRCTL=$(realpath "$MRCTL")
MRD=$(realpath "$MRD")

case "$RING" in
auto)
    if python3 -c "import torch" 2>/dev/null; then RING=1; else
        RING=0
        echo "==> torch does not import: the gloo ring runs are skipped (pip install torch)" >&2
    fi
    ;;
1) python3 -c "import torch" 2>/dev/null || {
    echo "wan.sh: RING=1 but torch does not import (pip install torch)" >&2
    exit 2
} ;;
0) ;;
*) echo "wan.sh: RING must be auto, 1 or 0" >&2 && exit 2 ;;
esac

profile_rates() { # profile -> "peer_up peer_down miner_up miner_down"
    case "$1" in
    lan) echo "1gbit 1gbit 10gbit 10gbit" ;;
    wan) echo "200mbit 200mbit 2gbit 2gbit" ;;
    home) echo "50mbit 200mbit 2gbit 2gbit" ;;
    *) echo "wan.sh: unknown profile '$1' (lan, wan, home)" >&2 && exit 2 ;;
    esac
}

maxp=0
for p in $PEERS; do
    [ "$p" -ge 2 ] || {
        echo "wan.sh: P must be at least 2" >&2
        exit 2
    }
    [ "$p" -le 60 ] || {
        echo "wan.sh: P at most 60" >&2
        exit 2
    }
    [ "$p" -gt "$maxp" ] && maxp=$p
done

runs="$OUT/runs.tsv"
printf 'profile\tpeers\tmib\tkind\tpeer_up_bps\tpeer_down_bps\tstatus\tfile\n' >"$runs"
failed=0
ring_port=29500

ring() { # profile p mib file
    local p=$2 mib=$3 file=$4 j pids=() rc=0
    local master="10.77.1.1:$ring_port"
    ring_port=$((ring_port + 1))
    for ((j = 1; j < p; j++)); do
        lab_exec "p$j" env GLOO_SOCKET_IFNAME=eth0 timeout 1200 python3 scripts/bench/gloo_ring_rank.py \
            --rank "$j" --world "$p" --master "$master" --mib "$mib" --reps "$REPS" --warmup "$WARMUP" \
            >/dev/null 2>>"$file.err" &
        pids+=($!)
    done
    lab_exec p0 env GLOO_SOCKET_IFNAME=eth0 timeout 1200 python3 scripts/bench/gloo_ring_rank.py \
        --rank 0 --world "$p" --master "$master" --mib "$mib" --reps "$REPS" --warmup "$WARMUP" \
        >"$file" 2>>"$file.err" || rc=1
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    return $rc
}

relay() { # profile p mib dtype file
    local p=$2 mib=$3 dtype=$4 file=$5 j
    local rns=() rip=() pns=()
    for ((j = 0; j < p; j++)); do
        rns+=("$(lab_ns "m$j")")
        rip+=("10.77.2.$((j + 1))")
        pns+=("$(lab_ns "p$j")")
    done
    local knobs=()
    [ -z "$WINDOW" ] || knobs+=(--window "$WINDOW")
    [ -z "$BLOCK_KIB" ] || knobs+=(--block-kib "$BLOCK_KIB")
    "$MRCTL" bench local --mrd "$MRD" --peers "$p" --miners "$p" --mib "$mib" --dtype "$dtype" \
        --reps "$REPS" --warmup "$WARMUP" --no-broadcast --json "${knobs[@]}" \
        --relay-netns "$(
            IFS=,
            echo "${rns[*]}"
        )" --relay-ip "$(
            IFS=,
            echo "${rip[*]}"
        )" --peer-netns "$(
            IFS=,
            echo "${pns[*]}"
        )" >"$file" 2>"$file.err"
}

record() { # profile p mib kind up down status file
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$runs"
    [ "$7" = ok ] || [ "$7" = skipped ] || failed=1
}

for profile in $PROFILES; do
    read -r pu pd mu md <<<"$(profile_rates "$profile")"
    lab_cleanup
    lab_init
    echo "==> profile $profile: peers up $pu down $pd, miners up $mu down $md; netem: $(lab_netem)${NETEM:+ ($NETEM)}" >&2
    if [ "$(lab_netem)" = no ] && [ -n "$NETEM" ]; then
        echo "==> this kernel has no netem: '$NETEM' is not applied, rates only" >&2
    fi
    em=""
    [ "$(lab_netem)" = yes ] && em=$NETEM
    for ((j = 0; j < maxp; j++)); do
        lab_node "p$j" "10.77.1.$((j + 1))" "$pu" "$pd" "$em"
        lab_node "m$j" "10.77.2.$((j + 1))" "$mu" "$md" "$em"
    done
    up_bps=$(lab_rate_bps "$pu")
    down_bps=$(lab_rate_bps "$pd")
    for mib in $MIBS; do
        for p in $PEERS; do
            # The relay's link-rate bound: D up and D down on every peer link.
            bound=$(python3 -c "print(int($mib * 1048576 * 8 / min($up_bps, $down_bps)))")
            if [ "$MAX_BOUND_S" != 0 ] && [ "$bound" -gt "$MAX_BOUND_S" ]; then
                echo "==> $profile P=$p D=$mib MiB: link-rate bound ${bound} s > MAX_BOUND_S, skipped" >&2
                record "$profile" "$p" "$mib" relay-f32 "$up_bps" "$down_bps" skipped -
                continue
            fi
            tag="$OUT/$profile-p$p-d$mib"
            if [ "$RING" = 1 ]; then
                echo "==> $profile P=$p D=$mib MiB: gloo ring" >&2
                if ring "$profile" "$p" "$mib" "$tag-ring.json"; then st=ok; else st=failed; fi
                record "$profile" "$p" "$mib" ring "$up_bps" "$down_bps" "$st" "$tag-ring.json"
            fi
            for dtype in $DTYPES; do
                echo "==> $profile P=$p D=$mib MiB: relay $dtype (M=$p)" >&2
                if relay "$profile" "$p" "$mib" "$dtype" "$tag-$dtype.json"; then st=ok; else st=failed; fi
                record "$profile" "$p" "$mib" "relay-$dtype" "$up_bps" "$down_bps" "$st" "$tag-$dtype.json"
                [ "$st" = ok ] || tail -3 "$tag-$dtype.json.err" >&2
            done
        done
    done
done
lab_cleanup
echo "==> raw results in $OUT (netem: $(lab_netem))" >&2
python3 scripts/bench/wan_summary.py "$runs"
exit $failed
