"""Where the validator and the wallet are when the caller does not say: arguments first, then the
environment (``MR_*``, Bittensor's ``BT_*``), then a running devnet (``scripts/devnet up``): its
validator at 127.0.0.2:8091 and its ``client`` wallet, as ``mrctl job demo`` uses them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ._native import hotkey_ss58

DEVNET_VALIDATOR = "127.0.0.2:8091"


@dataclass
class Found:
    validator: str
    validator_hotkey: str
    wallet_path: str
    wallet_name: str
    wallet_hotkey: str
    devnet: Optional[Path]


def _env(*names: str) -> Optional[str]:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def devnet_dir() -> Optional[Path]:
    """``$MR_DEVNET_DIR``, else a ``devnet/`` with wallets in the working directory or above."""
    d = _env("MR_DEVNET_DIR")
    if d:
        return Path(d) if (Path(d) / "wallets").is_dir() else None
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "devnet" / "wallets" / "validator").is_dir():
            return p / "devnet"
    return None


def resolve(
    wallet_name: Optional[str] = None,
    wallet_hotkey: Optional[str] = None,
    wallet_path: Optional[str] = None,
    validator: Optional[str] = None,
    validator_hotkey: Optional[str] = None,
) -> Found:
    devnet = devnet_dir()
    dev_wallets = str(devnet / "wallets") if devnet else None

    wallet_path = wallet_path or _env("MR_WALLET_PATH", "BT_WALLET_PATH")
    wallet_name = wallet_name or _env("MR_WALLET_NAME", "BT_WALLET_NAME")
    wallet_hotkey = wallet_hotkey or _env("MR_WALLET_HOTKEY", "BT_WALLET_HOTKEY") or "default"
    if wallet_name is None:
        if dev_wallets is None:
            raise ValueError(
                "no wallet: pass wallet_name= (and wallet_path=), set BT_WALLET_NAME, or run "
                "scripts/devnet up and start from its directory (or set MR_DEVNET_DIR)"
            )
        wallet_name = "client"
        wallet_path = wallet_path or dev_wallets
    wallet_path = wallet_path or (dev_wallets if wallet_name == "client" and dev_wallets else None)
    wallet_path = wallet_path or "~/.bittensor/wallets"

    validator = validator or _env("MR_VALIDATOR")
    validator_hotkey = validator_hotkey or _env("MR_VALIDATOR_HOTKEY")
    if validator is None or validator_hotkey is None:
        if devnet is None:
            raise ValueError(
                "no validator: pass validator='host:port' and validator_hotkey='ss58', set "
                "MR_VALIDATOR and MR_VALIDATOR_HOTKEY, or run scripts/devnet up"
            )
        validator = validator or DEVNET_VALIDATOR
        validator_hotkey = validator_hotkey or hotkey_ss58(str(devnet / "wallets"), "validator", "default")
    return Found(validator, validator_hotkey, wallet_path, wallet_name, wallet_hotkey, devnet)
