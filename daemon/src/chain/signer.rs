//! Signing extrinsics with the wallet's sr25519 keys (an adapter to subxt's `Signer`), and the
//! Substrate development accounts (`//Alice`, ...) that dev chains fund and make sudo.

use schnorrkel::{ExpansionMode, MiniSecretKey, derive::ChainCode};
use subxt::config::SubstrateConfig;
use subxt::utils::{AccountId32, MultiSignature};

use super::error::ChainError;
use crate::wallet::Keypair;
use crate::wallet::keypair::mini_secret_from_mnemonic;

/// Substrate's development mnemonic; `//Alice` etc. are hard derivations of it.
pub const DEV_PHRASE: &str =
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

/// A wallet key that can sign extrinsics.
#[derive(Clone)]
pub struct ChainSigner {
    key: Keypair,
    account: AccountId32,
}

impl std::fmt::Debug for ChainSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSigner")
            .field("ss58", &self.key.ss58_address())
            .finish()
    }
}

impl ChainSigner {
    /// Wraps a key that has its private part (a hotkey, or a decrypted coldkey).
    pub fn new(key: Keypair) -> Result<Self, ChainError> {
        if !key.has_private() {
            return Err(ChainError::CannotSign(key.ss58_address().to_string()));
        }
        let account = AccountId32(key.public_key());
        Ok(ChainSigner { key, account })
    }

    /// A development account: `ChainSigner::dev("Alice")` is `//Alice`.
    pub fn dev(name: &str) -> Result<Self, ChainError> {
        Self::new(dev_keypair(name)?)
    }

    pub fn keypair(&self) -> &Keypair {
        &self.key
    }

    pub fn ss58(&self) -> &str {
        self.key.ss58_address()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }
}

impl subxt::tx::Signer<SubstrateConfig> for ChainSigner {
    fn account_id(&self) -> AccountId32 {
        self.account
    }

    fn sign(&self, signer_payload: &[u8]) -> MultiSignature {
        // `new` refused keys without a private part, so signing cannot fail; if it ever did, an
        // all-zero signature makes the node reject the extrinsic (bad proof) rather than panic.
        let sig = self.key.sign(signer_payload).unwrap_or([0u8; 64]);
        MultiSignature::Sr25519(sig)
    }
}

/// The sr25519 key of a Substrate dev URI `//<name>` (hard derivation from [`DEV_PHRASE`]), as
/// `subkey` and polkadot.js derive it.
pub fn dev_keypair(name: &str) -> Result<Keypair, ChainError> {
    let name = name.trim_start_matches("//");
    if name.is_empty() || name.contains('/') {
        return Err(ChainError::Invalid(format!(
            "dev account {name:?}: expected a single name such as Alice"
        )));
    }
    let mini = mini_secret_from_mnemonic(DEV_PHRASE)
        .map_err(|e| ChainError::Invalid(format!("dev phrase: {e}")))?;
    let mini = MiniSecretKey::from_bytes(mini.as_ref())
        .map_err(|e| ChainError::Invalid(format!("dev seed: {e}")))?;
    let root = mini.expand(ExpansionMode::Ed25519);
    // A hard junction's chain code is the SCALE encoding of the name, zero-padded to 32 bytes.
    let encoded = codec::Encode::encode(&name.to_string());
    let mut cc = [0u8; 32];
    if encoded.len() > 32 {
        // Longer junctions are blake2-256 hashed, as in sp-core.
        cc = blake2_256(&encoded);
    } else {
        cc[..encoded.len()].copy_from_slice(&encoded);
    }
    let (derived, _) = root.hard_derive_mini_secret_key(Some(ChainCode(cc)), b"");
    let secret = derived.expand(ExpansionMode::Ed25519);
    Keypair::from_private_key(&secret.to_bytes())
        .map_err(|e| ChainError::Invalid(format!("dev key {name}: {e}")))
}

/// blake2b with a 32-byte output (Substrate's `blake2_256`).
pub fn blake2_256(data: &[u8]) -> [u8; 32] {
    use blake2::Digest;
    type Blake2b256 = blake2::Blake2b<blake2::digest::consts::U32>;
    Blake2b256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_match_substrate() {
        let alice = dev_keypair("Alice").expect("alice");
        assert_eq!(
            alice.ss58_address(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        let bob = dev_keypair("//Bob").expect("bob");
        assert_eq!(
            bob.ss58_address(),
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
        );
        assert!(dev_keypair("a/b").is_err());
    }

    #[test]
    fn blake2_256_known_vector() {
        // blake2b-256("") from the BLAKE2 reference.
        assert_eq!(
            hex::encode(blake2_256(b"")),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
    }

    #[test]
    fn public_keys_cannot_sign() {
        let alice = dev_keypair("Alice").expect("alice");
        assert!(ChainSigner::new(alice.to_public()).is_err());
        let s = ChainSigner::new(alice).expect("signer");
        let sig = subxt::tx::Signer::<SubstrateConfig>::sign(&s, b"payload");
        match sig {
            MultiSignature::Sr25519(bytes) => assert!(s.keypair().verify(b"payload", &bytes)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
