#!/usr/bin/env bash
# Checks the lab on this machine: two nodes, each direction shaped, measured with iperf3
# (installed from Debian if missing). Prints the measured rates next to the configured ones.
#
#   scripts/netns/selftest.sh            # 200 Mbit/s up, 100 Mbit/s down on node a
#   UP=400mbit DOWN=50mbit scripts/netns/selftest.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lab.sh
source scripts/netns/lab.sh
UP=${UP:-200mbit}
DOWN=${DOWN:-100mbit}
SECS=${SECS:-4}
command -v iperf3 >/dev/null || apt-get install -y iperf3 >/dev/null
lab_init
lab_node a 10.77.0.1 "$UP" "$DOWN"
lab_node b 10.77.0.2 10gbit 10gbit
lab_exec b iperf3 -s -D -1 -p 5201 >/dev/null
sleep 0.3
up=$(lab_exec a iperf3 -c 10.77.0.2 -p 5201 -t "$SECS" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6)')
lab_exec b iperf3 -s -D -1 -p 5202 >/dev/null
sleep 0.3
down=$(lab_exec a iperf3 -c 10.77.0.2 -p 5202 -t "$SECS" -R -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6)')
printf 'a -> b (up, %s): %.1f Mbit/s\nb -> a (down, %s): %.1f Mbit/s\nnetem: %s\n' "$UP" "$up" "$DOWN" "$down" "$(lab_netem)"
