"""A whole network for the tests, all real processes: the subtensor runtime under chopsticks
(scripts/chain-up), a subnet with funded, registered wallets (`mrd devnet setup`), three `mrd miner`s
and an `mrd validator` on loopback addresses with ports picked by the kernel. Started once per test
session; every process is stopped by pid at the end, even when a test fails.

Binaries: $MR_BIN_DIR, else $CARGO_TARGET_DIR (or ../target) /debug, then /release. With
MR_REQUIRE_PYTHON_DEVNET set (CI), missing binaries or chopsticks fail the tests instead of
skipping them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Chain start, subnet set-up and daemon start each get this long (a loaded 2-core machine is slow).
START_TIMEOUT = 600.0


def _bin_dir() -> Optional[Path]:
    env = os.environ.get("MR_BIN_DIR")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("debug", "release"):
        d = target / profile
        if (d / "mrd").exists() and (d / "mrctl").exists():
            return d
    return None


def require_torch():
    """torch, or a skip; with MR_REQUIRE_TORCH set (CI installs torch), a failure instead."""
    try:
        import torch  # noqa: PLC0415 (optional dependency)
    except ImportError as e:
        if os.environ.get("MR_REQUIRE_TORCH"):
            pytest.fail(f"MR_REQUIRE_TORCH is set but torch does not import: {e}")
        pytest.skip(f"torch is not installed: {e}")
    return torch


def _missing(reason: str):
    if os.environ.get("MR_REQUIRE_PYTHON_DEVNET"):
        pytest.fail(reason)
    pytest.skip(reason)


class Proc:
    """A child whose stdout lines are collected; stopped by pid."""

    def __init__(self, args: List[str], log: Path, env: dict):
        self.log = log
        self.lines: List[str] = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),
            env=env,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_line(self, prefix: str, timeout: float = START_TIMEOUT) -> str:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for l in self.lines:
                    if l.startswith(prefix):
                        return l
                if self.p.poll() is not None:
                    raise RuntimeError(f"{prefix}: exited {self.p.returncode}: {self.log.read_text()[-3000:]}")
                left = end - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {prefix!r} line in {timeout} s: {self.log.read_text()[-3000:]}")
                self.cond.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def _field(line: str, name: str) -> str:
    words = line.split()
    return words[words.index(name) + 1]


@dataclass
class Net:
    validator: str
    validator_hotkey: str
    wallets: Path
    bin: Path
    dir: Path


def _config(dir: Path, name: str, ws: str, ip: str) -> Path:
    path = dir / f"{name}.toml"
    path.write_text(
        f"""netuid = 2
[wallet]
name = "{name}"
hotkey = "default"
path = "{dir / 'wallets'}"
[subtensor]
network = "local"
chain_endpoint = "{ws}"
[axon]
ip = "{ip}"
port = 0
[relay]
ip = "{ip}"
port = 0
[miner]
min_validator_stake = 0.0
[validator]
clients = ["*"]
sync_interval_blocks = 1
db = "{dir / 'validator.sqlite'}"
[admin]
# Each daemon its own operator socket (the default one is shared by every miner of the machine).
socket = "{dir / (name + '.sock')}"
"""
    )
    return path


@pytest.fixture(scope="session")
def net(tmp_path_factory) -> Net:
    bin = _bin_dir()
    if bin is None:
        _missing("no mrd/mrctl built (cargo build -p mapreduce -p mrctl, or set MR_BIN_DIR)")
    chopsticks = Path(os.environ.get("CHOPSTICKS_DIR", Path.home() / ".cache/subtensor-chopsticks"))
    if not (chopsticks / "node_modules/@acala-network/chopsticks").is_dir():
        _missing(f"chopsticks is not installed in {chopsticks} (scripts/chain-up --install)")
    dir = tmp_path_factory.mktemp("net")
    home = dir / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "RUST_LOG": "info"}
    procs: List[Proc] = []
    chain_pid: Optional[int] = None
    try:
        out = subprocess.run(
            [str(ROOT / "scripts/chain-up"), "--port", "0", "--log", str(dir / "chain.log")],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if out.returncode != 0:
            raise RuntimeError(f"chain-up: {out.stderr}")
        pid, ws = out.stdout.split()[:2]
        chain_pid = int(pid)
        wallets = dir / "wallets"
        mrctl = [str(bin / "mrctl"), "--wallet.path", str(wallets)]
        names = ["validator", "miner1", "miner2", "miner3", "client"]
        for n in names:
            for cmd in (["wallet", "new-coldkey", "--no-password"], ["wallet", "new-hotkey"]):
                subprocess.run(
                    mrctl + ["--wallet.name", n, "--wallet.hotkey", "default"] + cmd,
                    check=True, capture_output=True, env=env, timeout=120,
                )
        cfg = _config(dir, "validator", ws, "127.0.0.12")
        subprocess.run(
            [str(bin / "mrd"), "--config", str(cfg), "devnet", "setup",
             "--wallets", "validator,miner1,miner2,miner3"],
            check=True, capture_output=True, env=env, timeout=START_TIMEOUT,
        )
        for i, n in enumerate(["miner1", "miner2", "miner3"]):
            c = _config(dir, n, ws, f"127.0.0.{13 + i}")
            p = Proc([str(bin / "mrd"), "--config", str(c), "miner"], dir / f"{n}.log", env)
            procs.append(p)
        for p in procs:
            p.wait_line("miner ready")
        v = Proc([str(bin / "mrd"), "--config", str(cfg), "validator"], dir / "validator.log", env)
        procs.append(v)
        line = v.wait_line("validator ready")
        import mapreduce

        vhotkey = mapreduce.hotkey_ss58(str(wallets), "validator", "default")
        yield Net(_field(line, "axon"), vhotkey, wallets, bin, dir)
    finally:
        for p in reversed(procs):
            p.stop()
        if chain_pid is not None:
            _stop_pid(chain_pid)


def _stop_pid(pid: int) -> None:
    """Stops a process that is not our child (chain-up detached it): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
