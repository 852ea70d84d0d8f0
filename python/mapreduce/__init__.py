"""mapreduce: all_reduce and broadcast for training code, through the mapreduce subnet's miners.

The shape of the original subnet's user guide, with torch.distributed's names::

    import mapreduce
    peer = mapreduce.Peer(world_size=3, rank=rank, job="my-run")   # devnet/env discovery
    peer.init_process_group()
    for batch in data:
        loss = model(batch).loss
        loss.backward()
        mapreduce.all_reduce_gradients(model, peer)     # average gradients across peers
        opt.step(); opt.zero_grad()
    peer.destroy_process_group()

or ``with mapreduce.Peer(...) as peer:``. Tensors are torch CPU tensors or numpy arrays of float32,
float16 or bfloat16 (torch), reduced in place without copying them into Python objects; the GIL is
released while data moves. Network errors raise :class:`MapReduceError` subclasses carrying the
Rust message.

Every rank must call collectives in the same order with tensors of the same size and dtype, as
torch.distributed requires. A job's ticket fixes the size of its collectives, so the Peer keeps
one job per (size, dtype) it has seen, made on first use and reused after.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Optional, Tuple

from . import _discovery
from ._native import (
    Closed,
    ConnectError,
    JobCorrupted,
    JobFailed,
    JobRefused,
    Key,
    MapReduceError,
    MapReduceTimeout,
    Session,
    WalletError,
    __version__,
    hotkey_ss58,
)

__all__ = [
    "Peer",
    "all_reduce_gradients",
    "MapReduceError",
    "ConnectError",
    "JobRefused",
    "JobFailed",
    "JobCorrupted",
    "MapReduceTimeout",
    "WalletError",
    "Closed",
    "Key",
    "Session",
    "hotkey_ss58",
    "__version__",
]

_OPS = ("sum", "avg")


def _torch():
    """torch if it is already imported (never imports it: numpy-only users pay nothing)."""
    import sys

    return sys.modules.get("torch")


class _Staged:
    """A tensor as a writable C-contiguous buffer of a wire dtype, and how to put results back."""

    __slots__ = ("buf", "dtype", "n", "_back")

    def __init__(self, tensor: Any):
        torch = _torch()
        self._back = None
        if torch is not None and isinstance(tensor, torch.Tensor):
            if tensor.device.type != "cpu":
                raise TypeError(
                    f"tensor on {tensor.device}: mapreduce moves CPU tensors; use tensor.cpu() "
                    "and copy the result back"
                )
            names = {
                torch.float32: "float32",
                torch.float16: "float16",
                torch.bfloat16: "bfloat16",
            }
            if tensor.dtype not in names:
                raise TypeError(
                    f"tensor of {tensor.dtype}: mapreduce moves float32, float16 and bfloat16"
                )
            self.dtype = names[tensor.dtype]
            t = tensor.detach()
            if not t.is_contiguous():
                orig, work = t, t.contiguous()
                self._back = lambda: orig.copy_(work)
                t = work
            if self.dtype == "bfloat16":
                self.buf = t.view(torch.int16).numpy()
            else:
                self.buf = t.numpy()
            self.n = t.numel()
            return
        import numpy as np

        if not isinstance(tensor, np.ndarray):
            raise TypeError(
                f"expected a torch tensor or a numpy array, got {type(tensor).__name__}"
            )
        kinds = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}
        if tensor.dtype not in kinds:
            raise TypeError(
                f"array of {tensor.dtype}: mapreduce moves float32 and float16 arrays "
                "(bfloat16 through torch tensors)"
            )
        if not tensor.flags.writeable:
            raise ValueError("the array is read-only: collectives write their result in place")
        self.dtype = kinds[tensor.dtype]
        a = tensor
        if not (a.flags.c_contiguous and a.flags.aligned) or a.dtype.byteorder == ">":
            orig, work = a, np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))

            def back():
                orig[...] = work

            self._back = back
            a = work
        self.buf = a.reshape(-1)
        self.n = a.size

    def finish(self) -> None:
        if self._back is not None:
            self._back()


class Peer:
    """One training process's membership of a job on the subnet.

    Arguments (each falls back to the environment, then to the running devnet):

    - ``wallet_name``, ``wallet_hotkey``, ``wallet_path``: the hotkey that signs requests
      (``BT_WALLET_NAME``/``MR_WALLET_NAME``, ...; devnet: its ``client`` wallet).
    - ``validator``: ``host:port`` of the validator's axon (``MR_VALIDATOR``; devnet 127.0.0.2:8091);
      ``validator_hotkey``: its ss58 hotkey (``MR_VALIDATOR_HOTKEY``; devnet: read from its wallet).
    - ``world_size``, ``rank``: as torch (``WORLD_SIZE``, ``RANK``; default 1 and 0).
    - ``job``: the rendezvous name every rank shares (``MR_JOB``; default ``"mapreduce"``). Use a
      name unique to the run when several runs share a validator.
    - ``timeout``: seconds to wait for every rank at each rendezvous (default 60).
    - ``miners``: miners per job (0: the validator's choice).
    """

    def __init__(
        self,
        wallet_name: Optional[str] = None,
        wallet_hotkey: Optional[str] = None,
        wallet_path: Optional[str] = None,
        validator: Optional[str] = None,
        validator_hotkey: Optional[str] = None,
        world_size: Optional[int] = None,
        rank: Optional[int] = None,
        job: Optional[str] = None,
        timeout: float = 60.0,
        miners: int = 0,
    ):
        found = _discovery.resolve(
            wallet_name=wallet_name,
            wallet_hotkey=wallet_hotkey,
            wallet_path=wallet_path,
            validator=validator,
            validator_hotkey=validator_hotkey,
        )
        self.validator: str = found.validator
        self.validator_hotkey: str = found.validator_hotkey
        self.wallet = (found.wallet_path, found.wallet_name, found.wallet_hotkey)
        self.world_size = int(world_size if world_size is not None else os.environ.get("WORLD_SIZE", 1))
        self.rank = int(rank if rank is not None else os.environ.get("RANK", 0))
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of {self.world_size} peers")
        self.job = job if job is not None else os.environ.get("MR_JOB", "mapreduce")
        if not self.job:
            raise ValueError("job must be a non-empty name shared by every rank")
        self.timeout = float(timeout)
        self.miners = int(miners)
        self._key: Optional[Key] = None
        self._root: Optional[Session] = None
        self._sessions: Dict[Tuple[int, str], Session] = {}
        self._lock = threading.Lock()

    # -- process group -------------------------------------------------------------------

    def init_process_group(self) -> "Peer":
        """Meets every rank through the validator (a one-element job that also serves as the
        barrier). Returns once all ``world_size`` ranks have arrived."""
        with self._lock:
            if self._root is not None:
                return self
            if self._key is None:
                self._key = Key.from_wallet(*self.wallet)
            self._root = self._open(self.job, 1, "float32")
            return self

    def destroy_process_group(self) -> None:
        """Tells the validator every job of this peer is done and closes its connections."""
        with self._lock:
            for s in self._sessions.values():
                s.close()
            self._sessions.clear()
            if self._root is not None:
                self._root.close()
                self._root = None

    def is_initialized(self) -> bool:
        return self._root is not None

    @property
    def job_id(self) -> int:
        """The validator's id of the rendezvous job."""
        return self._need_root().job_id

    def __enter__(self) -> "Peer":
        return self.init_process_group()

    def __exit__(self, *exc: Any) -> None:
        self.destroy_process_group()

    def __del__(self) -> None:
        try:
            self.destroy_process_group()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = f"job {self._root.job_id}" if self._root is not None else "not initialized"
        return f"Peer(rank={self.rank}/{self.world_size}, job={self.job!r}, {state})"

    # -- collectives ---------------------------------------------------------------------

    def all_reduce(self, tensor: Any, op: str = "avg") -> Any:
        """Reduces ``tensor`` across every rank in place (``op`` "sum" or "avg") and returns it."""
        if op not in _OPS:
            raise ValueError(f'op {op!r}: must be "sum" or "avg"')
        staged = _Staged(tensor)
        if staged.n == 0:
            return tensor
        self._session(staged.n, staged.dtype).all_reduce(staged.buf, op)
        staged.finish()
        return tensor

    def broadcast(self, tensor: Any, src: int = 0) -> Any:
        """Copies rank ``src``'s ``tensor`` into ``tensor`` on every rank, in place; returns it."""
        if not 0 <= src < self.world_size:
            raise ValueError(f"broadcast source {src} is not a rank of {self.world_size} peers")
        staged = _Staged(tensor)
        if staged.n == 0:
            return tensor
        self._session(staged.n, staged.dtype).broadcast(staged.buf, src)
        staged.finish()
        return tensor

    def verify(self, timeout: float = 10.0) -> list:
        """Live-job verification: what the validator found in the sampled blocks of this
        process group's jobs, one dict per job (``checked``, ``failed``, ``pending``,
        ``verdict``). Raises ``JobCorrupted`` when a miner's result was found wrong."""
        root = self._need_root()
        out = [root.verify(timeout)]
        for s in list(self._sessions.values()):
            if s is not root and not s.closed:
                out.append(s.verify(timeout))
        return out

    def barrier(self) -> None:
        """Returns once every rank has called barrier."""
        import numpy as np

        self._need_root().all_reduce(np.zeros(1, dtype=np.float32), "sum")

    # -- sessions ------------------------------------------------------------------------

    def _need_root(self) -> Session:
        if self._root is None:
            raise Closed("call init_process_group() first (or use the Peer as a context manager)")
        return self._root

    def _session(self, elements: int, dtype: str) -> Session:
        root = self._need_root()
        key = (elements, dtype)
        s = self._sessions.get(key)
        if s is None:
            # Unique to this run (the root job's id) and to the shape: every rank derives the
            # same name because every rank calls collectives in the same order.
            name = f"{self.job}/{root.job_id:x}/{elements}/{dtype}"
            with self._lock:
                s = self._open(name, elements, dtype)
                self._sessions[key] = s
        return s

    def _open(self, name: str, elements: int, dtype: str) -> Session:
        assert self._key is not None
        return Session.init(
            self.validator,
            self.validator_hotkey,
            self._key,
            self.world_size,
            self.rank,
            name,
            elements,
            dtype,
            join_timeout=self.timeout,
            miners=self.miners,
        )


def all_reduce_gradients(model: Any, peer: Peer, op: str = "avg", bucket_mib: float = 25.0) -> None:
    """All-reduces the gradients of ``model``'s parameters (those with a ``.grad``) in place.

    Gradients are packed per dtype into one flat buffer cut in buckets of ``bucket_mib`` MiB, so a
    model with many small tensors makes few transfers and at most two job sizes per dtype. Every
    rank must have gradients for the same parameters.
    """
    torch = _torch()
    if torch is None:
        raise TypeError("all_reduce_gradients needs torch (import torch first)")
    groups: Dict[Any, list] = {}
    for p in model.parameters():
        if p.grad is not None:
            groups.setdefault(p.grad.dtype, []).append(p.grad)
    for dtype, grads in groups.items():
        flat = torch.cat([g.detach().reshape(-1) for g in grads])
        per = max(1, int(bucket_mib * (1 << 20)) // flat.element_size())
        for start in range(0, flat.numel(), per):
            peer.all_reduce(flat[start : start + per], op=op)
        offset = 0
        for g in grads:
            n = g.numel()
            g.detach().copy_(flat[offset : offset + n].view_as(g))
            offset += n
