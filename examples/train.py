#!/usr/bin/env python3
"""Data-parallel training through the mapreduce subnet: every peer trains the same small torch
model on its own shard of synthetic data, averaging gradients through the validator's miners.

    scripts/devnet up                          # a local network (from the repository root)
    python examples/train.py --peers 3         # starts 3 peers (processes) and checks them

or run one rank yourself (``--rank R --world-size N --job NAME``; each rank in its own process,
like torchrun). Wallet and validator come from the running devnet (or BT_*/MR_* variables, or
``--wallet.name``, ``--validator``, ``--validator-hotkey``).

Every step prints the loss averaged over all peers (identical on every peer) and the largest
difference between this peer's parameters and rank 0's (broadcast each step): 0 means the
peers hold exactly the same model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

import numpy as np


def train(args: argparse.Namespace) -> None:
    import torch

    import mapreduce

    torch.manual_seed(0)  # same initial model on every peer (also broadcast below)
    model = torch.nn.Sequential(
        torch.nn.Linear(args.features, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 1),
    )
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    # This peer's shard: same true function, different samples.
    g = torch.Generator().manual_seed(1234)
    w_true = torch.randn(args.features, 1, generator=g)
    g = torch.Generator().manual_seed(1000 + args.rank)
    x = torch.randn(args.samples, args.features, generator=g)
    y = torch.sin(x @ w_true) + 0.05 * torch.randn(args.samples, 1, generator=g)

    peer = mapreduce.Peer(
        wallet_name=args.wallet_name,
        wallet_path=args.wallet_path,
        validator=args.validator,
        validator_hotkey=args.validator_hotkey,
        world_size=args.world_size,
        rank=args.rank,
        job=args.job,
    )
    with peer:
        for p in model.parameters():
            peer.broadcast(p.data, src=0)
        flat = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
        print(f"rank {args.rank}: job {peer.job_id}, {flat.numel()} parameters", flush=True)
        for step in range(args.steps):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            mapreduce.all_reduce_gradients(model, peer, op="avg")
            opt.step()
            # The loss over all peers' data, and the model checked against rank 0's.
            global_loss = peer.all_reduce(loss.detach().reshape(1).clone(), op="avg")
            mine = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
            theirs = peer.broadcast(mine.clone(), src=0)
            diff = peer.all_reduce((mine - theirs).abs().max().reshape(1), op="sum")
            ms = (time.perf_counter() - t0) * 1e3
            print(
                f"rank {args.rank} step {step:3d} loss {global_loss.item():.6f} "
                f"max|param - rank0| {diff.item():g} ({ms:.0f} ms)",
                flush=True,
            )
        final = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
        print(f"rank {args.rank} final param checksum {final.double().sum().item():.12f}", flush=True)


def launch(args: argparse.Namespace) -> int:
    """Starts --peers ranks as processes, shows their output, checks they agree."""
    job = args.job or f"train-{uuid.uuid4().hex[:8]}"
    procs = []
    for rank in range(args.peers):
        cmd = [sys.executable, os.path.abspath(__file__), "--rank", str(rank),
               "--world-size", str(args.peers), "--job", job,
               "--steps", str(args.steps), "--lr", str(args.lr)]
        for flag, v in (("--wallet.name", args.wallet_name), ("--wallet.path", args.wallet_path),
                        ("--validator", args.validator), ("--validator-hotkey", args.validator_hotkey)):
            if v:
                cmd += [flag, v]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=args.timeout)
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    losses = []
    ok = True
    for rank, (p, out) in enumerate(zip(procs, outs)):
        if p.returncode != 0:
            print(f"rank {rank} failed (exit {p.returncode}):\n{out}")
            ok = False
            continue
        lines = out.splitlines()
        if rank == 0:
            print("\n".join(l for l in lines if " step " in l or "job" in l))
        losses.append([l.split(" loss ")[1].split()[0] for l in lines if " step " in l])
        diffs = [float(l.split("rank0| ")[1].split()[0]) for l in lines if " step " in l]
        checksum = [l for l in lines if "checksum" in l]
        print(f"rank {rank}: {len(diffs)} steps, largest parameter difference to rank 0: "
              f"{max(diffs) if diffs else 'n/a'}; {checksum[0] if checksum else ''}")
        ok &= bool(diffs) and max(diffs) == 0.0
    if not ok:
        return 1
    same = all(l == losses[0] for l in losses)
    falling = float(losses[0][-1]) < float(losses[0][0])
    print(f"loss {losses[0][0]} -> {losses[0][-1]} "
          f"({'identical on every peer' if same else 'DIFFERS between peers'}); "
          f"parameters equal on all {args.peers} peers after every step (max abs difference 0)")
    return 0 if same and falling else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=0, help="start this many ranks as processes and check them")
    ap.add_argument("--rank", type=int, default=int(os.environ.get("RANK", 0)))
    ap.add_argument("--world-size", type=int, default=int(os.environ.get("WORLD_SIZE", 1)))
    ap.add_argument("--job", default=os.environ.get("MR_JOB"), help="rendezvous name shared by the ranks")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run (--peers)")
    ap.add_argument("--wallet.name", "--wallet-name", dest="wallet_name")
    ap.add_argument("--wallet.path", "--wallet-path", dest="wallet_path")
    ap.add_argument("--validator", help="host:port of the validator")
    ap.add_argument("--validator-hotkey", dest="validator_hotkey")
    args = ap.parse_args()
    if args.peers:
        return launch(args)
    args.job = args.job or "train"
    train(args)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=6)
    sys.exit(main())
