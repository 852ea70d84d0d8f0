//! Checks that serde's types cannot express: ranges, URL schemes, names that must be file names.

use super::model::{Config, NETWORKS};

/// One value that parsed but is not allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub value: String,
    pub expected: String,
}

fn problem(key: &str, value: impl std::fmt::Display, expected: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        value: format!("{value}"),
        expected: expected.into(),
    }
}

fn is_ws_url(s: &str) -> bool {
    let rest = s.strip_prefix("ws://").or_else(|| s.strip_prefix("wss://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

fn is_file_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    out: &mut Vec<Problem>,
    key: &str,
    v: T,
    lo: T,
    hi: T,
) {
    if v < lo || v > hi {
        out.push(problem(key, v, format!("a number from {lo} to {hi}")));
    }
}

/// Every problem in a config, in key order.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();

    for (key, v) in [
        ("wallet.name", &c.wallet.name),
        ("wallet.hotkey", &c.wallet.hotkey),
    ] {
        if !is_file_name(v) {
            out.push(problem(
                key,
                format!("{v:?}"),
                "a non-empty name without `/`",
            ));
        }
    }

    let net = &c.subtensor.network;
    if !NETWORKS.iter().any(|(n, _)| n == net) && !is_ws_url(net) {
        out.push(problem(
            "subtensor.network",
            format!("{net:?}"),
            "finney, test, archive, local, or a ws:// or wss:// URL",
        ));
    }
    if let Some(ep) = &c.subtensor.chain_endpoint
        && !is_ws_url(ep)
    {
        out.push(problem(
            "subtensor.chain_endpoint",
            format!("{ep:?}"),
            "a ws:// or wss:// URL, e.g. ws://127.0.0.1:9944",
        ));
    }

    in_range(
        &mut out,
        "subtensor.call_timeout_secs",
        c.subtensor.call_timeout_secs,
        1,
        3600,
    );
    in_range(
        &mut out,
        "subtensor.inclusion_timeout_secs",
        c.subtensor.inclusion_timeout_secs,
        1,
        3600,
    );
    if c.subtensor.watchdog_secs != 0 {
        in_range(
            &mut out,
            "subtensor.watchdog_secs",
            c.subtensor.watchdog_secs,
            10,
            3600,
        );
    }

    in_range(
        &mut out,
        "relay.window_blocks",
        c.relay.window_blocks,
        1,
        1024,
    );
    in_range(&mut out, "relay.block_kib", c.relay.block_kib, 4, 64 * 1024);
    in_range(
        &mut out,
        "relay.max_memory_mib",
        c.relay.max_memory_mib,
        1,
        1 << 20,
    );
    in_range(
        &mut out,
        "relay.handshake_timeout_secs",
        c.relay.handshake_timeout_secs,
        1,
        600,
    );
    in_range(
        &mut out,
        "relay.max_conns_per_ip",
        c.relay.max_conns_per_ip,
        1,
        65_535,
    );

    let stake = c.miner.min_validator_stake;
    if !stake.is_finite() || stake < 0.0 {
        out.push(problem(
            "miner.min_validator_stake",
            stake,
            "a number of TAO, 0 or more",
        ));
    }

    in_range(
        &mut out,
        "miner.session_time_secs",
        c.miner.session_time_secs,
        10,
        86_400,
    );
    in_range(
        &mut out,
        "axon.max_request_kib",
        c.axon.max_request_kib,
        1,
        65_536,
    );
    in_range(&mut out, "axon.rate_burst", c.axon.rate_burst, 1, 1_000_000);
    let per_sec = c.axon.rate_per_sec;
    if !(per_sec.is_finite() && per_sec > 0.0) {
        out.push(problem(
            "axon.rate_per_sec",
            per_sec,
            "calls per second above 0, e.g. 20",
        ));
    }
    in_range(
        &mut out,
        "validator.sync_interval_blocks",
        c.validator.sync_interval_blocks,
        1,
        100_000,
    );
    in_range(
        &mut out,
        "validator.miner_timeout_secs",
        c.validator.miner_timeout_secs,
        1,
        300,
    );
    in_range(
        &mut out,
        "validator.job_ttl_secs",
        c.validator.job_ttl_secs,
        10,
        86_400,
    );

    let rate = c.validator.sample_rate;
    if !(rate > 0.0 && rate <= 1.0) {
        out.push(problem(
            "validator.sample_rate",
            rate,
            "a fraction above 0 and at most 1, e.g. 0.01",
        ));
    }
    in_range(
        &mut out,
        "validator.max_job_mib",
        c.validator.max_job_mib,
        1,
        1 << 20,
    );

    let alpha = c.validator.ema_alpha;
    if !(alpha > 0.0 && alpha <= 1.0) {
        out.push(problem(
            "validator.ema_alpha",
            alpha,
            "a fraction above 0 and at most 1, e.g. 0.1",
        ));
    }
    in_range(
        &mut out,
        "validator.weights_interval_blocks",
        c.validator.weights_interval_blocks,
        1,
        100_000,
    );
    in_range(
        &mut out,
        "validator.score_window_secs",
        c.validator.score_window_secs,
        60,
        30 * 86_400,
    );
    let v = &c.validator;
    for (key, w) in [
        ("validator.score_upload", v.score_upload),
        ("validator.score_download", v.score_download),
        ("validator.score_latency", v.score_latency),
        ("validator.score_capacity", v.score_capacity),
    ] {
        if !(w.is_finite() && w >= 0.0) {
            out.push(problem(key, w, "a weight, 0 or more, e.g. 0.4"));
        }
    }
    if v.score_upload + v.score_download + v.score_latency + v.score_capacity <= 0.0 {
        out.push(problem(
            "validator.score_upload",
            v.score_upload,
            "at least one of score_upload, score_download, score_latency, score_capacity above 0",
        ));
    }
    in_range(&mut out, "validator.spares", v.spares, 0, 8);
    in_range(
        &mut out,
        "validator.benchmark_retries",
        v.benchmark_retries,
        1,
        100,
    );
    in_range(
        &mut out,
        "validator.benchmark_report_secs",
        v.benchmark_report_secs,
        10,
        86_400,
    );
    in_range(
        &mut out,
        "validator.max_benchmark_mib",
        v.max_benchmark_mib,
        1,
        64 * 1024,
    );

    in_range(&mut out, "bench.mib", c.bench.mib, 1, 64 * 1024);
    in_range(&mut out, "bench.peers", c.bench.peers, 1, 64);
    in_range(
        &mut out,
        "bench.interval_secs",
        c.bench.interval_secs,
        1,
        86_400,
    );
    in_range(
        &mut out,
        "bench.backoff_initial_secs",
        c.bench.backoff_initial_secs,
        1,
        3_600,
    );
    in_range(
        &mut out,
        "bench.backoff_max_secs",
        c.bench.backoff_max_secs,
        c.bench.backoff_initial_secs.max(1),
        86_400,
    );
    if let Some(v) = &c.bench.validator
        && v.rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        out.push(problem(
            "bench.validator",
            v,
            "host:port of the validator's axon, e.g. 203.0.113.7:8091",
        ));
    }
    if let Some(h) = &c.bench.validator_hotkey
        && crate::wallet::ss58::decode(h).is_err()
    {
        out.push(problem(
            "bench.validator_hotkey",
            h,
            "the validator's hotkey as an ss58 address",
        ));
    }

    if let Some(addr) = c.admin.addr
        && !addr.ip().is_loopback()
        && !c.admin.allow_remote
    {
        out.push(problem(
            "admin.addr",
            addr,
            "a loopback address such as 127.0.0.1:7070 (set admin.allow_remote = true to expose the admin API)",
        ));
    }

    if let Some(n) = c.logging.max_files {
        in_range(&mut out, "logging.max_files", n, 1, 10_000);
    }

    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Config::default()), vec![]);
    }

    #[test]
    fn urls() {
        assert!(is_ws_url("ws://127.0.0.1:9944"));
        assert!(is_ws_url("wss://entrypoint-finney.opentensor.ai:443"));
        assert!(!is_ws_url("http://x"));
        assert!(!is_ws_url("ws://"));
        assert!(!is_ws_url("ws:///path"));
    }

    #[test]
    fn each_bad_value_is_named() {
        let mut c = Config::default();
        c.wallet.name = "a/b".into();
        c.subtensor.network = "mainnet".into();
        c.relay.window_blocks = 0;
        c.validator.sample_rate = 1.5;
        c.admin.addr = Some("0.0.0.0:7070".parse().unwrap());
        let keys: Vec<String> = validate(&c).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "wallet.name",
                "subtensor.network",
                "relay.window_blocks",
                "validator.sample_rate",
                "admin.addr"
            ]
        );
        c.admin.allow_remote = true;
        assert_eq!(validate(&c).len(), 4);
    }
}
