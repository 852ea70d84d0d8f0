"""`import mapreduce` against real daemons (conftest.py): collectives on numpy arrays and torch
tensors of odd sizes and every wire dtype, broadcast, lazy sessions per size, gradients, errors.

Ranks are threads of this process (the GIL is released while data moves, so they run at once);
every rank uses the test network's `client` wallet, as peers started from a devnet would."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, List

import numpy as np
import pytest

import mapreduce
from conftest import require_torch

WORLD = 3


def _job() -> str:
    return f"pytest-{uuid.uuid4().hex[:12]}"


def _peer(net, rank: int, job: str, world: int = WORLD, timeout: float = 60.0) -> mapreduce.Peer:
    return mapreduce.Peer(
        wallet_name="client",
        wallet_path=str(net.wallets),
        validator=net.validator,
        validator_hotkey=net.validator_hotkey,
        world_size=world,
        rank=rank,
        job=job,
        timeout=timeout,
    )


def ranks(net, fn: Callable[[mapreduce.Peer, int], Any], world: int = WORLD, timeout: float = 60.0) -> List[Any]:
    """Runs fn(peer, rank) on `world` initialised peers at once; re-raises a rank's error."""
    job = _job()
    out: List[Any] = [None] * world
    errs: List[BaseException] = []

    def run(rank: int) -> None:
        try:
            with _peer(net, rank, job, world, timeout) as peer:
                out[rank] = fn(peer, rank)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errs.append(e)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
        assert not t.is_alive(), "a rank hung"
    if errs:
        raise errs[0]
    return out


def data(n: int, rank: int, dtype=np.float32) -> np.ndarray:
    """Small integers: sums are exact in every dtype."""
    return ((np.arange(n) % 31) + rank).astype(dtype)


def test_numpy_f32_sum_and_avg_odd_size(net):
    n = 1_000_003

    def fn(peer, rank):
        a = data(n, rank)
        peer.all_reduce(a, op="sum")
        b = data(n, rank)
        peer.all_reduce(b)  # avg is the default, as in the original
        return a, b

    res = ranks(net, fn)
    want_sum = sum(data(n, r) for r in range(WORLD))
    for a, b in res:
        np.testing.assert_array_equal(a, want_sum)
        np.testing.assert_allclose(b, want_sum / WORLD, rtol=1e-6)
        # Identical on every rank, bit for bit.
        assert a.tobytes() == res[0][0].tobytes() and b.tobytes() == res[0][1].tobytes()


def test_numpy_f16_and_non_contiguous(net):
    def fn(peer, rank):
        h = data(4099, rank, np.float16)
        peer.all_reduce(h, op="sum")
        m = data(30 * 17, rank).reshape(30, 17)
        col = m[:, ::2]  # a strided view: copied in and back
        peer.all_reduce(col, op="sum")
        return h, m

    res = ranks(net, fn)
    want_h = sum(data(4099, r, np.float16).astype(np.float32) for r in range(WORLD))
    for rank, (h, m) in enumerate(res):
        assert h.dtype == np.float16
        np.testing.assert_array_equal(h.astype(np.float32), want_h)
        base = data(30 * 17, rank).reshape(30, 17)
        want = sum(data(30 * 17, r).reshape(30, 17) for r in range(WORLD))
        np.testing.assert_array_equal(m[:, ::2], want[:, ::2])
        np.testing.assert_array_equal(m[:, 1::2], base[:, 1::2])  # untouched columns stay


def test_broadcast_and_sessions_per_size(net):
    def fn(peer, rank):
        a = data(12345, rank) * (rank + 1)
        peer.broadcast(a, src=1)
        small = np.full(7, rank, np.float32)
        peer.all_reduce(small, op="sum")
        again = np.full(7, 2 * rank, np.float32)
        peer.all_reduce(again, op="sum")  # same size: the same job again
        return a, small, again, sorted(peer._sessions.keys())

    res = ranks(net, fn)
    src = data(12345, 1) * 2
    for a, small, again, keys in res:
        np.testing.assert_array_equal(a, src)
        np.testing.assert_array_equal(small, np.full(7, 0 + 1 + 2, np.float32))
        np.testing.assert_array_equal(again, np.full(7, 2 * (0 + 1 + 2), np.float32))
        assert keys == [(7, "float32"), (12345, "float32")]


def test_torch_tensors_f32_f16_bf16(net):
    torch = require_torch()

    def fn(peer, rank):
        out = {}
        for dt in (torch.float32, torch.float16, torch.bfloat16):
            t = torch.tensor(data(2 * 3 * 337, rank)).reshape(2, 3, 337).to(dt)
            peer.all_reduce(t, op="sum")
            out[dt] = t
        w = torch.nn.Parameter(torch.tensor(data(1001, rank)))  # requires_grad: reduced via detach
        peer.all_reduce(w, op="avg")
        out["param"] = w.detach().clone()
        tt = torch.tensor(data(40 * 9, rank)).reshape(40, 9).t()  # non-contiguous
        peer.all_reduce(tt, op="sum")
        out["t"] = tt.clone()
        b = torch.tensor(data(555, rank)).to(torch.bfloat16)
        peer.broadcast(b, src=2)
        out["bcast"] = b
        return out

    res = ranks(net, fn)
    want = torch.tensor(sum(data(2 * 3 * 337, r) for r in range(WORLD))).reshape(2, 3, 337)
    for out in res:
        for dt in (torch.float32, torch.float16, torch.bfloat16):
            assert out[dt].dtype == dt
            assert torch.equal(out[dt].float(), want), dt
        wp = torch.tensor(sum(data(1001, r) for r in range(WORLD)) / WORLD)
        assert torch.allclose(out["param"], wp, rtol=1e-6)
        wt = torch.tensor(sum(data(40 * 9, r) for r in range(WORLD))).reshape(40, 9).t()
        assert torch.equal(out["t"], wt)
        assert torch.equal(out["bcast"], torch.tensor(data(555, 2)).to(torch.bfloat16))
        assert torch.equal(out["bcast"], res[0]["bcast"])


def test_all_reduce_gradients_averages_every_parameter(net):
    torch = require_torch()

    def fn(peer, rank):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(13, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
        torch.manual_seed(100 + rank)
        x, y = torch.randn(8, 13), torch.randn(8, 3)
        torch.nn.functional.mse_loss(model(x), y).backward()
        local = [p.grad.clone() for p in model.parameters()]
        # A tiny bucket: the 4 gradients go in several transfers.
        mapreduce.all_reduce_gradients(model, peer, bucket_mib=64 * 4 / (1 << 20))
        return local, [p.grad.clone() for p in model.parameters()]

    res = ranks(net, fn)
    for i in range(4):
        want = sum(r[0][i] for r in res) / WORLD
        for _, after in res:
            assert torch.allclose(after[i], want, atol=1e-6)
            assert torch.equal(after[i], res[0][1][i])


def test_errors_are_exceptions_with_the_rust_message(net):
    # Input errors: nothing sent.
    def fn(peer, rank):
        errs = []
        for bad, exc in (
            (np.zeros(5, np.float64), TypeError),
            (np.zeros(5, np.int32), TypeError),
            ([1.0, 2.0], TypeError),
        ):
            with pytest.raises(exc):
                peer.all_reduce(bad)
        ro = np.zeros(5, np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            peer.all_reduce(ro)
        with pytest.raises(ValueError, match="op"):
            peer.all_reduce(np.zeros(5, np.float32), op="max")
        with pytest.raises(ValueError, match="source"):
            peer.broadcast(np.zeros(5, np.float32), src=WORLD)
        # Still usable after refused input.
        a = np.ones(5, np.float32)
        peer.all_reduce(a, op="sum")
        errs.append(a)
        return errs

    for (a,) in ranks(net, fn):
        np.testing.assert_array_equal(a, np.full(5, WORLD, np.float32))


def test_missing_rank_times_out(net):
    # world_size 2, only rank 0 arrives: a timeout naming the job, not a hang or a crash.
    with pytest.raises(mapreduce.MapReduceTimeout, match="not every rank joined"):
        _peer(net, 0, _job(), world=2, timeout=2.0).init_process_group()


def test_ranks_disagreeing_on_size_fail_cleanly(net):
    def fn(peer, rank):
        a = np.ones(10 + rank, np.float32)  # rank 1 asks for another size: no one to meet
        try:
            peer.all_reduce(a)
        except mapreduce.MapReduceError as e:
            return type(e), str(e)
        return None, ""

    res = ranks(net, fn, world=2, timeout=3.0)
    for exc, msg in res:
        assert exc is mapreduce.MapReduceTimeout, msg
        assert "appeared in time" in msg or "joined within" in msg, msg


def test_unreachable_validator_and_closed_peer(net):
    p = mapreduce.Peer(
        wallet_name="client",
        wallet_path=str(net.wallets),
        validator="127.0.0.1:1",
        validator_hotkey=net.validator_hotkey,
        world_size=1,
        rank=0,
        job=_job(),
    )
    with pytest.raises(mapreduce.ConnectError, match="127.0.0.1:1"):
        p.init_process_group()
    with pytest.raises(mapreduce.Closed, match="init_process_group"):
        p.all_reduce(np.ones(3, np.float32))
    with pytest.raises(mapreduce.WalletError, match="nosuchwallet"):
        mapreduce.Peer(
            wallet_name="nosuchwallet", wallet_path=str(net.wallets), validator=net.validator,
            validator_hotkey=net.validator_hotkey, world_size=1, rank=0, job=_job(),
        ).init_process_group()
    with pytest.raises(ValueError, match="rank 3"):
        mapreduce.Peer(wallet_name="client", wallet_path=str(net.wallets), validator=net.validator,
                       validator_hotkey=net.validator_hotkey, world_size=3, rank=3)


def test_single_peer_and_destroy(net):
    p = _peer(net, 0, _job(), world=1)
    p.init_process_group()
    a = np.arange(100, dtype=np.float32)
    p.all_reduce(a, op="sum")
    np.testing.assert_array_equal(a, np.arange(100, dtype=np.float32))
    p.barrier()
    p.destroy_process_group()
    with pytest.raises(mapreduce.Closed):
        p.all_reduce(a)


def test_verify_reports_the_checked_samples_of_a_real_job(net):
    """Live-job verification (issue 13) through Python: after a real all_reduce through the honest
    miners, verify() waits for every rank's evidence and returns what the validator recomputed:
    sampled blocks checked (operation 0 samples at least one block per shard), none failed."""
    n = 300_007

    def fn(peer, rank):
        a = data(n, rank)
        peer.all_reduce(a, op="sum")
        with pytest.raises(ValueError, match="timeout"):
            peer.verify(timeout=-1.0)
        return a, peer.verify(timeout=60.0)

    res = ranks(net, fn)
    want = sum(data(n, r) for r in range(WORLD))
    for a, summaries in res:
        np.testing.assert_array_equal(a, want)
        # The root session (init_process_group's) ran no collective; the data session did.
        assert len(summaries) == 2, summaries
        root, job = summaries
        assert root["checked"] == 0 and root["failed"] == 0, root
        assert job["job_id"] != root["job_id"], summaries
        assert job["checked"] > 0, job
        assert job["failed"] == 0 and job["pending"] == 0, job
        assert job["verdict"] == "ok", job
    # Every rank was told about the same job.
    assert len({s[1]["job_id"] for _, s in res}) == 1
    assert issubclass(mapreduce.JobCorrupted, mapreduce.MapReduceError)
