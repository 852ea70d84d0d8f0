#!/usr/bin/env python3
"""Table of scripts/bench/wan.sh results: reads its runs.tsv (one line per run, JSON files beside).

Columns: median seconds per all_reduce of gloo ring and of our relay (f32 and f16 wire), tensor
MB/s per peer (10^6 bytes of the f32 tensor per second), the relay's speed-up over ring
(ring time / relay f32 time) next to the ideal 2(P-1)/P, the link-rate bound D / peer rate (the
slower direction of a peer's link; f16 moves half the bytes) and relay f32 time / that bound.
"""

import csv
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def relay_fig(doc):
    """(median s, MB/s per peer, check) of the all_reduce in an `mrctl bench local --json` report."""
    op = next(o for o in doc["ops"] if o["op"].startswith("all_reduce"))
    return op["median_s"], op["mb_per_s_per_peer"], op["check"]


def main():
    rows = {}
    order = []
    with open(sys.argv[1]) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            key = (r["profile"], int(r["peers"]), float(r["mib"]))
            if key not in rows:
                rows[key] = {"up": int(r["peer_up_bps"]), "down": int(r["peer_down_bps"])}
                order.append(key)
            cell = rows[key]
            if r["status"] == "skipped":
                cell["skipped"] = True
                continue
            doc = load(r["file"]) if r["status"] == "ok" else None
            if doc is None:
                cell[r["kind"]] = ("failed", None, "failed")
            elif r["kind"] == "ring":
                cell["ring"] = (doc["median_s"], doc["mb_per_s_per_peer"], doc["check"])
            else:
                cell[r["kind"]] = relay_fig(doc)

    def t(c):
        return "-" if c is None else (c[0] if isinstance(c[0], str) else f"{c[0]:.2f}")

    def mb(c):
        return "-" if c is None or c[1] is None else f"{c[1]:.1f}"

    print(
        "| profile | P | D MiB | ring s | relay f32 s | relay f16 s | MB/s/peer ring | relay f32 | relay f16 "
        "| relay speed-up over ring | ideal 2(P-1)/P | link bound s | relay f32 / bound | checks |"
    )
    print("|" + "---|" * 14)
    bad = 0
    for key in order:
        profile, p, mib = key
        c = rows[key]
        if c.get("skipped"):
            print(f"| {profile} | {p} | {mib:g} | skipped (MAX_BOUND_S) |" + " |" * 10)
            continue
        ring, f32, f16 = c.get("ring"), c.get("relay-f32"), c.get("relay-f16")
        bound = mib * 1048576 * 8 / min(c["up"], c["down"])
        speed = "-"
        if ring and f32 and not isinstance(ring[0], str) and not isinstance(f32[0], str):
            speed = f"{ring[0] / f32[0]:.2f}"
        over = f"{f32[0] / bound:.2f}" if f32 and not isinstance(f32[0], str) else "-"
        checks = [x[2] for x in (ring, f32, f16) if x]
        ok = all(x == "exact" for x in checks)
        bad += not ok
        check = "all exact" if ok else "; ".join(x for x in checks if x != "exact")
        print(
            f"| {profile} | {p} | {mib:g} | {t(ring)} | {t(f32)} | {t(f16)} | {mb(ring)} | {mb(f32)} | {mb(f16)} "
            f"| {speed} | {2 * (p - 1) / p:.2f} | {bound:.2f} | {over} | {check} |"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
