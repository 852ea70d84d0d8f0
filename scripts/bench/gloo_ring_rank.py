#!/usr/bin/env python3
"""One rank of a plain gloo ring all_reduce, for benchmarks where every rank runs in its own
network namespace (scripts/bench/wan.sh). Rank 0 hosts the rendezvous at --master ip:port.

Every rank fills its tensor with known values (element i of rank r: (i mod 251) / 2 + r, exact in
f32), all_reduces it (sum) --warmup + --reps times, and checks every element of every result
against the known sum. Rank 0 prints one JSON object: the slowest rank's time per timed rep, the
median, throughput per peer in MB/s (10^6 bytes of the f32 tensor per second) and the check.
Needs torch (`pip install torch`).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--master", required=True, help="ip:port of rank 0's rendezvous")
    ap.add_argument("--mib", type=float, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600, help="seconds for any collective")
    a = ap.parse_args()
    torch.set_num_threads(1)
    host, port = a.master.rsplit(":", 1)
    os.environ.update(MASTER_ADDR=host, MASTER_PORT=port)
    import datetime

    dist.init_process_group("gloo", rank=a.rank, world_size=a.world, timeout=datetime.timedelta(seconds=a.timeout))
    n = int(a.mib * 1024 * 1024 / 4)
    base = (torch.arange(n, dtype=torch.int64) % 251).to(torch.float32) / 2
    expected = base * a.world + a.world * (a.world - 1) / 2
    tensor = torch.empty(n)
    times, bad = [], 0
    for r in range(a.warmup + a.reps):
        torch.add(base, float(a.rank), out=tensor)
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(tensor)
        dt = torch.tensor([time.perf_counter() - t], dtype=torch.float64)
        if not torch.equal(tensor, expected):
            bad += 1
        dist.all_reduce(dt, op=dist.ReduceOp.MAX)
        if r >= a.warmup:
            times.append(dt.item())
    flags = torch.tensor([bad], dtype=torch.int64)
    dist.all_reduce(flags)
    if a.rank == 0:
        med = statistics.median(times)
        json.dump(
            {
                "peers": a.world,
                "mib": a.mib,
                "times_s": times,
                "median_s": med,
                "mb_per_s_per_peer": n * 4 / 1e6 / med,
                "check": "exact" if flags.item() == 0 else f"{flags.item()} wrong results",
                "results_checked": a.world * (a.warmup + a.reps),
            },
            sys.stdout,
        )
        print()
    dist.destroy_process_group()
    return 0 if flags.item() == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
