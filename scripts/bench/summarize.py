#!/usr/bin/env python3
"""Turns compare.sh's JSON files into a markdown table of figures and ratios against the targets."""

import json
import os
import statistics
import sys


def load(d, name):
    p = os.path.join(d, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None


def merge(items):
    """The element-wise median of several rounds' JSON (numbers); lists and strings from the first,
    except check strings, where any failure wins."""
    first = items[0]
    if isinstance(first, dict):
        return {k: merge([i[k] for i in items]) for k in first if all(k in i for i in items)}
    if isinstance(first, list):
        if all(isinstance(i, list) and len(i) == len(first) for i in items) and first and isinstance(first[0], dict):
            return [merge([i[j] for i in items]) for j in range(len(first))]
        return first
    if isinstance(first, str):
        bad = [i for i in items if i != "exact"]
        return bad[0] if first == "exact" and bad else first
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    return statistics.median(items)


def load_rounds(d, name):
    """`name` from every round (name_rN.json), merged; or name.json from a single run."""
    rounds = []
    n = 1
    while os.path.exists(os.path.join(d, f"{name}_r{n}.json")):
        rounds.append(load(d, f"{name}_r{n}"))
        n += 1
    return (merge(rounds), len(rounds)) if rounds else (load(d, name), 1)


def op(mr, name):
    return next(o for o in mr["ops"] if o["op"].startswith(name))


def row(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |")


def verdict(ok):
    return "met" if ok else "**not met**"


def main():
    d, peers, mib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    iperf, rounds = load_rounds(d, "iperf")
    agg = iperf["end"]["sum_received"]["bits_per_second"] / 8 / 1e6  # MB/s
    gloo, _ = load_rounds(d, "gloo")
    f32, f16, bf16 = (load_rounds(d, n)[0] for n in ("mr_f32", "mr_f16", "mr_bf16"))
    topo = gloo["topology"]["all_reduce"]["mb_per_s_per_peer"]
    ring = gloo["ring"]["all_reduce"]["mb_per_s_per_peer"]
    ours = op(f32, "all_reduce")
    ours_mb = ours["mb_per_s_per_peer"]
    tensor_mb = mib * 1024 * 1024 / 1e6
    ceiling_frac = (2 * peers * tensor_mb / ours["median_s"]) / agg

    print(f"P={peers} peers, M={peers} miners, D={mib:g} MiB f32, medians of {int(f32['reps'])} after {int(f32['warmup'])} warm-up"
          f"{f', then the median over {rounds} interleaved rounds' if rounds > 1 else ''};"
          f" MB = 10^6 bytes of the f32 tensor per second per peer.\n")
    row(["measure", "figure", "ratio", "target", ""])
    row(["---"] * 5)
    row(["iperf3 loopback, 3 parallel streams (aggregate)", f"{agg:.0f} MB/s", "", "", ""])
    row(["relay ceiling per peer (aggregate / 2P)", f"{agg / (2 * peers):.0f} MB/s", "", "", ""])
    row(["gloo, original topology, all_reduce", f"{topo:.1f} MB/s", "", "", ""])
    row(["gloo, plain ring, all_reduce", f"{ring:.1f} MB/s", "", "", ""])
    row(["ours f32 all_reduce", f"{ours_mb:.1f} MB/s", f"{ours_mb / topo:.2f}x topology", ">= 2.0x", verdict(ours_mb / topo >= 2.0)])
    row(["", "", f"{ours_mb / ring:.2f}x ring", ">= 0.7x", verdict(ours_mb / ring >= 0.7)])
    row(["", "", f"{ceiling_frac:.2f} of loopback ceiling", ">= 0.85 (aim)", verdict(ceiling_frac >= 0.85)])
    for name, mr in (("f16", f16), ("bf16", bf16)):
        o = op(mr, "all_reduce")["mb_per_s_per_peer"]
        row([f"ours {name} wire all_reduce", f"{o:.1f} MB/s", f"{o / ours_mb:.2f}x our f32", ">= 1.6x", verdict(o / ours_mb >= 1.6)])
        row(["", "", f"{o / ring:.2f}x ring (f32)", ">= 1.1x", verdict(o / ring >= 1.1)])
    gb_topo = gloo["topology"]["broadcast"]["mb_per_s_per_peer"]
    gb_ring = gloo["ring"]["broadcast"]["mb_per_s_per_peer"]
    ob = op(f32, "broadcast")["mb_per_s_per_peer"]
    row(["broadcast f32: ours / gloo topology / gloo ring", f"{ob:.0f} / {gb_topo:.0f} / {gb_ring:.0f} MB/s",
         f"{ob / gb_topo:.2f}x topology, {ob / gb_ring:.2f}x ring", "", ""])
    cpu = ours.get("relay_cpu_s")
    if cpu is not None:
        row(["relay CPU per f32 all_reduce (all relays, user + system)", f"{cpu:.2f} s",
             f"{cpu / (ours['median_s'] * 2):.0%} of the machine's 2 cores", "", ""])
    rss = max(m["relay_peak_rss_mib"] for m in (f32, f16, bf16))
    row(["relay peak RSS (VmHWM), D = {:g} MiB".format(mib), f"{rss:.1f} MiB", "", "<= 64 MiB", verdict(rss <= 64)])
    big = load(d, "mr_1024")
    if big:
        row(["relay peak RSS (VmHWM), D = 1 GiB", f"{big['relay_peak_rss_mib']:.1f} MiB", "", "<= 64 MiB", verdict(big["relay_peak_rss_mib"] <= 64)])
    prss = f32["peer_peak_rss_mib"]
    row(["peer peak RSS", f"{prss:.1f} MiB", f"tensor + {prss - mib:.1f} MiB", "<= tensor + 32 MiB", verdict(prss <= mib + 32)])
    setup = max(m["setup_ms"] for m in (f32, f16, bf16))
    row(["job set-up, first frame sent to last handshake accepted", f"{setup:.1f} ms", "", "<= 50 ms", verdict(setup <= 50)])
    row(["gloo rendezvous (topology / ring)", f"{gloo['topology']['rendezvous_s'] * 1e3:.0f} / {gloo['ring']['rendezvous_s'] * 1e3:.0f} ms", "", "", ""])
    row(["gloo miner process peak RSS", f"{gloo['topology']['miner_rss_mib']:.0f} MiB", "", "", ""])
    checks = [o["check"] for m in (f32, f16, bf16) for o in m["ops"]]
    row(["every result checked bit for bit", "exact" if all(c == "exact" for c in checks) else "; ".join(checks), "", "exact", verdict(all(c == "exact" for c in checks))])

    cpu_table(gloo, f32, f16, bf16, peers, tensor_mb, agg)
    bare_table(d, gloo, f32, f16)

    extra = [(n, load(d, "mr_" + n), load(d, "gloo_" + n)) for n in ("16", "1024", "p2", "p4")]
    if any(m for _, m, _ in extra):
        print("\nOther sizes (f32 all_reduce, MB/s per peer; gloo not run at 1 GiB):\n")
        row(["case", "ours", "gloo topology", "gloo ring", "ours / topology", "ours / ring", "relay RSS", "check"])
        row(["---"] * 8)
        for n, m, g in extra:
            if not m:
                continue
            o = op(m, "all_reduce")
            label = {"16": f"D = 16 MiB, P={peers}", "1024": f"D = 1 GiB, P={peers}", "p2": f"P = 2, D = {mib:g} MiB", "p4": f"P = 4, D = {mib:g} MiB"}[n]
            t = g["topology"]["all_reduce"]["mb_per_s_per_peer"] if g else None
            r = g["ring"]["all_reduce"]["mb_per_s_per_peer"] if g else None
            row([label, f"{o['mb_per_s_per_peer']:.1f}", f"{t:.1f}" if t else "-", f"{r:.1f}" if r else "-",
                 f"{o['mb_per_s_per_peer'] / t:.2f}x" if t else "-", f"{o['mb_per_s_per_peer'] / r:.2f}x" if r else "-",
                 f"{m['relay_peak_rss_mib']:.1f} MiB", o["check"]])


def cpu_table(gloo, f32, f16, bf16, peers, tensor_mb, agg):
    """CPU seconds per all_reduce, summed over every process, against the bytes each design moves
    through loopback: on a machine whose cores all its processes share, CPU per operation is the
    throughput. Ring: 2(P-1)/P * D per peer, 2(P-1) D in all; relays: D up and D down per peer,
    2 P D in all (16-bit wires: half)."""
    ring_cpu = gloo["ring"]["all_reduce"].get("cpu_s")
    if ring_cpu is None:
        return
    ring_bytes = 2 * (peers - 1) * tensor_mb  # MB
    relay_bytes = 2 * peers * tensor_mb
    rows = [
        ("gloo ring (P processes)", ring_cpu, ring_bytes, gloo["ring"]["all_reduce"]["median_s"]),
        ("gloo original topology (2P+1 processes)", gloo["topology"]["all_reduce"].get("cpu_s"),
         2 * peers * tensor_mb, gloo["topology"]["all_reduce"]["median_s"]),
    ]
    for name, mr, wire in (("ours f32", f32, 1.0), ("ours f16", f16, 0.5), ("ours bf16", bf16, 0.5)):
        o = op(mr, "all_reduce")
        if "peer_cpu_s" in o:
            rows.append((f"{name} (P relays + P peers)", o["relay_cpu_s"] + o["peer_cpu_s"], relay_bytes * wire, o["median_s"]))
    print("\nCPU per all_reduce (user + system, every process, median of reps) against bytes moved through"
          " loopback; 2 cores, so time >= CPU / 2:\n")
    row(["design", "CPU s per op", "MB moved per op", "CPU ns per byte moved", "median s", "CPU / (2 cores x time)"])
    row(["---"] * 6)
    for name, cpu, mb, t in rows:
        if cpu is None:
            continue
        row([name, f"{cpu:.3f}", f"{mb:.0f}", f"{cpu / mb * 1e3:.2f}", f"{t:.3f}", f"{cpu / (2 * t):.0%}"])
    # What a relay needs for 0.7x ring, if time is CPU-bound (time = CPU / 2).
    ring_t = gloo["ring"]["all_reduce"]["median_s"]
    need_t = ring_t / 0.7
    need_cpu = 2 * need_t
    print(f"\nFor 0.7x ring (f32): at most {need_t:.3f} s per op, so at most {need_cpu:.3f} CPU s"
          f" if both cores are busy throughout, i.e. {need_cpu / relay_bytes * 1e3:.2f} ns per byte moved"
          f" (ring today: {ring_cpu / ring_bytes * 1e3:.2f}); and {relay_bytes / need_t:.0f} MB/s through"
          f" loopback against iperf3's {agg:.0f} MB/s.")


def bare_table(d, gloo, f32, f16):
    """The bare traffic from daemon/examples/bare_traffic.rs: each design's bytes moved by the
    simplest code (threads of one process; every peer drives all its sockets from one thread, as
    ours and gloo's do) with no frames, reduction or signatures, and for the relays with or without
    the frames' checksums. What the ring leads by here is the traffic pattern's, not an implementation's."""
    rounds = {k: load_rounds(d, k)[0]
              for k in ("bare_relay", "bare_relay_ck", "bare_relay16", "bare_relay16_ck", "bare_ring")}
    if not all(rounds.values()):
        return
    ring = gloo["ring"]["all_reduce"]["mb_per_s_per_peer"]
    ours = op(f32, "all_reduce")["mb_per_s_per_peer"]
    ours16 = op(f16, "all_reduce")["mb_per_s_per_peer"]
    print("\nBare traffic (`daemon/examples/bare_traffic.rs`): each design's bytes moved by the simplest code, no"
          " frames, reduction or signatures; MB/s of the f32 tensor per peer:\n")
    row(["design", "MB/s per peer", "vs gloo ring", "vs bare ring", "CPU ns per byte moved", "ours against it"])
    row(["---"] * 6)
    ring_bare = rounds["bare_ring"]
    rb = ring_bare["mb_per_s_per_peer"]
    row(["bare ring (2(P-1) D moved)", f"{rb:.1f}", f"{rb / ring:.2f}x", "1.00x",
         f"{ring_bare['cpu_ns_per_byte_moved']:.2f}", f"gloo ring {ring:.1f} MB/s = {ring / rb:.2f}x it"])
    for name, key, o, target in (
            ("bare relays, f32 (2 P D moved)", "bare_relay", ours, 0.7),
            ("bare relays, f32, with checksums", "bare_relay_ck", ours, 0.7),
            ("bare relays, 16-bit (P D moved)", "bare_relay16", ours16, 1.1),
            ("bare relays, 16-bit, with checksums", "bare_relay16_ck", ours16, 1.1)):
        b = rounds[key]
        m = b["mb_per_s_per_peer"]
        row([name, f"{m:.1f}", f"{m / ring:.2f}x (target for ours: >= {target}x)", f"{m / rb:.2f}x",
             f"{b['cpu_ns_per_byte_moved']:.2f}", f"ours {o:.1f} MB/s = {o / m:.2f}x it"])


if __name__ == "__main__":
    main()
