//! SS58 addresses (Substrate's base58 with a blake2b checksum), as Bittensor prints account ids.
//!
//! Only 32-byte account ids and one-byte prefixes (0..=63) are supported: that covers every
//! Bittensor address (prefix 42) and keeps the two-byte prefix encoding out until someone needs it.

use blake2::{Blake2b512, Digest};

/// Bittensor's (and generic Substrate's) address prefix.
pub const BITTENSOR_PREFIX: u8 = 42;

const CHECKSUM_PREIMAGE: &[u8] = b"SS58PRE";
const CHECKSUM_LEN: usize = 2;
const KEY_LEN: usize = 32;

/// Why a string is not an SS58 address we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ss58Error {
    #[error("not base58: {0}")]
    Base58(String),
    #[error("wrong length: {0} bytes decoded, expected 35 (prefix, 32-byte key, checksum)")]
    Length(usize),
    #[error("unsupported SS58 prefix byte {0} (only one-byte prefixes 0..=63 are supported)")]
    UnsupportedPrefix(u8),
    #[error("SS58 prefix {found}, expected {expected}")]
    WrongPrefix { expected: u8, found: u8 },
    #[error("checksum mismatch (mistyped address?)")]
    Checksum,
}

fn checksum(prefix_and_key: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = Blake2b512::new();
    h.update(CHECKSUM_PREIMAGE);
    h.update(prefix_and_key);
    let out = h.finalize();
    [out[0], out[1]]
}

/// Encodes a 32-byte public key with prefix 42.
pub fn encode(public_key: &[u8; 32]) -> String {
    raw_encode(public_key, BITTENSOR_PREFIX)
}

/// Encodes a 32-byte public key with a one-byte prefix (0..=63).
pub fn encode_with_prefix(public_key: &[u8; 32], prefix: u8) -> Result<String, Ss58Error> {
    if prefix > 63 {
        return Err(Ss58Error::UnsupportedPrefix(prefix));
    }
    Ok(raw_encode(public_key, prefix))
}

fn raw_encode(public_key: &[u8; 32], prefix: u8) -> String {
    let mut buf = Vec::with_capacity(1 + KEY_LEN + CHECKSUM_LEN);
    buf.push(prefix);
    buf.extend_from_slice(public_key);
    let sum = checksum(&buf);
    buf.extend_from_slice(&sum);
    bs58::encode(buf).into_string()
}

/// Decodes an address of any one-byte prefix, returning (prefix, public key).
pub fn decode_any(address: &str) -> Result<(u8, [u8; 32]), Ss58Error> {
    let raw = bs58::decode(address.trim())
        .into_vec()
        .map_err(|e| Ss58Error::Base58(e.to_string()))?;
    if raw.len() != 1 + KEY_LEN + CHECKSUM_LEN {
        return Err(Ss58Error::Length(raw.len()));
    }
    let prefix = raw[0];
    if prefix > 63 {
        return Err(Ss58Error::UnsupportedPrefix(prefix));
    }
    let (body, sum) = raw.split_at(1 + KEY_LEN);
    if checksum(body) != sum {
        return Err(Ss58Error::Checksum);
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&body[1..]);
    Ok((prefix, key))
}

/// Decodes a Bittensor address (prefix 42) to its public key, verifying the checksum.
pub fn decode(address: &str) -> Result<[u8; 32], Ss58Error> {
    let (prefix, key) = decode_any(address)?;
    if prefix != BITTENSOR_PREFIX {
        return Err(Ss58Error::WrongPrefix {
            expected: BITTENSOR_PREFIX,
            found: prefix,
        });
    }
    Ok(key)
}

/// True when `address` is a valid prefix-42 address.
pub fn is_valid(address: &str) -> bool {
    decode(address).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Alice (//Alice of the Substrate dev phrase), from vectors.json's extra_uri_vector.
    const ALICE_HEX: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
    const ALICE_SS58: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    fn alice() -> [u8; 32] {
        let mut k = [0u8; 32];
        hex::decode_to_slice(ALICE_HEX, &mut k).expect("hex");
        k
    }

    #[test]
    fn encodes_known_address() {
        assert_eq!(encode(&alice()), ALICE_SS58);
    }

    #[test]
    fn decodes_known_address() {
        assert_eq!(decode(ALICE_SS58), Ok(alice()));
        assert!(is_valid(ALICE_SS58));
    }

    #[test]
    fn rejects_bad_checksum() {
        // Change one character: either the checksum fails or base58 length changes.
        let mut s = ALICE_SS58.to_string();
        s.replace_range(10..11, "x");
        assert!(decode(&s).is_err());
        let mut raw = bs58::decode(ALICE_SS58).into_vec().expect("b58");
        raw[34] ^= 1;
        assert_eq!(
            decode(&bs58::encode(raw).into_string()),
            Err(Ss58Error::Checksum)
        );
    }

    #[test]
    fn rejects_other_prefix_and_garbage() {
        let polkadot = encode_with_prefix(&alice(), 0).expect("prefix 0");
        assert!(encode_with_prefix(&alice(), 64).is_err());
        assert_eq!(decode_any(&polkadot), Ok((0, alice())));
        assert_eq!(
            decode(&polkadot),
            Err(Ss58Error::WrongPrefix {
                expected: 42,
                found: 0
            })
        );
        assert!(matches!(decode("0OIl"), Err(Ss58Error::Base58(_))));
        assert!(matches!(decode("5Grwva"), Err(Ss58Error::Length(_))));
        assert!(matches!(decode(""), Err(Ss58Error::Length(0))));
    }
}
