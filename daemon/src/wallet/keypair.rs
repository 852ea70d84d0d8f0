//! sr25519 keys derived the way btcli (Substrate's `sp-core`) derives them.
//!
//! Mnemonic → BIP39 entropy → PBKDF2-HMAC-SHA512(entropy, "mnemonic", 2048)[..32] = mini secret →
//! schnorrkel expansion in Ed25519 mode. This is *not* the standard BIP39 seed; using it would give
//! different addresses than btcli for the same phrase.

use std::fmt;

use bip39::{Language, Mnemonic};
use rand::RngCore;
use schnorrkel::{ExpansionMode, MiniSecretKey, PublicKey, SecretKey, Signature};
use sha2::Sha512;
use zeroize::Zeroizing;

use super::ss58;

/// Substrate's signing context for sr25519; every Bittensor signature uses it.
pub const SIGNING_CONTEXT: &[u8] = b"substrate";
/// Word counts a new mnemonic may have.
pub const MNEMONIC_WORD_COUNTS: [usize; 5] = [12, 15, 18, 21, 24];

/// The `cryptoType` numbers of Bittensor keyfiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoType {
    Ed25519,
    Sr25519,
}

impl CryptoType {
    /// The keyfile number (`cryptoType`).
    pub fn code(self) -> u8 {
        match self {
            CryptoType::Ed25519 => 0,
            CryptoType::Sr25519 => 1,
        }
    }

    /// From the keyfile number.
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(CryptoType::Ed25519),
            1 => Some(CryptoType::Sr25519),
            _ => None,
        }
    }

    /// The scheme name used in `btauth/1` payloads and the `X-Bittensor-Crypto` header.
    pub fn scheme(self) -> &'static str {
        match self {
            CryptoType::Ed25519 => "ed25519",
            CryptoType::Sr25519 => "sr25519",
        }
    }
}

/// Why a key could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid mnemonic: {0}")]
    Mnemonic(String),
    #[error("a new mnemonic has 12, 15, 18, 21 or 24 words, not {0}")]
    WordCount(usize),
    #[error("invalid {what}: expected {expected} bytes, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("invalid {0}: not a valid sr25519 key")]
    InvalidKey(&'static str),
    #[error("invalid hex in {what}: {reason}")]
    Hex { what: &'static str, reason: String },
    #[error("invalid ss58 address {address:?}: {source}")]
    Ss58 {
        address: String,
        source: ss58::Ss58Error,
    },
    #[error("this key has no private part (it was read from a public file or an address)")]
    NoPrivateKey,
}

#[derive(Clone)]
enum Inner {
    Public(PublicKey),
    // Boxed: schnorrkel's Keypair zeroizes its secret on drop; one heap copy, not moved around.
    Secret(Box<schnorrkel::Keypair>),
}

/// An sr25519 key: always a public key, optionally its secret and the mnemonic/seed it came from.
#[derive(Clone)]
pub struct Keypair {
    inner: Inner,
    mini_secret: Option<Zeroizing<[u8; 32]>>,
    mnemonic: Option<Zeroizing<String>>,
    ss58: String,
}

impl fmt::Debug for Keypair {
    // Never print secrets: keys end up in logs via `{:?}` sooner or later.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("ss58", &self.ss58)
            .field("has_private", &self.has_private())
            .finish()
    }
}

/// Parses "0x"-prefixed or bare hex into exactly `N` bytes.
pub(crate) fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], KeyError> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let bytes = hex::decode(s).map_err(|e| KeyError::Hex {
        what,
        reason: e.to_string(),
    })?;
    bytes.as_slice().try_into().map_err(|_| KeyError::Length {
        what,
        expected: N,
        got: bytes.len(),
    })
}

fn parse_mnemonic(phrase: &str) -> Result<Mnemonic, KeyError> {
    // Collapse whitespace so a phrase pasted with newlines or double spaces still works.
    let normalized = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
    Mnemonic::parse_in(Language::English, normalized).map_err(|e| KeyError::Mnemonic(e.to_string()))
}

/// Substrate's mini secret for a mnemonic (empty password): the keyfile's `secretSeed`.
pub fn mini_secret_from_mnemonic(phrase: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let m = parse_mnemonic(phrase)?;
    let entropy = Zeroizing::new(m.to_entropy());
    Ok(mini_secret_from_entropy(&entropy))
}

fn mini_secret_from_entropy(entropy: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut full = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<Sha512>(entropy, b"mnemonic", 2048, full.as_mut());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&full[..32]);
    out
}

/// A new random English mnemonic of `words` words (12, 15, 18, 21 or 24), from the OS RNG.
pub fn generate_mnemonic(words: usize) -> Result<Zeroizing<String>, KeyError> {
    if !MNEMONIC_WORD_COUNTS.contains(&words) {
        return Err(KeyError::WordCount(words));
    }
    let mut entropy = Zeroizing::new(vec![0u8; words / 3 * 4]);
    rand::rngs::OsRng.fill_bytes(&mut entropy);
    let m = Mnemonic::from_entropy_in(Language::English, &entropy)
        .map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(Zeroizing::new(m.to_string()))
}

/// Verifies an sr25519 signature (context `substrate`) by a raw public key.
///
/// Like the Python `Keypair.verify`, a signature over `<Bytes>` + msg + `</Bytes>` is accepted too:
/// browser wallets (polkadot.js `signRaw`) wrap messages that way.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    match PublicKey::from_bytes(public_key) {
        Ok(pk) => verify_with(&pk, message, signature),
        Err(_) => false,
    }
}

fn verify_with(pk: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = Signature::from_bytes(signature) else {
        return false;
    };
    if pk.verify_simple(SIGNING_CONTEXT, message, &sig).is_ok() {
        return true;
    }
    let mut wrapped = Vec::with_capacity(message.len() + 15);
    wrapped.extend_from_slice(b"<Bytes>");
    wrapped.extend_from_slice(message);
    wrapped.extend_from_slice(b"</Bytes>");
    pk.verify_simple(SIGNING_CONTEXT, &wrapped, &sig).is_ok()
}

impl Keypair {
    fn from_schnorrkel(
        kp: schnorrkel::Keypair,
        mini_secret: Option<Zeroizing<[u8; 32]>>,
        mnemonic: Option<Zeroizing<String>>,
    ) -> Self {
        let ss58 = ss58::encode(&kp.public.to_bytes());
        Keypair {
            inner: Inner::Secret(Box::new(kp)),
            mini_secret,
            mnemonic,
            ss58,
        }
    }

    /// A brand-new key and its mnemonic (the only way to recover the key: show it to the user once).
    pub fn generate(words: usize) -> Result<Self, KeyError> {
        let phrase = generate_mnemonic(words)?;
        Self::from_mnemonic(&phrase)
    }

    /// From a BIP39 English mnemonic, as btcli `regen_*key --mnemonic`.
    pub fn from_mnemonic(phrase: &str) -> Result<Self, KeyError> {
        let m = parse_mnemonic(phrase)?;
        let entropy = Zeroizing::new(m.to_entropy());
        let mini = mini_secret_from_entropy(&entropy);
        let mut kp = Self::from_mini_secret(mini.as_ref())?;
        kp.mnemonic = Some(Zeroizing::new(m.to_string()));
        Ok(kp)
    }

    /// From the 32-byte mini secret (`secretSeed`).
    pub fn from_mini_secret(seed: &[u8]) -> Result<Self, KeyError> {
        let mini = MiniSecretKey::from_bytes(seed).map_err(|_| KeyError::Length {
            what: "seed",
            expected: 32,
            got: seed.len(),
        })?;
        let kp = mini.expand_to_keypair(ExpansionMode::Ed25519);
        let mut copy = Zeroizing::new([0u8; 32]);
        copy.copy_from_slice(seed);
        Ok(Self::from_schnorrkel(kp, Some(copy), None))
    }

    /// From a "0x"-prefixed (or bare) hex mini secret, as btcli `--seed`.
    pub fn from_seed_hex(seed_hex: &str) -> Result<Self, KeyError> {
        let seed = Zeroizing::new(parse_hex::<32>("seed", seed_hex)?);
        Self::from_mini_secret(seed.as_ref())
    }

    /// From the 64-byte schnorrkel secret (`privateKey`: scalar then nonce).
    pub fn from_private_key(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 64 {
            return Err(KeyError::Length {
                what: "private key",
                expected: 64,
                got: bytes.len(),
            });
        }
        let secret =
            SecretKey::from_bytes(bytes).map_err(|_| KeyError::InvalidKey("private key"))?;
        Ok(Self::from_schnorrkel(secret.to_keypair(), None, None))
    }

    /// A public-only key from its raw 32 bytes.
    pub fn from_public_key(bytes: &[u8]) -> Result<Self, KeyError> {
        let pk = PublicKey::from_bytes(bytes).map_err(|_| {
            if bytes.len() == 32 {
                KeyError::InvalidKey("public key")
            } else {
                KeyError::Length {
                    what: "public key",
                    expected: 32,
                    got: bytes.len(),
                }
            }
        })?;
        Ok(Keypair {
            ss58: ss58::encode(&pk.to_bytes()),
            inner: Inner::Public(pk),
            mini_secret: None,
            mnemonic: None,
        })
    }

    /// A public-only key from a prefix-42 SS58 address.
    pub fn from_ss58(address: &str) -> Result<Self, KeyError> {
        let key = ss58::decode(address).map_err(|source| KeyError::Ss58 {
            address: address.to_string(),
            source,
        })?;
        Self::from_public_key(&key)
    }

    fn public(&self) -> &PublicKey {
        match &self.inner {
            Inner::Public(pk) => pk,
            Inner::Secret(kp) => &kp.public,
        }
    }

    /// Always sr25519 today; ed25519 keyfiles are refused when read.
    pub fn crypto_type(&self) -> CryptoType {
        CryptoType::Sr25519
    }

    /// The 32-byte public key (= account id).
    pub fn public_key(&self) -> [u8; 32] {
        self.public().to_bytes()
    }

    /// The prefix-42 SS58 address.
    pub fn ss58_address(&self) -> &str {
        &self.ss58
    }

    /// True when the key can sign.
    pub fn has_private(&self) -> bool {
        matches!(self.inner, Inner::Secret(_))
    }

    /// The mnemonic, when the key was made from one.
    pub fn mnemonic(&self) -> Option<&str> {
        self.mnemonic.as_deref().map(String::as_str)
    }

    /// The 32-byte mini secret, when known (from a mnemonic or seed).
    pub fn mini_secret(&self) -> Option<&[u8; 32]> {
        self.mini_secret.as_deref()
    }

    /// The 64-byte schnorrkel secret (`privateKey`), when the key can sign.
    pub fn private_key(&self) -> Option<Zeroizing<[u8; 64]>> {
        match &self.inner {
            Inner::Secret(kp) => Some(Zeroizing::new(kp.secret.to_bytes())),
            Inner::Public(_) => None,
        }
    }

    /// Signs `message` (context `substrate`); signatures are randomized.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        match &self.inner {
            Inner::Secret(kp) => Ok(kp.sign_simple(SIGNING_CONTEXT, message).to_bytes()),
            Inner::Public(_) => Err(KeyError::NoPrivateKey),
        }
    }

    /// Verifies a signature by this key (also the `<Bytes>`-wrapped form, see [`verify`]).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        verify_with(self.public(), message, signature)
    }

    /// The same key without its secret parts.
    pub fn to_public(&self) -> Keypair {
        Keypair {
            inner: Inner::Public(*self.public()),
            mini_secret: None,
            mnemonic: None,
            ss58: self.ss58.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Substrate dev phrase; values from vectors.json (made with bittensor-wallet 4.1.1).
    const DEV: &str = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

    #[test]
    fn dev_phrase_matches_substrate() {
        let kp = Keypair::from_mnemonic(DEV).expect("dev phrase");
        assert_eq!(
            hex::encode(kp.mini_secret().expect("seed")),
            "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e"
        );
        assert_eq!(
            kp.ss58_address(),
            "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"
        );
    }

    #[test]
    fn roundtrips_through_private_key_and_seed() {
        let kp = Keypair::generate(12).expect("generate");
        let words = kp.mnemonic().expect("mnemonic").split(' ').count();
        assert_eq!(words, 12);
        let pk = kp.private_key().expect("private");
        let again = Keypair::from_private_key(pk.as_ref()).expect("from private");
        assert_eq!(again.public_key(), kp.public_key());
        let seed = kp.mini_secret().expect("seed");
        let again = Keypair::from_seed_hex(&format!("0x{}", hex::encode(seed))).expect("seed");
        assert_eq!(again.ss58_address(), kp.ss58_address());
        let public = Keypair::from_ss58(kp.ss58_address()).expect("ss58");
        assert!(!public.has_private());
        assert_eq!(public.public_key(), kp.public_key());
    }

    #[test]
    fn word_counts() {
        for n in MNEMONIC_WORD_COUNTS {
            let m = generate_mnemonic(n).expect("generate");
            assert_eq!(m.split(' ').count(), n);
            Keypair::from_mnemonic(&m).expect("parse back");
        }
        assert!(matches!(
            generate_mnemonic(13),
            Err(KeyError::WordCount(13))
        ));
    }

    #[test]
    fn sign_and_verify() {
        let kp = Keypair::generate(12).expect("generate");
        let sig = kp.sign(b"hello").expect("sign");
        assert!(kp.verify(b"hello", &sig));
        assert!(verify(&kp.public_key(), b"hello", &sig));
        assert!(!kp.verify(b"hellO", &sig));
        assert!(!kp.verify(b"hello", &sig[..63]));
        let wrapped = kp.sign(b"<Bytes>hello</Bytes>").expect("sign");
        assert!(kp.verify(b"hello", &wrapped));
        let other = Keypair::generate(12).expect("generate");
        assert!(!other.verify(b"hello", &sig));
        assert!(matches!(
            kp.to_public().sign(b"x"),
            Err(KeyError::NoPrivateKey)
        ));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            Keypair::from_mnemonic("not a mnemonic"),
            Err(KeyError::Mnemonic(_))
        ));
        // Valid words, bad checksum.
        assert!(Keypair::from_mnemonic(&["abandon"; 12].join(" ")).is_err());
        assert!(matches!(
            Keypair::from_mini_secret(&[1u8; 31]),
            Err(KeyError::Length { got: 31, .. })
        ));
        assert!(matches!(
            Keypair::from_private_key(&[0xffu8; 64]),
            Err(KeyError::InvalidKey(_))
        ));
        assert!(matches!(
            Keypair::from_seed_hex("0xzz"),
            Err(KeyError::Hex { .. })
        ));
        assert!(matches!(
            Keypair::from_ss58("5abc"),
            Err(KeyError::Ss58 { .. })
        ));
    }

    #[test]
    fn debug_hides_secrets() {
        let kp = Keypair::from_mnemonic(DEV).expect("dev phrase");
        let s = format!("{kp:?}");
        assert!(!s.contains("bottom"));
        assert!(s.contains(kp.ss58_address()));
    }
}
