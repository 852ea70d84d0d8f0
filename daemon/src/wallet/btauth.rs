//! `btauth/1` request signing, the scheme of the current Bittensor SDK (`bittensor/http_auth.py`).
//!
//! The caller signs eight lines joined with `\n`: `btauth/1`, the crypto scheme (`sr25519`), the
//! upper-case method, the path with query, the sha256 hex of the raw body, the nonce (ns since the
//! epoch), its own ss58 and the receiver's ss58 (or `-`). Everything travels in `x-bittensor-*`
//! headers (gRPC metadata is lower case; the method is `POST` and the path the gRPC method path).
//!
//! Nothing here knows tonic: headers come in as strings, results go out as types, so a tonic
//! interceptor is a thin wrapper.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::keypair::{self, CryptoType, KeyError, Keypair};
use super::ss58;

/// First line of the signed payload.
pub const PAYLOAD_TAG: &str = "btauth/1";
/// Value of the version header.
pub const VERSION: &str = "1";
pub const HEADER_VERSION: &str = "x-bittensor-version";
pub const HEADER_HOTKEY: &str = "x-bittensor-hotkey";
pub const HEADER_RECEIVER: &str = "x-bittensor-receiver";
pub const HEADER_NONCE: &str = "x-bittensor-nonce";
pub const HEADER_SIGNATURE: &str = "x-bittensor-signature";
pub const HEADER_CRYPTO: &str = "x-bittensor-crypto";

/// How old a nonce may be (the SDK's `max_age_s`).
pub const MAX_AGE: Duration = Duration::from_secs(10);
/// How far ahead of our clock a nonce may be (the SDK's `allowed_skew_s`).
pub const MAX_FUTURE: Duration = Duration::from_secs(2);
/// Default cap of the replay store; see [`Verifier::with_replay_capacity`].
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("malformed header {header}: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    #[error("unsupported btauth version {0:?} (expected \"1\")")]
    UnsupportedVersion(String),
    #[error("unsupported crypto {0:?} (only sr25519)")]
    UnknownCrypto(String),
    #[error("request is for receiver {got:?}, not for us ({expected})")]
    WrongReceiver { expected: String, got: String },
    #[error("stale nonce: {age_ms} ms old (at most {} ms allowed)", MAX_AGE.as_millis())]
    Stale { age_ms: u64 },
    #[error("nonce {ahead_ms} ms in the future (at most {} ms allowed; check the clocks)", MAX_FUTURE.as_millis())]
    Future { ahead_ms: u64 },
    #[error("bad signature")]
    BadSignature,
    #[error("replayed request (this hotkey already used this nonce)")]
    Replayed,
    #[error("too many recent requests to remember; try again shortly")]
    ReplayStoreFull,
}

/// Nanoseconds since the Unix epoch; injectable so tests can pin time.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        // Before 1970 or after 2554 there is no meaningful nonce; 0 makes every nonce "future".
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests, simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_ns: u64) -> Self {
        ManualClock(AtomicU64::new(now_ns))
    }

    pub fn set(&self, now_ns: u64) {
        self.0.store(now_ns, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Strictly increasing nonces from a clock: two requests signed in the same nanosecond (or after
/// the clock stepped back) still get distinct nonces, so the receiver does not see a replay.
#[derive(Debug, Default)]
pub struct NonceSource(AtomicU64);

impl NonceSource {
    pub fn new() -> Self {
        Self::default()
    }

    /// max(now, last + 1).
    pub fn next(&self, clock: &dyn Clock) -> u64 {
        let now = clock.now_ns();
        let mut last = self.0.load(Ordering::SeqCst);
        loop {
            let next = now.max(last.saturating_add(1));
            match self
                .0
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// The signed bytes: eight lines joined with `\n`.
pub fn payload(
    scheme: &str,
    method: &str,
    path: &str,
    body: &[u8],
    nonce_ns: u64,
    sender_ss58: &str,
    receiver_ss58: Option<&str>,
) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    [
        PAYLOAD_TAG,
        scheme,
        &method.to_ascii_uppercase(),
        path,
        &body_hash,
        &nonce_ns.to_string(),
        sender_ss58,
        receiver_ss58.unwrap_or("-"),
    ]
    .join("\n")
}

/// The `x-bittensor-*` headers of one signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Sender's ss58.
    pub hotkey: String,
    /// Receiver's ss58; `None` for requests bound to no receiver (our verifier refuses those).
    pub receiver: Option<String>,
    pub nonce: u64,
    pub signature: Vec<u8>,
    /// `None` means sr25519 (the header is only sent for other schemes).
    pub crypto: Option<String>,
}

impl SignedHeaders {
    /// (lower-case name, value) pairs to put into gRPC metadata or HTTP headers.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (HEADER_VERSION, VERSION.to_string()),
            (HEADER_HOTKEY, self.hotkey.clone()),
            (HEADER_NONCE, self.nonce.to_string()),
            (
                HEADER_SIGNATURE,
                format!("0x{}", hex::encode(&self.signature)),
            ),
        ];
        if let Some(r) = &self.receiver {
            out.push((HEADER_RECEIVER, r.clone()));
        }
        if let Some(c) = &self.crypto {
            out.push((HEADER_CRYPTO, c.clone()));
        }
        out
    }

    /// Parses headers through a lookup by lower-case name (e.g. a tonic `MetadataMap::get` that
    /// returns the value as text). Checks the syntax only; [`Verifier::verify`] checks the rest.
    pub fn from_lookup<'a, F>(get: F) -> Result<Self, AuthError>
    where
        F: Fn(&str) -> Option<&'a str>,
    {
        let required = |name: &'static str| -> Result<&'a str, AuthError> {
            get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or(AuthError::MissingHeader(name))
        };
        let version = required(HEADER_VERSION)?;
        if version != VERSION {
            return Err(AuthError::UnsupportedVersion(version.to_string()));
        }
        let hotkey = required(HEADER_HOTKEY)?.to_string();
        let nonce_text = required(HEADER_NONCE)?;
        let nonce = nonce_text
            .parse::<u64>()
            .map_err(|_| AuthError::Malformed {
                header: HEADER_NONCE,
                reason: format!("{nonce_text:?} is not a decimal nanosecond timestamp"),
            })?;
        let sig_text = required(HEADER_SIGNATURE)?;
        let sig_hex = sig_text.strip_prefix("0x").unwrap_or(sig_text);
        let signature = hex::decode(sig_hex).map_err(|e| AuthError::Malformed {
            header: HEADER_SIGNATURE,
            reason: e.to_string(),
        })?;
        if signature.len() != 64 {
            return Err(AuthError::Malformed {
                header: HEADER_SIGNATURE,
                reason: format!("{} bytes, expected 64", signature.len()),
            });
        }
        let receiver = get(HEADER_RECEIVER)
            .map(str::trim)
            .filter(|r| !r.is_empty() && *r != "-")
            .map(str::to_string);
        let crypto = get(HEADER_CRYPTO)
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Ok(SignedHeaders {
            hotkey,
            receiver,
            nonce,
            signature,
            crypto,
        })
    }

    /// Parses from (name, value) pairs, names compared case-insensitively (HTTP style).
    pub fn from_pairs<'a>(pairs: &'a [(&'a str, &'a str)]) -> Result<Self, AuthError> {
        Self::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        })
    }
}

/// Signs a request: `method` (any case), `path` with query, the raw `body`, the receiver's ss58
/// (None = unbound, which our verifier refuses) and a nonce in ns (see [`NonceSource`]).
/// The scheme line is the key's crypto scheme (`sr25519`), as in the SDK's vectors.
pub fn sign_request(
    keypair: &Keypair,
    method: &str,
    path: &str,
    body: &[u8],
    receiver: Option<&str>,
    nonce_ns: u64,
) -> Result<SignedHeaders, KeyError> {
    let crypto = keypair.crypto_type();
    let msg = payload(
        crypto.scheme(),
        method,
        path,
        body,
        nonce_ns,
        keypair.ss58_address(),
        receiver,
    );
    let signature = keypair.sign(msg.as_bytes())?.to_vec();
    Ok(SignedHeaders {
        hotkey: keypair.ss58_address().to_string(),
        receiver: receiver.map(str::to_string),
        nonce: nonce_ns,
        signature,
        crypto: (crypto != CryptoType::Sr25519).then(|| crypto.scheme().to_string()),
    })
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub hotkey: String,
    pub public_key: [u8; 32],
    pub nonce: u64,
}

/// Remembers (public key, nonce) pairs until they could no longer pass the time window.
/// Entries are kept in arrival order, so pruning pops from the front.
struct ReplayStore {
    seen: HashSet<([u8; 32], u64)>,
    order: VecDeque<(u64, [u8; 32], u64)>,
    capacity: usize,
}

impl ReplayStore {
    fn prune(&mut self, now: u64) {
        while let Some(&(expires, key, nonce)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&(key, nonce));
        }
    }

    fn insert(
        &mut self,
        now: u64,
        expires: u64,
        key: [u8; 32],
        nonce: u64,
    ) -> Result<(), AuthError> {
        self.prune(now);
        if self.seen.contains(&(key, nonce)) {
            return Err(AuthError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            // Fail closed: forgetting a live nonce would let a replay through.
            return Err(AuthError::ReplayStoreFull);
        }
        self.seen.insert((key, nonce));
        self.order.push_back((expires, key, nonce));
        Ok(())
    }
}

/// Checks signed requests addressed to us: receiver, time window, signature, then replay.
///
/// Memory is bounded: each (hotkey, nonce) is kept 12 s (max age + max skew), about 100 bytes
/// each, at most `replay_capacity` of them (default 100 000, ~10 MB, i.e. ~8 000 requests/s
/// sustained). When full, new requests get [`AuthError::ReplayStoreFull`] until entries expire.
pub struct Verifier {
    own_hotkey: String,
    clock: Arc<dyn Clock>,
    max_age_ns: u64,
    max_future_ns: u64,
    replay: Mutex<ReplayStore>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("own_hotkey", &self.own_hotkey)
            .finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Verifier {
    /// A verifier for requests addressed to `own_hotkey_ss58`, on the system clock.
    pub fn new(own_hotkey_ss58: impl Into<String>) -> Self {
        Self::with_clock(own_hotkey_ss58, Arc::new(SystemClock))
    }

    /// Same with an injected clock.
    pub fn with_clock(own_hotkey_ss58: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Verifier {
            own_hotkey: own_hotkey_ss58.into(),
            clock,
            max_age_ns: nanos(MAX_AGE),
            max_future_ns: nanos(MAX_FUTURE),
            replay: Mutex::new(ReplayStore {
                seen: HashSet::new(),
                order: VecDeque::new(),
                capacity: DEFAULT_REPLAY_CAPACITY,
            }),
        }
    }

    /// Caps the number of remembered (hotkey, nonce) pairs.
    pub fn with_replay_capacity(self, capacity: usize) -> Self {
        if let Ok(mut store) = self.replay.lock() {
            store.capacity = capacity.max(1);
        }
        self
    }

    pub fn own_hotkey(&self) -> &str {
        &self.own_hotkey
    }

    /// Pairs currently remembered against replays (for metrics and tests).
    pub fn remembered(&self) -> usize {
        self.replay.lock().map(|s| s.seen.len()).unwrap_or(0)
    }

    /// Checks a parsed request against the request this server received.
    pub fn verify(
        &self,
        headers: &SignedHeaders,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Verified, AuthError> {
        if let Some(c) = &headers.crypto
            && !c.eq_ignore_ascii_case(CryptoType::Sr25519.scheme())
        {
            return Err(AuthError::UnknownCrypto(c.clone()));
        }
        let receiver = headers
            .receiver
            .as_deref()
            .ok_or(AuthError::MissingHeader(HEADER_RECEIVER))?;
        if receiver != self.own_hotkey {
            return Err(AuthError::WrongReceiver {
                expected: self.own_hotkey.clone(),
                got: receiver.to_string(),
            });
        }
        let now = self.clock.now_ns();
        if now > headers.nonce && now - headers.nonce > self.max_age_ns {
            return Err(AuthError::Stale {
                age_ms: (now - headers.nonce) / 1_000_000,
            });
        }
        if headers.nonce > now && headers.nonce - now > self.max_future_ns {
            return Err(AuthError::Future {
                ahead_ms: (headers.nonce - now) / 1_000_000,
            });
        }
        let public_key = ss58::decode(&headers.hotkey).map_err(|e| AuthError::Malformed {
            header: HEADER_HOTKEY,
            reason: e.to_string(),
        })?;
        let msg = payload(
            CryptoType::Sr25519.scheme(),
            method,
            path,
            body,
            headers.nonce,
            &headers.hotkey,
            Some(receiver),
        );
        if !keypair::verify(&public_key, msg.as_bytes(), &headers.signature) {
            return Err(AuthError::BadSignature);
        }
        // Only now, so unsigned junk cannot fill the store.
        let expires = now.saturating_add(self.max_age_ns + self.max_future_ns);
        self.replay
            .lock()
            .map_err(|_| AuthError::ReplayStoreFull)?
            .insert(now, expires, public_key, headers.nonce)?;
        Ok(Verified {
            hotkey: headers.hotkey.clone(),
            public_key,
            nonce: headers.nonce,
        })
    }

    /// Parses headers from a lookup (see [`SignedHeaders::from_lookup`]) and verifies them.
    pub fn verify_lookup<'a, F>(
        &self,
        get: F,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Verified, AuthError>
    where
        F: Fn(&str) -> Option<&'a str>,
    {
        self.verify(&SignedHeaders::from_lookup(get)?, method, path, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_764_100_000_123_456_789;

    fn keys() -> (Keypair, Keypair) {
        (
            Keypair::generate(12).expect("gen"),
            Keypair::generate(12).expect("gen"),
        )
    }

    fn setup() -> (Keypair, Keypair, Arc<ManualClock>, Verifier) {
        let (client, server) = keys();
        let clock = Arc::new(ManualClock::new(T0));
        let v = Verifier::with_clock(server.ss58_address(), clock.clone());
        (client, server, clock, v)
    }

    #[test]
    fn payload_matches_sdk_format() {
        let p = payload("sr25519", "get", "/health", b"", 5, "A", None);
        assert_eq!(
            p,
            "btauth/1\nsr25519\nGET\n/health\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n5\nA\n-"
        );
    }

    #[test]
    fn roundtrip_through_pairs() {
        let (client, server, _clock, v) = setup();
        let h = sign_request(
            &client,
            "post",
            "/x.Y/Z",
            b"body",
            Some(server.ss58_address()),
            T0,
        )
        .expect("sign");
        let pairs = h.to_pairs();
        assert!(pairs.iter().all(|(k, _)| k.starts_with("x-bittensor-")));
        assert!(!pairs.iter().any(|(k, _)| *k == HEADER_CRYPTO));
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let parsed = SignedHeaders::from_pairs(&borrowed).expect("parse");
        assert_eq!(parsed, h);
        let ok = v
            .verify(&parsed, "POST", "/x.Y/Z", b"body")
            .expect("verify");
        assert_eq!(ok.hotkey, client.ss58_address());
        assert_eq!(ok.public_key, client.public_key());
        assert_eq!(v.remembered(), 1);
    }

    #[test]
    fn failure_cases() {
        let (client, server, clock, v) = setup();
        let me = Some(server.ss58_address());
        let sign = |nonce, body: &[u8], receiver| {
            sign_request(&client, "POST", "/p", body, receiver, nonce).expect("sign")
        };
        // Tampered body.
        let h = sign(T0, b"a", me);
        assert_eq!(
            v.verify(&h, "POST", "/p", b"b"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.verify(&h, "POST", "/q", b"a"),
            Err(AuthError::BadSignature)
        );
        // Wrong key: headers claim someone else's hotkey.
        let mut forged = sign(T0 + 1, b"a", me);
        forged.hotkey = server.ss58_address().to_string();
        assert_eq!(
            v.verify(&forged, "POST", "/p", b"a"),
            Err(AuthError::BadSignature)
        );
        // Wrong receiver, and unbound.
        let other = client.ss58_address();
        assert!(matches!(
            v.verify(&sign(T0, b"a", Some(other)), "POST", "/p", b"a"),
            Err(AuthError::WrongReceiver { .. })
        ));
        assert_eq!(
            v.verify(&sign(T0, b"a", None), "POST", "/p", b"a"),
            Err(AuthError::MissingHeader(HEADER_RECEIVER))
        );
        // Time window: exactly 10 s old and 2 s ahead pass, one ns more fails.
        let ten = nanos(MAX_AGE);
        let two = nanos(MAX_FUTURE);
        assert!(
            v.verify(&sign(T0 - ten, b"a", me), "POST", "/p", b"a")
                .is_ok()
        );
        assert!(matches!(
            v.verify(&sign(T0 - ten - 1, b"a", me), "POST", "/p", b"a"),
            Err(AuthError::Stale { age_ms: 10_000 })
        ));
        assert!(
            v.verify(&sign(T0 + two, b"a", me), "POST", "/p", b"a")
                .is_ok()
        );
        assert!(matches!(
            v.verify(&sign(T0 + two + 1, b"a", me), "POST", "/p", b"a"),
            Err(AuthError::Future { .. })
        ));
        // Replay, then forgetting only after the window.
        let h = sign(T0 + 5, b"a", me);
        assert!(v.verify(&h, "POST", "/p", b"a").is_ok());
        assert_eq!(v.verify(&h, "POST", "/p", b"a"), Err(AuthError::Replayed));
        clock.advance(Duration::from_secs(11));
        assert_eq!(
            v.verify(&h, "POST", "/p", b"a"),
            Err(AuthError::Stale { age_ms: 10_999 })
        );
        clock.advance(Duration::from_secs(2));
        // Entries expire 12 s after they were seen; the stale check already refuses the replay.
        let fresh = sign(clock.now_ns(), b"a", me);
        assert!(v.verify(&fresh, "POST", "/p", b"a").is_ok());
        assert_eq!(v.remembered(), 1);
    }

    #[test]
    fn replay_store_is_capped() {
        let (client, server, _clock, v) = setup();
        let v = v.with_replay_capacity(2);
        let me = Some(server.ss58_address());
        for i in 0..2 {
            let h = sign_request(&client, "POST", "/p", b"", me, T0 + i).expect("sign");
            assert!(v.verify(&h, "POST", "/p", b"").is_ok());
        }
        let h = sign_request(&client, "POST", "/p", b"", me, T0 + 2).expect("sign");
        assert_eq!(
            v.verify(&h, "POST", "/p", b""),
            Err(AuthError::ReplayStoreFull)
        );
    }

    #[test]
    fn header_parsing_errors() {
        let base = [
            (HEADER_VERSION, "1"),
            (
                HEADER_HOTKEY,
                "5EZpCAj2ByEiTUCwacXcwh4eC5MfBA9iZQkEWXm2NKGzirgb",
            ),
            (HEADER_NONCE, "17"),
            (HEADER_SIGNATURE, "0x00"),
        ];
        // base with header `name` replaced by `value` (dropped when empty).
        let with = |name: &str, value: &'static str| {
            let mut v: Vec<(&str, &str)> =
                base.iter().filter(|(k, _)| *k != name).copied().collect();
            if let Some((k, _)) = base.iter().find(|(k, _)| *k == name)
                && !value.is_empty()
            {
                v.push((k, value));
            }
            SignedHeaders::from_pairs(&v)
        };
        assert!(matches!(
            with(HEADER_SIGNATURE, "0x00"),
            Err(AuthError::Malformed {
                header: HEADER_SIGNATURE,
                ..
            })
        ));
        assert!(matches!(
            with(HEADER_SIGNATURE, "0xzz"),
            Err(AuthError::Malformed {
                header: HEADER_SIGNATURE,
                ..
            })
        ));
        assert_eq!(
            with(HEADER_VERSION, ""),
            Err(AuthError::MissingHeader(HEADER_VERSION))
        );
        assert_eq!(
            with(HEADER_VERSION, "2"),
            Err(AuthError::UnsupportedVersion("2".into()))
        );
        assert!(matches!(
            with(HEADER_NONCE, "-5"),
            Err(AuthError::Malformed {
                header: HEADER_NONCE,
                ..
            })
        ));
        assert_eq!(
            with(HEADER_HOTKEY, ""),
            Err(AuthError::MissingHeader(HEADER_HOTKEY))
        );
        // Names are case-insensitive in from_pairs (HTTP style).
        let sig = format!("0x{}", "00".repeat(64));
        let upper = [
            ("X-Bittensor-Version", "1"),
            (
                "X-Bittensor-Hotkey",
                "5EZpCAj2ByEiTUCwacXcwh4eC5MfBA9iZQkEWXm2NKGzirgb",
            ),
            ("X-Bittensor-Nonce", "17"),
            ("X-Bittensor-Signature", sig.as_str()),
            ("X-Bittensor-Receiver", "-"),
        ];
        let h = SignedHeaders::from_pairs(&upper).expect("parse");
        assert_eq!((h.nonce, h.receiver, h.signature.len()), (17, None, 64));
    }

    #[test]
    fn unknown_crypto_and_bad_hotkey() {
        let (client, server, _clock, v) = setup();
        let mut h = sign_request(&client, "POST", "/p", b"", Some(server.ss58_address()), T0)
            .expect("sign");
        h.crypto = Some("ed25519".into());
        assert_eq!(
            v.verify(&h, "POST", "/p", b""),
            Err(AuthError::UnknownCrypto("ed25519".into()))
        );
        h.crypto = None;
        h.hotkey = "nonsense".into();
        assert!(matches!(
            v.verify(&h, "POST", "/p", b""),
            Err(AuthError::Malformed {
                header: HEADER_HOTKEY,
                ..
            })
        ));
    }

    #[test]
    fn nonce_source_is_strictly_increasing() {
        let clock = ManualClock::new(100);
        let n = NonceSource::new();
        assert_eq!(n.next(&clock), 100);
        assert_eq!(n.next(&clock), 101);
        clock.set(50);
        assert_eq!(n.next(&clock), 102);
        clock.set(500);
        assert_eq!(n.next(&clock), 500);
        assert!(SystemClock.now_ns() > T0);
    }
}
