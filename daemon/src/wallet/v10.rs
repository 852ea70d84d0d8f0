//! The dotted signature of bittensor 9.x/10.x axon/dendrite, for interoperating with old peers.
//!
//! Request: `"{nonce}.{caller}.{callee}.{uuid}.{body_hash}"`; response: the same without the body
//! hash. The body hash is sha3-256 hex over the hex hashes of the synapse's `required_hash_fields`
//! (`sha3_256("")` hex when there are none); computing it needs the Python model's `str()` of each
//! field, so callers pass it in. New code uses [`super::btauth`].

use super::keypair::{self, KeyError, Keypair};
use super::ss58;

/// sha3-256 hex of the empty string: the body hash of a synapse without required hash fields.
pub const EMPTY_BODY_HASH: &str =
    "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";

/// The request string a dendrite signs.
pub fn request_message(
    nonce: u64,
    caller: &str,
    callee: &str,
    uuid: &str,
    body_hash: &str,
) -> String {
    format!("{nonce}.{caller}.{callee}.{uuid}.{body_hash}")
}

/// The response string an axon signs.
pub fn response_message(nonce: u64, caller: &str, callee: &str, uuid: &str) -> String {
    format!("{nonce}.{caller}.{callee}.{uuid}")
}

/// Signs a message; returns the header form "0x" + hex.
pub fn sign(keypair: &Keypair, message: &str) -> Result<String, KeyError> {
    Ok(format!(
        "0x{}",
        hex::encode(keypair.sign(message.as_bytes())?)
    ))
}

/// Verifies a "0x"-hex signature of `message` by the ss58 `signer`. Checks only the signature:
/// nonce freshness and replay are the caller's (see `btauth::Verifier` for those rules).
pub fn verify(signer_ss58: &str, message: &str, signature_hex: &str) -> bool {
    let Ok(public) = ss58::decode(signer_ss58) else {
        return false;
    };
    let sig = signature_hex.strip_prefix("0x").unwrap_or(signature_hex);
    match hex::decode(sig) {
        Ok(sig) => keypair::verify(&public, message.as_bytes(), &sig),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_format_and_roundtrip() {
        let kp = Keypair::generate(12).expect("gen");
        let m = request_message(1, kp.ss58_address(), "B", "u", EMPTY_BODY_HASH);
        assert_eq!(m, format!("1.{}.B.u.{EMPTY_BODY_HASH}", kp.ss58_address()));
        assert_eq!(response_message(1, "A", "B", "u"), "1.A.B.u");
        let sig = sign(&kp, &m).expect("sign");
        assert!(sig.starts_with("0x"));
        assert!(verify(kp.ss58_address(), &m, &sig));
        assert!(!verify(kp.ss58_address(), &format!("{m}x"), &sig));
        assert!(!verify("bad", &m, &sig));
        assert!(!verify(kp.ss58_address(), &m, "0xzz"));
    }
}
