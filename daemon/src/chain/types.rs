//! What the chain module returns: plain data, serializable, no subxt types.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Rao per TAO (and per alpha): balances on chain are integers with 9 decimals.
pub const RAO_PER_TAO: u64 = 1_000_000_000;

/// An amount in rao (1e-9 TAO, or 1e-9 alpha for subnet stake), shown as TAO with 9 decimals.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Rao(pub u64);

impl Rao {
    /// From a TAO amount (rounded down to whole rao; negative and NaN give 0).
    pub fn from_tao(tao: f64) -> Rao {
        if tao.is_finite() && tao > 0.0 {
            Rao((tao * RAO_PER_TAO as f64) as u64)
        } else {
            Rao(0)
        }
    }

    /// As a float TAO amount (for display and ratios).
    pub fn as_tao(self) -> f64 {
        self.0 as f64 / RAO_PER_TAO as f64
    }
}

impl fmt::Display for Rao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.0 / RAO_PER_TAO, self.0 % RAO_PER_TAO)
    }
}

/// What `mrctl chain info` shows of the endpoint and runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainInfo {
    pub endpoint: String,
    /// `system_chain`, e.g. "Bittensor" or "Development".
    pub chain: String,
    /// Runtime spec name, e.g. "node-subtensor".
    pub spec_name: String,
    pub spec_version: u32,
    pub transaction_version: u32,
    /// Best block at the time of the call.
    pub block: u64,
    /// Genesis hash, 0x-hex.
    pub genesis_hash: String,
    /// Token symbol and decimals from `system_properties`, when the node reports them.
    pub token_symbol: Option<String>,
    pub token_decimals: Option<u32>,
}

/// The subset of the runtime version that decides call shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeVersion {
    pub spec_name: String,
    pub spec_version: u32,
    pub transaction_version: u32,
}

impl fmt::Display for RuntimeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} spec {}", self.spec_name, self.spec_version)
    }
}

/// Protocol numbers of `AxonInfo.protocol` as the Bittensor SDK writes them.
pub const AXON_PROTOCOL_TCP: u8 = 4;

/// An axon as served on chain (`SubtensorModule.Axons`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxonInfo {
    /// Block at which it was last served.
    pub block: u64,
    pub version: u32,
    pub ip: IpAddr,
    pub port: u16,
    /// 4 or 6.
    pub ip_type: u8,
    pub protocol: u8,
}

impl AxonInfo {
    /// True when the neuron never served an axon (the chain's default, all zeroes).
    pub fn is_served(&self) -> bool {
        !(self.port == 0 && self.ip.is_unspecified())
    }

    /// `ip:port`, with brackets for IPv6.
    pub fn addr(&self) -> String {
        match self.ip {
            IpAddr::V4(v4) => format!("{v4}:{}", self.port),
            IpAddr::V6(v6) => format!("[{v6}]:{}", self.port),
        }
    }
}

/// The chain stores an IP as u128 plus a type (4 or 6).
pub fn ip_from_chain(ip: u128, ip_type: u8) -> IpAddr {
    if ip_type == 6 {
        IpAddr::V6(Ipv6Addr::from(ip))
    } else {
        IpAddr::V4(Ipv4Addr::from((ip & 0xffff_ffff) as u32))
    }
}

/// An IP as the chain stores it: (u128, 4 | 6).
pub fn ip_to_chain(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 4),
        IpAddr::V6(v6) => (u128::from(v6), 6),
    }
}

/// One neuron (uid) of a subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neuron {
    pub uid: u16,
    /// ss58 (prefix 42).
    pub hotkey: String,
    /// ss58 of the coldkey owning the hotkey.
    pub coldkey: String,
    /// None when the neuron never served an axon.
    pub axon: Option<AxonInfo>,
    /// Stake on this subnet, in alpha (rao units).
    pub alpha_stake: Rao,
    /// Stake on the root subnet, in TAO (rao units).
    pub tao_stake: Rao,
    pub validator_permit: bool,
    pub active: bool,
    /// Block of the neuron's last weight set (or registration).
    pub last_update: u64,
    /// Incentive as a fraction of u16::MAX, i.e. 0..=1.
    pub incentive: f64,
    /// Emission per tempo, in rao.
    pub emission: Rao,
    /// Dividends as a fraction 0..=1.
    pub dividends: f64,
    pub registration_block: u64,
}

/// A subnet's neurons at one block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metagraph {
    pub netuid: u16,
    pub block: u64,
    pub neurons: Vec<Neuron>,
}

impl Metagraph {
    pub fn by_hotkey(&self, ss58: &str) -> Option<&Neuron> {
        self.neurons.iter().find(|n| n.hotkey == ss58)
    }

    pub fn by_uid(&self, uid: u16) -> Option<&Neuron> {
        self.neurons.iter().find(|n| n.uid == uid)
    }
}

/// The hyperparameters a validator and miner act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hyperparameters {
    pub netuid: u16,
    pub tempo: u16,
    /// Blocks between two weight sets of one hotkey.
    pub weights_rate_limit: u64,
    pub commit_reveal_enabled: bool,
    /// Epochs after the commit's epoch at which the reveal is due (hash-based commit-reveal).
    pub commit_reveal_period: u64,
    pub min_allowed_weights: u16,
    /// Largest single weight, as a fraction of u16::MAX.
    pub max_weight_limit: u16,
    pub immunity_period: u16,
    /// Version key the subnet requires in set_weights (ours must be ≥ it).
    pub weights_version_key: u64,
    /// Current burn to register, in rao.
    pub burn: Rao,
    pub max_allowed_uids: u16,
}

/// A hotkey's standing for weight setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsStatus {
    pub netuid: u16,
    pub uid: u16,
    pub current_block: u64,
    /// Block of the last weight set (0 = never).
    pub last_update: u64,
    pub rate_limit: u64,
    /// First block at which a set_weights (or commit) is accepted.
    pub next_allowed_block: u64,
}

impl WeightsStatus {
    pub fn can_set_now(&self) -> bool {
        self.current_block >= self.next_allowed_block
    }
}

/// A pending hash commit of weights (`SubtensorModule.WeightCommits`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightCommit {
    /// 0x-hex blake2-256 hash.
    pub hash: String,
    pub commit_block: u64,
    pub first_reveal_block: u64,
    pub last_reveal_block: u64,
}

/// What a write returns once included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    /// Pallet.call that was submitted.
    pub call: String,
    /// 0x-hex of the block it was included in.
    pub block_hash: String,
    /// 0x-hex extrinsic hash.
    pub extrinsic_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rao_display_and_conversion() {
        assert_eq!(Rao(1_500_000_000).to_string(), "1.500000000");
        assert_eq!(Rao(7).to_string(), "0.000000007");
        assert_eq!(Rao::from_tao(2.5), Rao(2_500_000_000));
        assert_eq!(Rao::from_tao(-1.0), Rao(0));
        assert_eq!(Rao::from_tao(f64::NAN), Rao(0));
        assert!((Rao(250_000_000).as_tao() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn ip_roundtrip() {
        for ip in ["127.0.0.2", "203.0.113.7", "::1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().expect("ip");
            let (n, t) = ip_to_chain(ip);
            assert_eq!(ip_from_chain(n, t), ip);
        }
        assert_eq!(
            ip_to_chain("127.0.0.2".parse().expect("ip")),
            (0x7f00_0002, 4)
        );
    }

    #[test]
    fn axon_addr() {
        let a = AxonInfo {
            block: 1,
            version: 1,
            ip: "127.0.0.2".parse().expect("ip"),
            port: 8091,
            ip_type: 4,
            protocol: AXON_PROTOCOL_TCP,
        };
        assert_eq!(a.addr(), "127.0.0.2:8091");
        assert!(a.is_served());
    }
}
