//! Bittensor wallets (btcli-compatible files), sr25519 keys, and request signing.
//!
//! One job per module: [`ss58`] addresses, [`keypair`] keys, [`keyfile`] one file's JSON and
//! encryption, [`fs`] private atomic writes, [`nacl`] and [`ansible`] the two encryptions we read,
//! [`store`] the wallet layout, [`password`] the environment password, [`btauth`] request signing
//! and verification, [`v10`] the older axon/dendrite signature.
//!
//! Decrypting or encrypting a coldkey derives an Argon2i key (seconds, 512 MiB): everything here is
//! synchronous, and async code must call it through `tokio::task::spawn_blocking`.

pub mod ansible;
pub mod btauth;
pub mod fs;
pub mod keyfile;
pub mod keypair;
pub mod nacl;
pub mod password;
pub mod ss58;
pub mod store;
pub mod v10;

pub use btauth::{
    AuthError, Clock, ManualClock, NonceSource, SignedHeaders, SystemClock, Verified, Verifier,
    sign_request,
};
pub use keyfile::{Encryption, Keyfile, KeyfileError};
pub use keypair::{CryptoType, KeyError, Keypair};
pub use password::{password_env_var, password_from_env};
pub use store::{HotkeyInfo, Wallet, WalletError, WalletInfo, expand_tilde, list_wallets};
/// Secrets (passwords, mnemonics, keys) come back wrapped in this, wiped when dropped.
pub use zeroize::Zeroizing;
