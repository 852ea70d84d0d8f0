"""Type stubs of `mapreduce` (see mapreduce/__init__.py for the docs)."""

from typing import Any, Optional, TypeVar

from ._native import (
    Closed as Closed,
    ConnectError as ConnectError,
    JobCorrupted as JobCorrupted,
    JobFailed as JobFailed,
    JobRefused as JobRefused,
    Key as Key,
    MapReduceError as MapReduceError,
    MapReduceTimeout as MapReduceTimeout,
    Op,
    Session as Session,
    WalletError as WalletError,
    __version__ as __version__,
    hotkey_ss58 as hotkey_ss58,
)

T = TypeVar("T")

class Peer:
    validator: str
    validator_hotkey: str
    world_size: int
    rank: int
    job: str
    timeout: float
    miners: int
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
    ) -> None: ...
    def init_process_group(self) -> Peer: ...
    def destroy_process_group(self) -> None: ...
    def is_initialized(self) -> bool: ...
    @property
    def job_id(self) -> int: ...
    def all_reduce(self, tensor: T, op: Op = "avg") -> T: ...
    def broadcast(self, tensor: T, src: int = 0) -> T: ...
    def verify(self, timeout: float = 10.0) -> list[dict[str, Any]]: ...
    def barrier(self) -> None: ...
    def __enter__(self) -> Peer: ...
    def __exit__(self, *exc: Any) -> None: ...

def all_reduce_gradients(model: Any, peer: Peer, op: Op = "avg", bucket_mib: float = 25.0) -> None: ...
