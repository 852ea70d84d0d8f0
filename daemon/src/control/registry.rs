//! Who is on the subnet: the auth layer asks a [`Registry`] about each verified caller.
//! The daemons back it with the metagraph they sync; tests can use a fixed map.

use crate::chain::Metagraph;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A registered hotkey as the auth layer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub uid: u16,
    /// Total stake (alpha + root), in TAO.
    pub stake_tao: f64,
    pub validator_permit: bool,
}

/// Answers from a cached view (no I/O per request).
pub trait Registry: Send + Sync + 'static {
    fn member(&self, hotkey: &str) -> Option<Member>;
    /// The netuid, for messages that tell the caller how to register.
    fn netuid(&self) -> u16;
}

/// A fixed map (tests, private clusters).
#[derive(Debug, Default, Clone)]
pub struct StaticRegistry {
    pub netuid: u16,
    pub members: HashMap<String, Member>,
}

impl StaticRegistry {
    pub fn new(netuid: u16) -> Self {
        StaticRegistry {
            netuid,
            members: HashMap::new(),
        }
    }

    pub fn with(mut self, hotkey: &str, uid: u16, stake_tao: f64) -> Self {
        self.members.insert(
            hotkey.to_string(),
            Member {
                uid,
                stake_tao,
                validator_permit: true,
            },
        );
        self
    }
}

impl Registry for StaticRegistry {
    fn member(&self, hotkey: &str) -> Option<Member> {
        self.members.get(hotkey).cloned()
    }

    fn netuid(&self) -> u16 {
        self.netuid
    }
}

/// The last synced metagraph; the daemon's sync task calls [`MetagraphRegistry::set`].
#[derive(Debug, Clone)]
pub struct MetagraphRegistry {
    netuid: u16,
    current: Arc<RwLock<Option<Arc<Metagraph>>>>,
}

impl MetagraphRegistry {
    pub fn new(netuid: u16) -> Self {
        MetagraphRegistry {
            netuid,
            current: Arc::new(RwLock::new(None)),
        }
    }

    pub fn set(&self, m: Metagraph) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(m));
    }

    pub fn get(&self) -> Option<Arc<Metagraph>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Registry for MetagraphRegistry {
    fn member(&self, hotkey: &str) -> Option<Member> {
        let m = self.get()?;
        let n = m.by_hotkey(hotkey)?;
        Some(Member {
            uid: n.uid,
            stake_tao: n.alpha_stake.as_tao() + n.tao_stake.as_tao(),
            validator_permit: n.validator_permit,
        })
    }

    fn netuid(&self) -> u16 {
        self.netuid
    }
}
