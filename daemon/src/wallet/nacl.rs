//! `$NACL` keyfile encryption, as bittensor-wallet (and PyNaCl before it) writes it.
//!
//! File = `$NACL` ‖ nonce (24) ‖ tag (16) ‖ ciphertext, XSalsa20-Poly1305 (NaCl secretbox), with the key
//! from Argon2i v1.3 (8 passes, 512 MiB, 1 lane) over the password and a fixed salt.
//!
//! Key derivation deliberately takes seconds and 512 MiB of memory. The API is synchronous: async
//! callers must run it in `tokio::task::spawn_blocking` and should derive once per process.

use argon2::{Algorithm, Argon2, Params, Version};
use crypto_secretbox::aead::{Aead, AeadCore, KeyInit, OsRng};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use zeroize::Zeroizing;

/// The file prefix that marks NaCl encryption.
pub const PREFIX: &[u8] = b"$NACL";
/// bittensor's fixed Argon2 salt (the same for every wallet: the password is the only secret).
pub const SALT: [u8; 16] = [
    0x13, 0x71, 0x83, 0xdf, 0xf1, 0x5a, 0x09, 0xbc, 0x9c, 0x90, 0xb5, 0x51, 0x87, 0x39, 0xe9, 0xb1,
];
/// libsodium's `OPSLIMIT_SENSITIVE` for argon2i.
pub const ARGON2_PASSES: u32 = 8;
/// libsodium's `MEMLIMIT_SENSITIVE` (512 MiB), in KiB as the argon2 crate counts.
pub const ARGON2_MEMORY_KIB: u32 = 512 * 1024;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why `$NACL` data could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum NaclError {
    #[error("not $NACL data")]
    NotNacl,
    #[error("$NACL data truncated: {0} bytes after the prefix, at least 40 needed")]
    Truncated(usize),
    #[error("decryption failed: wrong password, or the file is corrupted")]
    Decrypt,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("encryption failed")]
    Encrypt,
}

/// A derived secretbox key. Deriving is the slow part; keep one around to decrypt several files.
pub struct NaclKey(Zeroizing<[u8; 32]>);

impl NaclKey {
    /// Argon2i derivation of the password (UTF-8 bytes, as the Python package encodes it).
    /// Slow on purpose (seconds, 512 MiB): never call it on an async worker thread.
    pub fn derive(password: &[u8]) -> Result<Self, NaclError> {
        let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, Some(32))
            .map_err(|e| NaclError::Kdf(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, &SALT, key.as_mut())
            .map_err(|e| NaclError::Kdf(e.to_string()))?;
        Ok(NaclKey(key))
    }

    fn cipher(&self) -> XSalsa20Poly1305 {
        XSalsa20Poly1305::new(self.0.as_ref().into())
    }
}

/// True when `data` starts with `$NACL`.
pub fn is_nacl(data: &[u8]) -> bool {
    data.starts_with(PREFIX)
}

/// Encrypts with a fresh random nonce; returns the whole file content including the prefix.
pub fn encrypt(key: &NaclKey, plaintext: &[u8]) -> Result<Vec<u8>, NaclError> {
    let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
    // crypto_secretbox already lays out tag ‖ ciphertext, exactly NaCl's secretbox format.
    let sealed = key
        .cipher()
        .encrypt(&nonce, plaintext)
        .map_err(|_| NaclError::Encrypt)?;
    let mut out = Vec::with_capacity(PREFIX.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts a whole `$NACL` file content.
pub fn decrypt(key: &NaclKey, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, NaclError> {
    let body = data.strip_prefix(PREFIX).ok_or(NaclError::NotNacl)?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(NaclError::Truncated(body.len()));
    }
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    key.cipher()
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map(Zeroizing::new)
        .map_err(|_| NaclError::Decrypt)
}

/// Derives the key and encrypts (slow: see [`NaclKey::derive`]).
pub fn encrypt_with_password(password: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, NaclError> {
    encrypt(&NaclKey::derive(password)?, plaintext)
}

/// Derives the key and decrypts (slow: see [`NaclKey::derive`]). Checks the layout first so a
/// truncated file fails before the expensive derivation.
pub fn decrypt_with_password(
    password: &[u8],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, NaclError> {
    let body = data.strip_prefix(PREFIX).ok_or(NaclError::NotNacl)?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(NaclError::Truncated(body.len()));
    }
    decrypt(&NaclKey::derive(password)?, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A fast key for layout tests; the real derivation is exercised by the interop tests.
    fn test_key(b: u8) -> NaclKey {
        NaclKey(Zeroizing::new([b; 32]))
    }

    #[test]
    fn roundtrip_and_layout() {
        let k = test_key(7);
        let data = encrypt(&k, b"{\"a\":1}").expect("encrypt");
        assert!(is_nacl(&data));
        assert_eq!(data.len(), PREFIX.len() + NONCE_LEN + TAG_LEN + 7);
        assert_eq!(&*decrypt(&k, &data).expect("decrypt"), b"{\"a\":1}");
        // Two encryptions differ (random nonce).
        assert_ne!(encrypt(&k, b"x").expect("e"), encrypt(&k, b"x").expect("e"));
    }

    #[test]
    fn wrong_key_and_tampering_fail() {
        let data = encrypt(&test_key(1), b"secret").expect("encrypt");
        assert!(matches!(
            decrypt(&test_key(2), &data),
            Err(NaclError::Decrypt)
        ));
        let mut bad = data.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decrypt(&test_key(1), &bad),
            Err(NaclError::Decrypt)
        ));
        assert!(matches!(
            decrypt(&test_key(1), &data[..20]),
            Err(NaclError::Truncated(15))
        ));
        assert!(matches!(
            decrypt(&test_key(1), b"{}"),
            Err(NaclError::NotNacl)
        ));
        assert!(matches!(
            decrypt_with_password(b"pw", b"$NACLshort"),
            Err(NaclError::Truncated(5))
        ));
    }
}
