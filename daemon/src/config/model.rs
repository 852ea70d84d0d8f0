//! The configuration structs, one per TOML section, with their defaults.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[wallet]`: which Bittensor wallet and hotkey this process uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    /// Wallet (coldkey) name: the folder under `path`.
    pub name: String,
    /// Hotkey name: the file under `<path>/<name>/hotkeys/`.
    pub hotkey: String,
    /// Folder holding wallets; `~` is expanded.
    pub path: PathBuf,
}

impl Default for WalletConfig {
    fn default() -> Self {
        WalletConfig {
            name: "default".into(),
            hotkey: "default".into(),
            path: PathBuf::from("~/.bittensor/wallets"),
        }
    }
}
