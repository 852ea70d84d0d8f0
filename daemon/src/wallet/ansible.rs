//! Legacy `$ANSIBLE_VAULT` keyfiles (bittensor before the `$NACL` format): read only.
//!
//! Vault 1.1/1.2 with AES256: the body is hex of "hex(salt)\nhex(hmac)\nhex(ciphertext)";
//! PBKDF2-HMAC-SHA256(password, salt, 10000) gives 80 bytes = AES key ‖ HMAC key ‖ CTR IV;
//! the HMAC-SHA256 is over the ciphertext; the plaintext is PKCS#7 padded.

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The file prefix that marks an ansible vault.
pub const PREFIX: &[u8] = b"$ANSIBLE_VAULT";
const PBKDF2_ROUNDS: u32 = 10_000;

/// Why a vault could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("not an ansible vault")]
    NotVault,
    #[error("unsupported ansible vault header {0:?} (only 1.1 and 1.2 with AES256 are read)")]
    UnsupportedHeader(String),
    #[error("malformed ansible vault: {0}")]
    Malformed(&'static str),
    #[error("wrong password, or the vault is corrupted (HMAC mismatch)")]
    WrongPassword,
}

/// True when `data` starts with `$ANSIBLE_VAULT`.
pub fn is_vault(data: &[u8]) -> bool {
    data.starts_with(PREFIX)
}

/// Decrypts a whole vault file with the password (UTF-8 bytes).
pub fn decrypt(data: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if !is_vault(data) {
        return Err(VaultError::NotVault);
    }
    let text = std::str::from_utf8(data).map_err(|_| VaultError::Malformed("not text"))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().trim();
    let fields: Vec<&str> = header.split(';').collect();
    let version_ok = matches!(fields.get(1), Some(&"1.1") | Some(&"1.2"));
    if !version_ok || fields.get(2).map(|c| c.trim()) != Some("AES256") {
        return Err(VaultError::UnsupportedHeader(header.to_string()));
    }
    let hex_body: String = lines.map(str::trim).collect();
    let inner = hex::decode(hex_body).map_err(|_| VaultError::Malformed("body is not hex"))?;
    let inner = std::str::from_utf8(&inner).map_err(|_| VaultError::Malformed("inner not text"))?;
    let mut parts = inner.split('\n');
    let mut next_hex = |what| -> Result<Vec<u8>, VaultError> {
        let part = parts.next().ok_or(VaultError::Malformed(what))?;
        hex::decode(part.trim()).map_err(|_| VaultError::Malformed(what))
    };
    let salt = next_hex("salt")?;
    let mac = next_hex("hmac")?;
    let ciphertext = next_hex("ciphertext")?;
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(VaultError::Malformed(
            "ciphertext length is not a multiple of 16",
        ));
    }

    let mut derived = Zeroizing::new([0u8; 80]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, PBKDF2_ROUNDS, derived.as_mut());
    let (aes_key, rest) = derived.split_at(32);
    let (hmac_key, iv) = rest.split_at(32);

    let mut verifier = <Hmac<Sha256> as Mac>::new_from_slice(hmac_key)
        .map_err(|_| VaultError::Malformed("hmac key"))?;
    verifier.update(&ciphertext);
    verifier
        .verify_slice(&mac)
        .map_err(|_| VaultError::WrongPassword)?;

    let mut plain = Zeroizing::new(ciphertext);
    let mut cipher = ctr::Ctr128BE::<Aes256>::new(aes_key.into(), iv.into());
    cipher.apply_keystream(&mut plain);

    let pad = usize::from(*plain.last().ok_or(VaultError::Malformed("empty"))?);
    let len = plain.len();
    if pad == 0
        || pad > 16
        || pad > len
        || plain[len - pad..].iter().any(|&b| usize::from(b) != pad)
    {
        return Err(VaultError::Malformed("bad padding"));
    }
    plain.truncate(len - pad);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_vaults_and_bad_headers() {
        assert!(matches!(decrypt(b"{}", b"pw"), Err(VaultError::NotVault)));
        assert!(matches!(
            decrypt(b"$ANSIBLE_VAULT;1.0;AES\n00", b"pw"),
            Err(VaultError::UnsupportedHeader(_))
        ));
        assert!(matches!(
            decrypt(b"$ANSIBLE_VAULT;1.1;AES256\nzz", b"pw"),
            Err(VaultError::Malformed(_))
        ));
        // hex("00\n00") : salt and hmac but no ciphertext.
        let body = hex::encode("00\n00");
        let data = format!("$ANSIBLE_VAULT;1.1;AES256\n{body}");
        assert!(matches!(
            decrypt(data.as_bytes(), b"pw"),
            Err(VaultError::Malformed(_))
        ));
    }
}
