//! Property tests of every parser that takes bytes from outside the process and of the signatures
//! that protect them (issue 12: cargo-fuzz needs a nightly toolchain, which this project's pinned
//! stable one cannot fetch, so proptest feeds them instead, bounded, in every test run).
//!
//! - job tickets and handshakes: arbitrary bytes never panic and never verify; any change to a
//!   signed field of a valid handshake is refused;
//! - btauth/1 request headers: arbitrary header values never panic and never verify; any change to
//!   the request, the nonce or the signature of a valid one is refused;
//! - configuration: arbitrary file text and flag values never panic; every failure names a key or
//!   the file.
//!
//! The frame decoder and the relay state machine have their own properties beside their code
//! (wire/codec.rs, relay/machine/tests.rs).

use mapreduce::config::Loader;
use mapreduce::wallet::Keypair;
use mapreduce::wallet::btauth::{
    HEADER_CRYPTO, HEADER_HOTKEY, HEADER_NONCE, HEADER_RECEIVER, HEADER_SIGNATURE, HEADER_VERSION,
    ManualClock, SignedHeaders, Verifier, sign_request,
};
use mapreduce::wire::handshake::{now_ms, verify_hello};
use mr_proto::v1::Handshake;
use mr_testkit::fixtures::{SignedHello, key, signed_hello};
use proptest::prelude::*;
use prost::Message;
use std::sync::{Arc, OnceLock};

fn keys() -> &'static SignedHello {
    static K: OnceLock<SignedHello> = OnceLock::new();
    K.get_or_init(signed_hello)
}

fn verify(bytes: &[u8]) -> Result<(u32, u32), String> {
    let k = keys();
    let trusted = k.validator.ss58_address().to_string();
    verify_hello(bytes, &|a| a == trusted, now_ms())
        .map(|(_, rank, shard)| (rank, shard))
        .map_err(|e| e.to_string())
}

#[test]
fn the_valid_handshake_verifies() {
    let k = keys();
    assert_eq!(verify(&k.hello.encode_to_vec()), Ok((1, 0)));
    assert!(!k.peer.ss58_address().is_empty());
}

/// Which signed part of a handshake to change.
#[derive(Debug, Clone)]
enum Tamper {
    TicketByte(usize, u8),
    TicketSignatureByte(usize, u8),
    PeerSignatureByte(usize, u8),
    Rank(u32),
    Shard(u32),
    Nonce(u64),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Tamper::TicketByte(i, x)),
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Tamper::TicketSignatureByte(i, x)),
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Tamper::PeerSignatureByte(i, x)),
        any::<u32>()
            .prop_filter("another rank", |r| *r != 1)
            .prop_map(Tamper::Rank),
        any::<u32>()
            .prop_filter("another shard", |s| *s != 0)
            .prop_map(Tamper::Shard),
        any::<u64>().prop_map(Tamper::Nonce),
    ]
}

fn flip(bytes: &mut [u8], i: usize, x: u8) {
    let n = bytes.len();
    bytes[i % n] ^= x;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(verify(&bytes).is_err());
    }

    #[test]
    fn any_change_to_a_signed_part_is_refused(t in tamper()) {
        let mut hs = keys().hello.clone();
        let nonce = hs.nonce;
        let ticket = hs.ticket.as_mut().expect("ticket");
        match t {
            Tamper::TicketByte(i, x) => flip(&mut ticket.ticket, i, x),
            Tamper::TicketSignatureByte(i, x) => flip(&mut ticket.signature, i, x),
            Tamper::PeerSignatureByte(i, x) => flip(&mut hs.peer_signature, i, x),
            Tamper::Rank(r) => hs.rank = r,
            Tamper::Shard(s) => hs.shard = s,
            Tamper::Nonce(n) => {
                prop_assume!(n != nonce);
                hs.nonce = n;
            }
        }
        prop_assert!(verify(&hs.encode_to_vec()).is_err());
    }

    #[test]
    fn any_byte_flip_of_the_encoding_never_panics(i in any::<usize>(), x in 1..=255u8) {
        // A flip may land in a length or a tag: whatever it decodes to, nothing panics, and
        // the only handshake that can still verify is the unchanged one.
        let mut bytes = keys().hello.encode_to_vec();
        flip(&mut bytes, i, x);
        if let Ok(hs) = Handshake::decode(&bytes[..])
            && verify(&bytes).is_ok()
        {
            prop_assert_eq!(hs, keys().hello.clone());
        }
    }
}

const T0: u64 = 1_700_000_000_000_000_000;

fn btauth_setup() -> (Keypair, Keypair, Verifier) {
    let server = key(10);
    let client = key(11);
    let clock = Arc::new(ManualClock::new(T0));
    let v = Verifier::with_clock(server.ss58_address(), clock);
    (server, client, v)
}

/// Which part of a signed request to change before verifying.
#[derive(Debug, Clone)]
enum Change {
    Body(Vec<u8>),
    Path(String),
    Method(String),
    Nonce(u64),
    SignatureByte(usize, u8),
    Hotkey(u8),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Change::Body),
        "/[a-z./]{0,20}".prop_map(Change::Path),
        "(GET|PUT|DELETE|PATCH)".prop_map(Change::Method),
        (1u64..1_000_000).prop_map(Change::Nonce),
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Change::SignatureByte(i, x)),
        (20u8..200).prop_map(Change::Hotkey),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_btauth_headers_never_verify(
        values in proptest::collection::vec(".{0,80}", 6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let (_, _, v) = btauth_setup();
        let names = [HEADER_VERSION, HEADER_HOTKEY, HEADER_NONCE, HEADER_SIGNATURE,
            HEADER_RECEIVER, HEADER_CRYPTO];
        let pairs: Vec<(&str, &str)> =
            names.iter().copied().zip(values.iter().map(String::as_str)).collect();
        if let Ok(h) = SignedHeaders::from_pairs(&pairs) {
            prop_assert!(v.verify(&h, "POST", "/p", &body).is_err());
        }
    }

    #[test]
    fn one_garbled_header_of_a_valid_request_is_refused(which in 0usize..5, value in ".{0,80}") {
        let (server, client, v) = btauth_setup();
        let h = sign_request(&client, "POST", "/p", b"", Some(server.ss58_address()), T0)
            .expect("sign");
        let mut pairs: Vec<(&'static str, String)> = h.to_pairs();
        prop_assume!(pairs[which].1 != value);
        pairs[which].1 = value;
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Ok(parsed) = SignedHeaders::from_pairs(&borrowed) {
            // Equal after parsing (e.g. "0x" prefix case) is the same request; anything else fails.
            if parsed != h {
                prop_assert!(v.verify(&parsed, "POST", "/p", b"").is_err());
            }
        }
    }

    #[test]
    fn any_change_to_a_signed_request_is_refused(c in change()) {
        let (server, client, v) = btauth_setup();
        let body = b"request body".to_vec();
        let mut h = sign_request(&client, "POST", "/mapreduce.v1.Miner/Status", &body,
            Some(server.ss58_address()), T0).expect("sign");
        let (mut method, mut path, mut sent) = ("POST".to_string(),
            "/mapreduce.v1.Miner/Status".to_string(), body.clone());
        match c {
            Change::Body(b) => { prop_assume!(b != body); sent = b; }
            Change::Path(p) => { prop_assume!(p != path); path = p; }
            Change::Method(m) => method = m,
            Change::Nonce(d) => h.nonce = T0 - d,
            Change::SignatureByte(i, x) => { let n = h.signature.len(); h.signature[i % n] ^= x; }
            Change::Hotkey(n) => h.hotkey = key(n).ss58_address().to_string(),
        }
        prop_assert!(v.verify(&h, &method, &path, &sent).is_err());
    }
}

/// Keys and values the config loader sees from flags (dotted keys, any value).
fn flag() -> impl Strategy<Value = (String, String)> {
    let keys = prop_oneof![
        Just("netuid".to_string()),
        Just("relay.port".to_string()),
        Just("relay.window_blocks".to_string()),
        Just("validator.sample_rate".to_string()),
        Just("subtensor.network".to_string()),
        Just("logging.debug".to_string()),
        "[a-z_]{1,10}\\.[a-z_]{1,12}",
    ];
    (keys, ".{0,24}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_config_files_never_panic(text in "(\\[[a-z]{1,9}\\]\n|[a-z_]{1,12} = [^\n]{0,20}\n|[^\n]{0,30}\n){0,12}") {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).expect("write");
        let res = Loader::new().file(Some(path.clone())).load();
        if let Err(errs) = res {
            let said = errs.to_string();
            prop_assert!(!said.trim().is_empty(), "an empty error for {text:?}");
        }
        // The loader never writes: the file is byte-identical.
        prop_assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
    }

    #[test]
    fn arbitrary_flags_never_panic(flags in proptest::collection::vec(flag(), 0..4)) {
        let values = flags
            .into_iter()
            .map(|(k, v)| (k, figment::value::Value::from(v)))
            .collect();
        if let Err(errs) = Loader::new().flags(values).load() {
            prop_assert!(!errs.to_string().trim().is_empty());
        }
    }
}
