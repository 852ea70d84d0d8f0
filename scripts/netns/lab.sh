# shellcheck shell=bash
# A small network lab in Linux network namespaces, to be sourced by benchmarks and tests (root).
#
#   source scripts/netns/lab.sh
#   lab_init                      # checks ip/tc, creates the hub namespace with a bridge, sets traps
#   lab_node p1 10.77.0.11 200mbit 200mbit   # namespace <lab>-p1, 10.77.0.11/16, up and down rates
#   lab_exec p1 iperf3 -s -D      # run a command inside a node's namespace
#   lab_cleanup                   # also runs on exit, Ctrl-C, TERM and on failure (traps)
#
# Every address lives inside namespaces the lab creates (names start with $LAB, default mrlab<pid>);
# the host's interfaces, addresses and routes are never touched. Each node is one namespace with
# one veth whose other end is a port of a bridge in the lab's hub namespace. Both directions are
# shaped with tbf: the node's own veth egress is its upload rate, the hub-side egress towards the
# node is its download rate. `netem` (delay, loss) is used only where the kernel has it:
# lab_netem says whether it does, and lab_node's optional 5th argument (e.g. "delay 20ms") is
# refused with a clear message where it does not.
#
# A rate of 0 (or "none") leaves that direction unshaped.

LAB=${LAB:-mrlab$$}
LAB_SUBNET_BITS=${LAB_SUBNET_BITS:-16}
LAB_NODES=()
LAB_NETEM=""

lab_log() { echo "[lab] $*" >&2; }

lab_die() {
    echo "[lab] error: $*" >&2
    exit 1
}

# Can this machine run the lab at all? Prints the reason and returns 1 when not.
lab_can_run() {
    if [ "$(id -u)" != 0 ]; then
        echo "needs root (network namespaces and tc)"
        return 1
    fi
    local t
    for t in ip tc; do
        if ! command -v "$t" >/dev/null 2>&1; then
            echo "needs '$t' (Debian package iproute2)"
            return 1
        fi
    done
    local probe="${LAB}-probe"
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "cannot create network namespaces here (ip netns add failed)"
        return 1
    fi
    ip netns del "$probe" 2>/dev/null || true
    return 0
}

# Converts a tc rate (e.g. 200mbit, 2gbit, 800kbit) to bits per second.
lab_rate_bps() {
    local r=${1,,}
    case "$r" in
    *gbit) echo $((${r%gbit} * 1000000000)) ;;
    *mbit) echo $((${r%mbit} * 1000000)) ;;
    *kbit) echo $((${r%kbit} * 1000)) ;;
    *bit) echo "${r%bit}" ;;
    *) lab_die "rate '$1': use a tc rate such as 200mbit or 2gbit" ;;
    esac
}

# tbf on one device: burst of 10 ms at the rate (at least 64 KiB so a GSO super-packet of a veth
# always fits), queue of 100 ms at the rate (at least 256 KiB) so TCP is not starved by drops.
lab_shape() { # netns dev rate
    local ns=$1 dev=$2 rate=$3
    [ "$rate" = 0 ] || [ "$rate" = none ] && return 0
    local bps burst limit
    bps=$(lab_rate_bps "$rate")
    burst=$((bps / 8 / 100))
    [ "$burst" -ge 65536 ] || burst=65536
    limit=$((bps / 8 / 10))
    [ "$limit" -ge 262144 ] || limit=262144
    ip netns exec "$ns" tc qdisc replace dev "$dev" root handle 1: tbf rate "$rate" burst "$burst" limit "$limit" ||
        lab_die "tc tbf on $dev in $ns failed"
}

# Does `tc qdisc add ... netem` work on this kernel? Sets LAB_NETEM to yes or no (once).
lab_netem() {
    if [ -z "$LAB_NETEM" ]; then
        local probe="${LAB}-netem"
        LAB_NETEM=no
        if ip netns add "$probe" 2>/dev/null; then
            ip netns exec "$probe" ip link set lo up
            if ip netns exec "$probe" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
                LAB_NETEM=yes
            fi
            ip netns del "$probe" 2>/dev/null || true
        fi
    fi
    echo "$LAB_NETEM"
}

lab_cleanup() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${LAB}-" || true); do
        # Stop whatever still runs inside (only processes in the lab's own namespaces).
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
    done
    sleep 0.2
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${LAB}-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    LAB_NODES=()
}

# The lab with cleanup traps (for scripts that source this file).
lab_init() {
    local why
    why=$(lab_can_run) || lab_die "$why"
    trap 'lab_cleanup' EXIT
    trap 'lab_cleanup; exit 130' INT
    trap 'lab_cleanup; exit 143' TERM
    lab_hub
}

# The hub namespace and its bridge, without traps.
lab_hub() {
    local hub="${LAB}-hub"
    ip netns add "$hub" || lab_die "ip netns add $hub failed"
    ip netns exec "$hub" ip link set lo up
    ip netns exec "$hub" ip link add br0 type bridge
    ip netns exec "$hub" ip link set br0 up
    lab_log "lab $LAB: hub namespace $hub with bridge br0; netem: $(lab_netem)"
}

# lab_node NAME IP UP_RATE DOWN_RATE [NETEM_ARGS]: a namespace ${LAB}-NAME with eth0 = IP.
lab_node() {
    local name=$1 ip=$2 up=${3:-0} down=${4:-0} netem=${5:-}
    local ns="${LAB}-${name}" hub="${LAB}-hub"
    local hv="v${#LAB_NODES[@]}"
    ip netns add "$ns" || lab_die "ip netns add $ns failed"
    ip netns exec "$ns" ip link set lo up
    # Create the pair inside the node namespace, then move its far end into the hub: the host's
    # namespace never sees either end.
    ip netns exec "$ns" ip link add eth0 type veth peer name "$hv" ||
        lab_die "veth for $name failed"
    ip netns exec "$ns" ip link set "$hv" netns "$hub"
    ip netns exec "$ns" ip addr add "$ip/$LAB_SUBNET_BITS" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$hub" ip link set "$hv" master br0
    ip netns exec "$hub" ip link set "$hv" up
    lab_shape "$ns" eth0 "$up"
    lab_shape "$hub" "$hv" "$down"
    if [ -n "$netem" ]; then
        [ "$(lab_netem)" = yes ] || lab_die "netem '$netem' asked for $name, but this kernel has no netem"
        # netem as the child of tbf keeps the rate and adds delay/loss on the upload side.
        # shellcheck disable=SC2086 # netem takes its arguments as separate words
        if [ "$up" = 0 ] || [ "$up" = none ]; then
            ip netns exec "$ns" tc qdisc replace dev eth0 root netem $netem
        else
            ip netns exec "$ns" tc qdisc add dev eth0 parent 1:1 handle 10: netem $netem
        fi || lab_die "netem on $name failed"
    fi
    LAB_NODES+=("$name")
    lab_log "node $name: $ns, $ip, up ${up}, down ${down}${netem:+, netem $netem}"
}

lab_ns() { echo "${LAB}-$1"; }

lab_exec() {
    local name=$1
    shift
    ip netns exec "${LAB}-${name}" "$@"
}

# Run as a command (for tests in other languages, which own the cleanup: `down` in a guard):
#   lab.sh check                                  # exit 0 if the lab can run here, else the reason
#   lab.sh netem                                  # yes or no
#   lab.sh up LAB NAME IP UP DOWN [NAME IP UP DOWN ...]   # hub + nodes; removes all on failure
#   lab.sh down LAB                               # every namespace named LAB-*, and what runs in it
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
    check)
        why=$(lab_can_run) || {
            echo "$why"
            exit 1
        }
        echo ok
        ;;
    netem) lab_netem ;;
    up)
        [ $# -ge 2 ] && [ $(((${#} - 2) % 4)) = 0 ] || lab_die "usage: lab.sh up LAB [NAME IP UP DOWN]..."
        LAB=$2
        shift 2
        # Anything that stops this before the end (an error, lab_die, a signal) removes it all.
        trap 'lab_cleanup' EXIT
        trap 'exit 130' INT TERM
        why=$(lab_can_run) || lab_die "$why"
        lab_hub
        while [ $# -gt 0 ]; do
            lab_node "$1" "$2" "$3" "$4"
            shift 4
        done
        trap - EXIT INT TERM
        ;;
    down)
        [ $# = 2 ] || lab_die "usage: lab.sh down LAB"
        LAB=$2
        lab_cleanup
        ;;
    *)
        echo "usage: lab.sh check | netem | up LAB [NAME IP UP DOWN]... | down LAB (or source it)" >&2
        exit 2
        ;;
    esac
fi
