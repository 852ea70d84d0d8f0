#!/usr/bin/env python3
"""Baselines for `mrctl bench local`, in torch.distributed/gloo on 127.0.0.1.

1. The original subnet's topology: rank 0 coordinates (the validator), ranks 1..P are peers,
   ranks P+1..2P are miners. all_reduce: for each miner i in turn, the peers' shard i is reduced
   onto miner i, averaged there, and broadcast back to the peers. broadcast: the source peer
   sends shard i to miner i (scatter), then each miner broadcasts its shard to the peers.
2. Plain gloo all_reduce among the P peers (ring; no relays).

Prints one JSON object: medians over --reps after --warmup, throughput per peer in MB/s
(10^6 bytes of the f32 tensor per second), rendezvous time, peak RSS of a miner process.
Needs torch (`pip install torch`); a benchmark, not part of CI.
"""

import argparse
import json
import os
import resource
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard_bounds(n, m):
    base, extra = divmod(n, m)
    out, start = [], 0
    for i in range(m):
        size = base + (1 if i < extra else 0)
        out.append((start, start + size))
        start += size
    return out


def timed(fn, reps, warmup, group=None):
    """Runs fn warmup+reps times between barriers; returns each rep's slowest-rank time and the
    CPU seconds (user + system, every thread of every process) the rep used."""
    times, cpu = [], []
    for r in range(warmup + reps):
        dist.barrier(group=group)
        t = time.perf_counter()
        c = time.process_time()
        fn(r)
        c = time.process_time() - c
        dt = torch.tensor([time.perf_counter() - t], dtype=torch.float64)
        dist.all_reduce(dt, op=dist.ReduceOp.MAX, group=group)
        dc = torch.tensor([c], dtype=torch.float64)
        dist.all_reduce(dc, op=dist.ReduceOp.SUM, group=group)
        if r >= warmup:
            times.append(dt.item())
            cpu.append(dc.item())
    return times, cpu


def topology_worker(rank, world, port, p, n, reps, warmup, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    t0 = time.perf_counter()
    dist.init_process_group("gloo", rank=rank, world_size=world)
    rendezvous = time.perf_counter() - t0
    peers = list(range(1, p + 1))
    miners = list(range(p + 1, 2 * p + 1))
    bounds = shard_bounds(n, p)
    # One group per miner: the miner and every peer (new_group must be called by all ranks).
    groups = [dist.new_group([miners[i]] + peers) for i in range(p)]
    src_groups = [[dist.new_group(sorted({miners[i], s})) for i in range(p)] for s in peers]
    is_peer, is_miner = rank in peers, rank in miners
    tensor = torch.rand(n) if is_peer else None
    shard_buf = [torch.zeros(b - a) for a, b in bounds] if is_miner else None

    def all_reduce(_):
        for i in range(p):  # miners one at a time, as the original ran them
            a, b = bounds[i]
            if is_peer:
                view = tensor[a:b]
                dist.reduce(view, dst=miners[i], group=groups[i])
                dist.broadcast(view, src=miners[i], group=groups[i])
            elif rank == miners[i]:
                buf = shard_buf[i]
                buf.zero_()
                dist.reduce(buf, dst=miners[i], group=groups[i])
                buf.div_(p)
                dist.broadcast(buf, src=miners[i], group=groups[i])

    def broadcast(r):
        src = peers[r % p]
        for i in range(p):
            a, b = bounds[i]
            g = src_groups[src - 1][i]
            if rank == src and src != miners[i]:
                dist.broadcast(tensor[a:b], src=src, group=g)
            elif rank == miners[i]:
                dist.broadcast(shard_buf[i], src=src, group=g)
        for i in range(p):
            a, b = bounds[i]
            if is_peer:
                dist.broadcast(tensor[a:b], src=miners[i], group=groups[i])
            elif rank == miners[i]:
                dist.broadcast(shard_buf[i], src=miners[i], group=groups[i])

    ar, ar_cpu = timed(all_reduce, reps, warmup)
    bc, _ = timed(broadcast, reps, warmup)
    rss = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 if is_miner else 0.0],
                       dtype=torch.float64)
    dist.all_reduce(rss, op=dist.ReduceOp.MAX)
    rz = torch.tensor([rendezvous], dtype=torch.float64)
    dist.all_reduce(rz, op=dist.ReduceOp.MAX)
    if rank == 0:
        out.put({"all_reduce": ar, "all_reduce_cpu": ar_cpu, "broadcast": bc, "miner_rss_mib": rss.item(),
                 "rendezvous_s": rz.item()})
    dist.destroy_process_group()


def ring_worker(rank, world, port, n, reps, warmup, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    t0 = time.perf_counter()
    dist.init_process_group("gloo", rank=rank, world_size=world)
    rendezvous = time.perf_counter() - t0
    tensor = torch.rand(n)
    ar, ar_cpu = timed(lambda _: dist.all_reduce(tensor), reps, warmup)
    bc, _ = timed(lambda r: dist.broadcast(tensor, src=r % world), reps, warmup)
    rz = torch.tensor([rendezvous], dtype=torch.float64)
    dist.all_reduce(rz, op=dist.ReduceOp.MAX)
    if rank == 0:
        out.put({"all_reduce": ar, "all_reduce_cpu": ar_cpu, "broadcast": bc, "rendezvous_s": rz.item()})
    dist.destroy_process_group()


def run(target, world, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(r, world, free_port_holder[0], *args, q)) for r in range(world)]
    for pr in procs:
        pr.start()
    try:
        result = q.get(timeout=1800)
    finally:
        for pr in procs:
            pr.join(timeout=60)
            if pr.is_alive():
                pr.kill()
    return result


free_port_holder = [0]


def summarize(times, mb, cpu=None):
    med = statistics.median(times)
    out = {"median_s": med, "min_s": min(times), "mb_per_s_per_peer": mb / med, "times_s": times}
    if cpu:
        out["cpu_s"] = statistics.median(cpu)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=3)
    ap.add_argument("--mib", type=float, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--skip-topology", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    n = int(a.mib * 1024 * 1024 / 4)
    mb = n * 4 / 1e6
    result = {"peers": a.peers, "mib": a.mib, "reps": a.reps}
    if not a.skip_topology:
        free_port_holder[0] = free_port()
        t = run(topology_worker, 2 * a.peers + 1, a.peers, n, a.reps, a.warmup)
        result["topology"] = {
            "all_reduce": summarize(t["all_reduce"], mb, t["all_reduce_cpu"]),
            "broadcast": summarize(t["broadcast"], mb),
            "rendezvous_s": t["rendezvous_s"],
            "miner_rss_mib": t["miner_rss_mib"],
        }
    free_port_holder[0] = free_port()
    r = run(ring_worker, a.peers, n, a.reps, a.warmup)
    result["ring"] = {
        "all_reduce": summarize(r["all_reduce"], mb, r["all_reduce_cpu"]),
        "broadcast": summarize(r["broadcast"], mb),
        "rendezvous_s": r["rendezvous_s"],
    }
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
