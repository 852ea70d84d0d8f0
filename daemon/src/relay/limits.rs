//! Limits on who may use the relay: per-address connections (`relay.max_conns_per_ip`: one host
//! cannot hold every socket and task of the relay with idle or half-open connections; a connection
//! over the limit gets an Error frame naming the limit and is closed before any handshake is read),
//! and tickets that name this miner (a valid ticket for other miners reserves nothing here).

use crate::wire::{Header, Kind};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Open connections per remote address.
#[derive(Debug, Default)]
pub struct PerIp {
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct Slot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a connection from `ip`, or `None` when `ip` already holds `max`.
    pub fn enter(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<Slot> {
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: Arc::clone(self),
            ip,
        })
    }

    /// Connections open from `ip` now.
    pub fn count(&self, ip: IpAddr) -> u32 {
        self.lock().get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Tells a connection over the limit why, and closes it (bounded in time: an attacker that
/// does not read cannot hold this task).
pub async fn refuse(mut stream: TcpStream, addr: SocketAddr, max: u32) {
    let why = format!(
        "too many connections from {}: at most {max} at once (relay.max_conns_per_ip)",
        addr.ip()
    );
    tracing::info!(%addr, "refused: {why}");
    crate::core::refusals::record("relay", "per_ip_limit");
    let h = Header::for_payload(Kind::Error, 0, why.as_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&h.encode()).await?;
        stream.write_all(why.as_bytes()).await?;
        stream.shutdown().await?;
        // Read until the peer closes, so the kernel does not reset the Error frame away.
        let mut scratch = [0u8; 4096];
        while stream.read(&mut scratch).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// Why a verified ticket may not join `shard` here: it names another miner for that shard and
/// this miner is not among its spares. `None` when it may (or the relay has no hotkey).
pub fn not_ours(
    options: &super::RelayOptions,
    ticket: &crate::wire::JobTicket,
    shard: u32,
) -> Option<String> {
    let me = options.own_hotkey.as_deref()?;
    let named = ticket.miners.get(shard as usize).map(|m| m.hotkey.as_str());
    if named == Some(me) || ticket.spares.iter().any(|s| s.hotkey == me) {
        return None;
    }
    Some(format!(
        "ticket of job {} gives shard {shard} to miner {}, not to this miner ({me})",
        ticket.job_id,
        named.unwrap_or("(none)")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_per_address_and_free_on_drop() {
        let t = Arc::new(PerIp::default());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let s1 = t.enter(a, 2).expect("first");
        let s2 = t.enter(a, 2).expect("second");
        assert!(t.enter(a, 2).is_none(), "third over the limit");
        let _b = t.enter(b, 2).expect("another address is not affected");
        drop(s1);
        assert_eq!(t.count(a), 1);
        let _s3 = t.enter(a, 2).expect("room again");
        drop(s2);
        assert_eq!(t.count(a), 1);
    }
}
