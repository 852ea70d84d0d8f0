//! Weight vectors as subtensor wants them, and the hash-based commit of commit-reveal.

use codec::Encode;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::ChainError;
use super::signer::blake2_256;

/// Salt length the Bittensor SDK uses for commits.
pub const SALT_LEN: usize = 8;

/// Converts float weights into the chain's u16 form (the math lives in
/// [`crate::core::scoring::to_u16_weights`]; this maps its error into a [`ChainError`]).
pub fn to_u16_weights(uids: &[u16], weights: &[f64]) -> Result<(Vec<u16>, Vec<u16>), ChainError> {
    crate::core::scoring::to_u16_weights(uids, weights)
        .map_err(|e| ChainError::Invalid(e.to_string()))
}

/// Weights as fractions summing to 1 (empty when all are zero).
pub fn normalize(weights: &[(u16, u16)]) -> Vec<(u16, f64)> {
    let sum: f64 = weights.iter().map(|(_, w)| f64::from(*w)).sum();
    if sum <= 0.0 {
        return Vec::new();
    }
    weights
        .iter()
        .map(|(u, w)| (*u, f64::from(*w) / sum))
        .collect()
}

/// A random salt for a commit.
pub fn random_salt() -> Vec<u16> {
    let mut rng = rand::thread_rng();
    (0..SALT_LEN).map(|_| rng.r#gen::<u16>()).collect()
}

/// The commit hash of hash-based commit-reveal (this runtime's `commit_weights`):
/// blake2_256(SCALE(hotkey, netuid, uids, values, salt, version_key)).
pub fn commit_hash(
    hotkey: &[u8; 32],
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> [u8; 32] {
    let encoded = (
        hotkey,
        netuid,
        uids.to_vec(),
        values.to_vec(),
        salt.to_vec(),
        version_key,
    )
        .encode();
    blake2_256(&encoded)
}

/// What a validator keeps between committing and revealing (persist it: a restart must reveal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReveal {
    pub netuid: u16,
    /// ss58 of the hotkey that committed.
    pub hotkey: String,
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    pub salt: Vec<u16>,
    pub version_key: u64,
    /// 0x-hex commit hash.
    pub hash: String,
    /// Block at which the commit was made (the best block when it was included).
    pub commit_block: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_upscaled_and_zero_dropped() {
        let (u, w) = to_u16_weights(&[0, 1, 2], &[0.5, 1.0, 0.0]).expect("ok");
        assert_eq!(u, vec![0, 1]);
        assert_eq!(w, vec![32768, 65535]);
        let (u, w) = to_u16_weights(&[3], &[0.0]).expect("ok");
        assert!(u.is_empty() && w.is_empty());
    }

    #[test]
    fn bad_weights_are_refused() {
        assert!(to_u16_weights(&[0, 1], &[1.0]).is_err());
        assert!(to_u16_weights(&[0, 0], &[1.0, 1.0]).is_err());
        assert!(to_u16_weights(&[0], &[f64::NAN]).is_err());
        assert!(to_u16_weights(&[0], &[-1.0]).is_err());
    }

    #[test]
    fn normalized_sum_to_one() {
        let n = normalize(&[(0, 65535), (1, 32768)]);
        let s: f64 = n.iter().map(|(_, w)| w).sum();
        assert!((s - 1.0).abs() < 1e-12);
        assert!((n[0].1 - 65535.0 / 98303.0).abs() < 1e-12);
        assert!(normalize(&[]).is_empty());
    }

    #[test]
    fn commit_hash_is_blake2_of_scale() {
        // SCALE: 32-byte key, u16 LE, then compact-length-prefixed u16 vectors, then u64 LE.
        let hk = [7u8; 32];
        let h = commit_hash(&hk, 3, &[1], &[65535], &[9], 5);
        let mut manual = hk.to_vec();
        manual.extend_from_slice(&3u16.to_le_bytes());
        manual.extend_from_slice(&[4, 1, 0]);
        manual.extend_from_slice(&[4, 0xff, 0xff]);
        manual.extend_from_slice(&[4, 9, 0]);
        manual.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(h, blake2_256(&manual));
        assert_eq!(random_salt().len(), SALT_LEN);
    }
}
