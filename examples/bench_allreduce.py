#!/usr/bin/env python3
"""all_reduce of a 100 MiB float32 tensor through Python (`mapreduce.Peer`, a torch tensor when torch
is installed, else numpy) against the same through the Rust API (`mrctl job demo`, which times
`Session::all_reduce`), on the running devnet, in interleaved rounds. Both sides: P peers as
threads of one process, one job per round, only the all_reduce call timed (job set-up excluded).

    scripts/devnet up
    python examples/bench_allreduce.py --rounds 3 --mib 100 --peers 3 [--mrctl target/release/mrctl]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np

import mapreduce
from mapreduce import _discovery

ROOT = Path(__file__).resolve().parents[1]


def rust_round(mrctl: str, found, peers: int, mib: int) -> float:
    out = subprocess.run(
        [mrctl, "job", "demo", "--validator", found.validator, "--validator-hotkey",
         found.validator_hotkey, "--peers", str(peers), "--mib", str(mib)],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"mrctl job demo failed: {out.stderr}{out.stdout}")
    secs = [float(s) for s in re.findall(r"all_reduce ([0-9.]+) s", out.stdout)]
    if len(secs) != peers:
        raise RuntimeError(f"unexpected mrctl output: {out.stdout}")
    return max(secs)


def python_round(peers: int, mib: int) -> float:
    try:
        import torch
    except ImportError:
        torch = None
    n = mib * (1 << 20) // 4
    job = f"bench-{uuid.uuid4().hex[:8]}"
    times = [0.0] * peers
    errs = []

    def rank(r: int) -> None:
        try:
            t = torch.full((n,), float(r + 1)) if torch is not None else np.full(n, r + 1, np.float32)
            with mapreduce.Peer(world_size=peers, rank=r, job=job) as peer:
                peer._session(n, "float32")  # the job for this size, made before timing (like mrctl)
                t0 = time.perf_counter()
                peer.all_reduce(t, op="sum")
                times[r] = time.perf_counter() - t0
            want = peers * (peers + 1) / 2
            first = float(t[0]) if torch is None else t[0].item()
            if first != want or float(t[-1]) != want:
                raise AssertionError(f"rank {r}: got {first}, want {want}")
        except BaseException as e:  # noqa: BLE001
            errs.append(e)

    th = [threading.Thread(target=rank, args=(r,)) for r in range(peers)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    if errs:
        raise errs[0]
    return max(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--peers", type=int, default=3)
    ap.add_argument("--mrctl", default=None, help="mrctl binary (default: $CARGO_TARGET_DIR or target, release then debug)")
    args = ap.parse_args()
    mrctl = args.mrctl
    if mrctl is None:
        import os

        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        mrctl = next((str(target / p / "mrctl") for p in ("release", "debug") if (target / p / "mrctl").exists()), "mrctl")
    found = _discovery.resolve()
    print(f"{args.peers} peers, {args.mib} MiB float32, validator {found.validator}; rust: {mrctl}")
    rust, py = [], []
    for i in range(args.rounds):
        rust.append(rust_round(mrctl, found, args.peers, args.mib))
        py.append(python_round(args.peers, args.mib))
        print(f"round {i + 1}: rust {rust[-1]:.3f} s   python {py[-1]:.3f} s")
    mr, mp = statistics.median(rust), statistics.median(py)
    mb = args.mib * 1.048576
    print(f"median: rust {mr:.3f} s ({mb / mr:.0f} MB/s)   python {mp:.3f} s ({mb / mp:.0f} MB/s)   "
          f"python/rust time {mp / mr:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
