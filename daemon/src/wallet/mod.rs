//! Bittensor wallets (btcli-compatible files), sr25519 keys, and request signing.
