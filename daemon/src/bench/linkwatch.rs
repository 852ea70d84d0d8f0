//! When a virtual peer's bytes really crossed the miner's link, from the kernel's counters
//! ([`tcpinfo`](crate::peer::tcpinfo)) sampled every millisecond while an operation runs.
//!
//! Why not the application's own instants: a write returns once the bytes are in the local send
//! buffer (megabytes, so a fast link's upload read up to 1.5x its rate), and a read returns when
//! the peer gets to it (late on a busy machine). The kernel knows when the miner
//! acknowledged our bytes and when its bytes arrived.

use crate::peer::tcpinfo::{self, TcpCounters};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the counters are read (a few µs of CPU each time).
pub const EVERY: Duration = Duration::from_millis(1);

/// What the counters showed over one operation, summed over the peer's connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkTimes {
    /// Bytes the miner acknowledged, and when the last of them was seen acknowledged.
    pub acked: u64,
    pub last_acked: Option<Instant>,
    /// Bytes that arrived, when the first and the last of them were seen.
    pub received: u64,
    pub first_received: Option<Instant>,
    pub last_received: Option<Instant>,
}

/// The counters of `socks` summed; `None` when one cannot be read (not Linux, an old kernel).
fn read(socks: &[TcpStream]) -> Option<TcpCounters> {
    let mut sum = TcpCounters::default();
    for s in socks {
        let c = tcpinfo::counters(s).ok()?;
        sum.bytes_acked += c.bytes_acked;
        sum.bytes_received += c.bytes_received;
    }
    Some(sum)
}

/// Samples the counters of `socks` from `base` (read before the operation started) until `stop`
/// is set, then once more. Instants are those of the sample that first saw a change, so each is
/// at most one interval (plus scheduling) late. `None` when the counters cannot be read.
fn watch(
    socks: &[TcpStream],
    base: TcpCounters,
    stop: &AtomicBool,
    every: Duration,
) -> Option<LinkTimes> {
    let mut last = base;
    let mut t = LinkTimes {
        acked: 0,
        last_acked: None,
        received: 0,
        first_received: None,
        last_received: None,
    };
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let now_c = read(socks)?;
        let now = Instant::now();
        if now_c.bytes_acked != last.bytes_acked {
            t.last_acked = Some(now);
        }
        if now_c.bytes_received != last.bytes_received {
            t.first_received.get_or_insert(now);
            t.last_received = Some(now);
        }
        last = now_c;
        if stopping {
            break;
        }
        std::thread::sleep(every);
    }
    t.acked = last.bytes_acked - base.bytes_acked;
    t.received = last.bytes_received - base.bytes_received;
    Some(t)
}

/// Runs `op` while watching `socks`; returns its result and what the counters showed (`None`
/// when they cannot be read: not Linux, a kernel older than 4.6, no sockets).
pub fn during<T>(socks: &[TcpStream], op: impl FnOnce() -> T) -> (T, Option<LinkTimes>) {
    let stop = AtomicBool::new(false);
    // Read before the operation starts: the watcher thread may start late on a busy machine.
    let base = if socks.is_empty() { None } else { read(socks) };
    std::thread::scope(|s| {
        let stop = &stop;
        let watcher = s.spawn(move || base.and_then(|b| watch(socks, b, stop, EVERY)));
        let out = op();
        stop.store(true, Ordering::Release);
        let times = watcher.join().ok().flatten();
        (out, times)
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn sees_the_bytes_acknowledged_and_received_in_their_order() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut b, _) = l.accept().expect("accept");
        let watched = [a.try_clone().expect("clone")];
        let start = Instant::now();
        let ((), t) = during(&watched, || {
            let mut a = &a;
            a.write_all(&[1u8; 100_000]).expect("write");
            let mut got = vec![0u8; 100_000];
            b.read_exact(&mut got).expect("read");
            // The answer comes later than the request was acknowledged.
            std::thread::sleep(Duration::from_millis(30));
            b.write_all(&[2u8; 50_000]).expect("answer");
            let mut back = vec![0u8; 50_000];
            a.read_exact(&mut back).expect("read answer");
        });
        let t = t.expect("TCP_INFO counters");
        assert_eq!((t.acked, t.received), (100_000, 50_000));
        let (acked, first, last) = (
            t.last_acked.expect("acked"),
            t.first_received.expect("first"),
            t.last_received.expect("last"),
        );
        // (The watcher may start late on a busy machine: then it sees both in one sample.)
        assert!(start <= acked && acked <= first && first <= last, "{t:?}");
    }
}
