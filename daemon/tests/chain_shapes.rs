//! Offline: the calls and storage entries the chain client uses, checked against the pinned
//! dev runtime's metadata (spec 218) and against mainnet's (spec 365), whose shapes differ.

use mapreduce::chain::ChainError;
use mapreduce::chain::dev::spec_dir;
use mapreduce::chain::shape::{self, ADMIN_UTILS, SUBTENSOR, account, u, u16_vec};
use mapreduce::chain::types::RuntimeVersion;
use subxt::Metadata;
use subxt::dynamic::Value;

fn load(file: &str) -> Metadata {
    let dir = spec_dir().expect("shared/chain (set MR_SUBTENSOR_SPEC_DIR)");
    let bytes = std::fs::read(dir.join(file)).expect("metadata file");
    Metadata::decode_from(&bytes[..]).expect("metadata decodes")
}

fn rt(v: u32) -> RuntimeVersion {
    RuntimeVersion {
        spec_name: "node-subtensor".into(),
        spec_version: v,
        transaction_version: 1,
    }
}

/// Every call the client makes, built as the client builds it.
fn build_all(meta: &Metadata, rt: &RuntimeVersion) -> Vec<(&'static str, Result<(), ChainError>)> {
    let hk = [1u8; 32];
    let b = |pallet: &'static str,
             call: &'static str,
             args: Vec<shape::Arg>,
             defaults: Vec<shape::Arg>| {
        shape::build_call(meta, rt, pallet, call, args, defaults).map(|_| ())
    };
    vec![
        (
            "serve_axon",
            b(
                SUBTENSOR,
                "serve_axon",
                vec![
                    ("netuid", u(1u16)),
                    ("version", u(1u32)),
                    ("ip", u(0x7f00_0002u128)),
                    ("port", u(8091u16)),
                    ("ip_type", u(4u8)),
                    ("protocol", u(4u8)),
                ],
                vec![("placeholder1", u(0u8)), ("placeholder2", u(0u8))],
            ),
        ),
        (
            "set_weights",
            b(
                SUBTENSOR,
                "set_weights",
                vec![
                    ("netuid", u(1u16)),
                    ("dests", u16_vec(&[0, 1])),
                    ("weights", u16_vec(&[65535, 1])),
                    ("version_key", u(7u64)),
                ],
                vec![],
            ),
        ),
        (
            "commit_weights",
            b(
                SUBTENSOR,
                "commit_weights",
                vec![
                    ("netuid", u(1u16)),
                    ("commit_hash", Value::from_bytes([9u8; 32])),
                ],
                vec![],
            ),
        ),
        (
            "reveal_weights",
            b(
                SUBTENSOR,
                "reveal_weights",
                vec![
                    ("netuid", u(1u16)),
                    ("uids", u16_vec(&[0])),
                    ("values", u16_vec(&[1])),
                    ("salt", u16_vec(&[1, 2])),
                    ("version_key", u(0u64)),
                ],
                vec![],
            ),
        ),
        (
            "burned_register",
            b(
                SUBTENSOR,
                "burned_register",
                vec![("netuid", u(1u16)), ("hotkey", account(hk))],
                vec![],
            ),
        ),
        (
            "register_network",
            b(
                SUBTENSOR,
                "register_network",
                vec![("hotkey", account(hk))],
                vec![("mechid", u(1u16))],
            ),
        ),
        (
            "add_stake",
            b(
                SUBTENSOR,
                "add_stake",
                vec![
                    ("hotkey", account(hk)),
                    ("netuid", u(1u16)),
                    ("amount_staked", u(5u64)),
                ],
                vec![],
            ),
        ),
        (
            "transfer_keep_alive",
            b(
                "Balances",
                "transfer_keep_alive",
                vec![
                    ("dest", Value::unnamed_variant("Id", [account(hk)])),
                    ("value", u(5u64)),
                ],
                vec![],
            ),
        ),
        (
            "sudo(set_tempo)",
            shape::runtime_call_value(
                meta,
                rt,
                ADMIN_UTILS,
                "sudo_set_tempo",
                vec![("netuid", u(1u16)), ("tempo", u(10u16))],
                vec![],
            )
            .and_then(|inner| b("Sudo", "sudo", vec![("call", inner)], vec![])),
        ),
    ]
}

#[test]
fn dev_runtime_has_every_call_and_entry() {
    let meta = load("metadata_v15_spec218.scale");
    for (name, r) in build_all(&meta, &rt(218)) {
        assert!(r.is_ok(), "{name}: {:?}", r.err());
    }
    let problems = shape::storage_problems(&meta, &rt(218));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn mainnet_runtime_builds_the_same_calls() {
    // Mainnet dropped register_network's mechid and wrapped netuids and TAO in newtypes: the
    // metadata-driven builder follows.
    let meta = load("metadata_v16_finney_spec365_from_bittensor-rs-0.1.1.scale");
    for (name, r) in build_all(&meta, &rt(365)) {
        assert!(r.is_ok(), "{name}: {:?}", r.err());
    }
}

#[test]
fn a_shape_mismatch_names_the_call_and_runtime() {
    let meta = load("metadata_v15_spec218.scale");
    // An argument the runtime does not have.
    let e = shape::build_call(
        &meta,
        &rt(218),
        SUBTENSOR,
        "set_weights",
        vec![
            ("netuid", u(1u16)),
            ("dests", u16_vec(&[0])),
            ("weights", u16_vec(&[1])),
            ("version_key", u(0u64)),
            ("mechid", u(0u8)),
        ],
        vec![],
    )
    .expect_err("extra argument");
    let msg = e.to_string();
    assert!(msg.contains("SubtensorModule.set_weights"), "{msg}");
    assert!(msg.contains("node-subtensor spec 218"), "{msg}");
    assert!(msg.contains("mechid"), "{msg}");
    assert!(
        msg.contains("set_weights(netuid: u16, dests: Vec<u16>"),
        "{msg}"
    );

    // An argument the client does not know (here: missing).
    let e = shape::build_call(
        &meta,
        &rt(218),
        SUBTENSOR,
        "register_network",
        vec![("hotkey", account([0; 32]))],
        vec![],
    )
    .expect_err("missing mechid");
    assert!(
        e.to_string().contains("does not know argument `mechid`"),
        "{e}"
    );

    // A value that does not fit the type.
    let e = shape::build_call(
        &meta,
        &rt(218),
        SUBTENSOR,
        "commit_weights",
        vec![
            ("netuid", u(70_000u32)),
            ("commit_hash", Value::from_bytes([0u8; 32])),
        ],
        vec![],
    )
    .expect_err("u16 overflow");
    assert!(
        e.to_string().contains("argument `netuid` does not fit"),
        "{e}"
    );

    // A call the runtime lacks: mainnet's timelocked commits on the dev runtime.
    let e = shape::build_call(
        &meta,
        &rt(218),
        SUBTENSOR,
        "commit_timelocked_weights",
        vec![],
        vec![],
    )
    .expect_err("no CRv4 on spec 218");
    assert!(matches!(e, ChainError::Incompatible { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("has no call commit_timelocked_weights"),
        "{e}"
    );
}
