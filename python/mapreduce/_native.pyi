"""Type stubs of the Rust extension module (python/src/lib.rs)."""

from typing import Any, Literal

__version__: str

class MapReduceError(RuntimeError):
    """Base of every error mapreduce raises from the network."""

class ConnectError(MapReduceError):
    """The validator or a miner could not be reached."""

class JobRefused(MapReduceError):
    """The validator refused a request (not an allowed client, rate limit, bad size, no miners)."""

class JobFailed(MapReduceError):
    """The job ended or a collective failed; the session cannot be used again."""

class MapReduceTimeout(MapReduceError):
    """Not every rank joined in time, or a miner sent nothing before its deadline."""

class WalletError(MapReduceError):
    """A wallet or hotkey could not be read."""

class JobCorrupted(MapReduceError):
    """Live-job verification found a miner's result wrong in this job (the message names the
    miner, shard, operation and block)."""

class Closed(MapReduceError):
    """The process group or session was already destroyed (or never initialised)."""

Dtype = Literal["float32", "float16", "bfloat16"]
Op = Literal["sum", "avg"]

class Key:
    """A hotkey that signs this peer's requests and joins."""

    @staticmethod
    def from_wallet(path: str, name: str, hotkey: str) -> Key: ...
    @staticmethod
    def generate() -> Key: ...
    @property
    def ss58(self) -> str: ...

def hotkey_ss58(path: str, name: str, hotkey: str) -> str:
    """The ss58 address of a wallet's hotkey, from its public file."""

class Session:
    """One job of the validator: `world_size` peers moving tensors of `elements` elements."""

    @staticmethod
    def init(
        validator: str,
        validator_hotkey: str,
        key: Key,
        world_size: int,
        rank: int,
        name: str,
        elements: int,
        dtype: Dtype = "float32",
        join_timeout: float = 60.0,
        call_timeout: float = 10.0,
        miners: int = 0,
    ) -> Session: ...
    def all_reduce(self, tensor: Any, op: Op = "avg") -> None:
        """Reduces a writable C-contiguous buffer (float32; float16 or int16-viewed bfloat16 for
        16-bit sessions) in place, GIL released."""
    def broadcast(self, tensor: Any, src: int = 0) -> None: ...
    def verify(self, timeout: float = 10.0) -> dict[str, Any]:
        """Sends pending evidence, then asks the validator: ``job_id``, ``checked``, ``failed``,
        ``pending``, ``verdict``. Raises JobCorrupted when a miner's result was found wrong."""
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def job_id(self) -> int: ...
    @property
    def elements(self) -> int: ...
    @property
    def dtype(self) -> Dtype: ...
    @property
    def rank(self) -> int: ...
    @property
    def world_size(self) -> int: ...
