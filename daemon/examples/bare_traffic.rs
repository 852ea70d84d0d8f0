//! The traffic of one all_reduce moved by the simplest code, with no protocol work: no frames,
//! no checksums, no reduction, no signatures. Two designs:
//! - relays (the default): every peer sends D/M to each of M relays and gets D/M back from each,
//!   2·P·D bytes through loopback; a relay reads a block from every peer, then sends the first
//!   peer's block to every peer;
//! - `--ring`: every peer streams 2(P-1)/P·D to the next peer, 2(P-1)·D bytes in all, as a ring
//!   all_reduce moves (with no synchronisation between its steps).
//!
//! Threads of one process, plain blocking sockets (`--poll`: one polling thread per peer).
//! Side by side with gloo and `mrctl bench local` (`scripts/bench/compare.sh`) it separates what
//! the traffic pattern costs on this machine from what an implementation adds: the ring's lead
//! over the relays here is the kernel's, before any protocol work. `--checksums` adds the XXH3
//! passes our frames make (peer send, relay receive, relay send, peer receive).
//!
//!   cargo run --release -p mapreduce --example bare_traffic -- --peers 3 --miners 3 --mib 100
//!   cargo run --release -p mapreduce --example bare_traffic -- --ring --json

use anyhow::{Context, Result, bail};
use clap::Parser;
use mapreduce::wire::checksum;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

#[derive(Parser, Debug, Clone)]
#[command(about = "An all_reduce's traffic (relays or ring) moved with no protocol work")]
struct Args {
    /// Peers (P).
    #[arg(long, default_value_t = 3)]
    peers: usize,
    /// Relays (M).
    #[arg(long, default_value_t = 3)]
    miners: usize,
    /// Tensor size in MiB of f32 (D).
    #[arg(long, default_value_t = 100.0)]
    mib: f64,
    /// Bytes per element on the wire: 4 (f32) or 2 (f16, bf16).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=8))]
    wire_bytes: u8,
    /// Block size in KiB of f32, as in `mrctl bench local` (a 16-bit block is half the bytes).
    #[arg(long, default_value_t = 256)]
    block_kib: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Untimed repetitions first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Also hash every block where our frames do (XXH3).
    #[arg(long)]
    checksums: bool,
    /// Peers send from and receive into one block-sized buffer instead of their tensors: the
    /// traffic's cost when no copy touches memory out of cache.
    #[arg(long)]
    hot: bool,
    /// SO_SNDBUF and SO_RCVBUF in KiB on every socket (0: the kernel's autotuning, as our relays
    /// and peers use).
    #[arg(long, default_value_t = 0)]
    sockbuf_kib: usize,
    /// TCP_NODELAY on every socket (our relays and peers set it).
    #[arg(long)]
    nodelay: bool,
    /// A ring's traffic instead: peer p streams 2(P-1)/P·D to peer p+1.
    #[arg(long)]
    ring: bool,
    /// One thread per peer drives all its sockets (non-blocking, poll) instead of a writer and
    /// a reader thread per socket (relays keep one blocking thread each).
    #[arg(long)]
    poll: bool,
    /// One JSON object on stdout instead of a line of text.
    #[arg(long)]
    json: bool,
}

/// Per-repetition wall and CPU seconds, and the bytes one repetition moves through loopback.
struct Timings {
    times: Vec<f64>,
    cpus: Vec<f64>,
    moved: f64,
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.peers < 2 || a.miners == 0 || a.reps == 0 || a.block_kib == 0 || a.mib <= 0.0 {
        bail!("--peers must be at least 2; --miners, --reps, --block-kib and --mib positive");
    }
    let elements = (a.mib * 1024.0 * 1024.0 / 4.0) as usize;
    let bytes = elements * a.wire_bytes as usize;
    let block = a.block_kib * 1024 / 4 * a.wire_bytes as usize;
    if bytes < a.peers * a.miners {
        bail!(
            "--mib is too small for {} peers and {} miners",
            a.peers,
            a.miners
        );
    }
    let t = if a.ring {
        ring(&a, bytes, block)?
    } else {
        relays(&a, bytes, block)?
    };
    report(&a, elements, block, &t);
    Ok(())
}

/// Byte ranges of a buffer's blocks, in order.
fn blocks(len: usize, block: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len.div_ceil(block)).map(move |b| (b * block, ((b + 1) * block).min(len)))
}

/// Sets an int socket option.
fn setopt(fd: std::os::fd::RawFd, level: i32, opt: i32, v: usize) -> Result<()> {
    let v = libc::c_int::try_from(v).context("socket option value")?;
    // SAFETY: a valid socket fd and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setsockopt");
    }
    Ok(())
}

/// Socket buffers (also on listeners: accepted sockets inherit them).
fn set_bufs(fd: std::os::fd::RawFd, a: &Args) -> Result<()> {
    if a.sockbuf_kib > 0 {
        setopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, a.sockbuf_kib * 1024)?;
        setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, a.sockbuf_kib * 1024)?;
    }
    Ok(())
}

fn tune(c: &TcpStream, a: &Args) -> Result<()> {
    set_bufs(c.as_raw_fd(), a)?;
    if a.nodelay {
        c.set_nodelay(true)?;
    }
    Ok(())
}

fn listen(a: &Args) -> Result<TcpListener> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    set_bufs(l.as_raw_fd(), a)?;
    Ok(l)
}

/// CPU seconds of every thread of this process so far.
fn process_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs `op` warmup + reps times; keeps the timed repetitions' wall and CPU seconds.
fn repeat(a: &Args, moved: f64, mut op: impl FnMut() -> Result<()>) -> Result<Timings> {
    let mut t = Timings {
        times: Vec::new(),
        cpus: Vec::new(),
        moved,
    };
    for i in 0..a.warmup + a.reps {
        let (start, cpu) = (Instant::now(), process_cpu());
        op()?;
        if i >= a.warmup {
            t.times.push(start.elapsed().as_secs_f64());
            t.cpus.push(process_cpu() - cpu);
        }
    }
    Ok(t)
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Writes `input` in blocks (from its first block only when `hot`).
fn send_all(mut w: &TcpStream, input: &[u8], block: usize, a: &Args) -> Result<()> {
    for (s, e) in blocks(input.len(), block) {
        let (s, e) = if a.hot { (0, e - s) } else { (s, e) };
        if a.checksums {
            black_box(checksum(&input[s..e]));
        }
        w.write_all(&input[s..e]).context("peer write")?;
    }
    Ok(())
}

/// Reads `output.len()` bytes into `output` in blocks (into its first block only when `hot`).
fn recv_all(mut r: &TcpStream, output: &mut [u8], block: usize, a: &Args) -> Result<()> {
    for (s, e) in blocks(output.len(), block) {
        let (s, e) = if a.hot { (0, e - s) } else { (s, e) };
        r.read_exact(&mut output[s..e]).context("peer read")?;
        if a.checksums {
            black_box(checksum(&output[s..e]));
        }
    }
    Ok(())
}

/// A training process's tensor, touched up front as one would be.
fn tensors(a: &Args, bytes: usize, fill: impl Fn(usize) -> u8) -> Vec<Vec<u8>> {
    (0..a.peers).map(|p| vec![fill(p); bytes]).collect()
}

/// The relay topology: M relay threads, and per peer and relay a writer and a reader thread.
fn relays(a: &Args, bytes: usize, block: usize) -> Result<Timings> {
    let shards: Vec<usize> = (0..a.miners)
        .map(|m| {
            let elems = bytes / a.wire_bytes as usize;
            (elems / a.miners + usize::from(m < elems % a.miners)) * a.wire_bytes as usize
        })
        .collect();
    let ops = a.warmup + a.reps;
    let listeners = (0..a.miners)
        .map(|_| listen(a))
        .collect::<Result<Vec<_>>>()?;
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut relay_threads = Vec::new();
    for (l, &shard) in listeners.into_iter().zip(&shards) {
        let a = a.clone();
        relay_threads.push(std::thread::spawn(move || -> Result<()> {
            let mut conns: Vec<Option<TcpStream>> = (0..a.peers).map(|_| None).collect();
            for _ in 0..a.peers {
                let (mut c, _) = l.accept().context("accept")?;
                tune(&c, &a)?;
                let mut rank = [0u8; 4];
                c.read_exact(&mut rank)?;
                let r = u32::from_le_bytes(rank) as usize;
                match conns.get_mut(r) {
                    Some(slot @ None) => *slot = Some(c),
                    _ => bail!("bad or repeated rank {r}"),
                }
            }
            relay(conns.into_iter().flatten().collect(), shard, block, ops, &a)
        }));
    }
    let mut conns = Vec::new(); // [peer][relay]
    for p in 0..a.peers {
        let mut row = Vec::new();
        for addr in &addrs {
            let mut c = TcpStream::connect(addr).context("connect")?;
            tune(&c, a)?;
            c.write_all(&(p as u32).to_le_bytes())?;
            row.push(c);
        }
        conns.push(row);
    }
    let inputs = tensors(a, bytes, |p| p as u8 + 1);
    let mut outputs = tensors(a, bytes, |_| 0);
    let moved = 2.0 * a.peers as f64 * bytes as f64;
    let t = repeat(a, moved, || {
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            for ((row, input), output) in conns.iter().zip(&inputs).zip(outputs.iter_mut()) {
                let (mut inp, mut out) = (input.as_slice(), output.as_mut_slice());
                let mut lanes = Vec::new();
                for (conn, &shard) in row.iter().zip(&shards) {
                    let (i, rest_in) = inp.split_at(shard);
                    let (o, rest_out) = out.split_at_mut(shard);
                    (inp, out) = (rest_in, rest_out);
                    if a.poll {
                        lanes.push(Lane::new(conn, conn, i, o));
                    } else {
                        handles.push(s.spawn(move || send_all(conn, i, block, a)));
                        handles.push(s.spawn(move || recv_all(conn, o, block, a)));
                    }
                }
                if a.poll {
                    handles.push(s.spawn(move || peer_polled(lanes, block, a.checksums)));
                }
            }
            handles.into_iter().try_for_each(join)
        })
    })?;
    for h in relay_threads {
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    }
    // Every peer got the relays' copies of peer 0's tensor: the bytes really moved.
    if !a.hot && outputs.iter().any(|o| o.iter().any(|&b| b != 1)) {
        bail!("a peer's output differs from what the relays forwarded");
    }
    Ok(t)
}

/// One relay over its P connections (rank order): per block, read each peer's, then send the
/// first to every peer (the real relay reduces them here).
fn relay(
    mut conns: Vec<TcpStream>,
    shard: usize,
    block: usize,
    ops: usize,
    a: &Args,
) -> Result<()> {
    let mut bufs = vec![vec![0u8; block]; conns.len()];
    for _ in 0..ops {
        for (s, e) in blocks(shard, block) {
            for (c, buf) in conns.iter_mut().zip(bufs.iter_mut()) {
                c.read_exact(&mut buf[..e - s]).context("relay read")?;
                if a.checksums {
                    black_box(checksum(&buf[..e - s]));
                }
            }
            if a.checksums {
                black_box(checksum(&bufs[0][..e - s]));
            }
            for c in &mut conns {
                c.write_all(&bufs[0][..e - s]).context("relay write")?;
            }
        }
    }
    Ok(())
}

/// A ring all_reduce's traffic with no synchronisation between its steps: every peer streams
/// 2(P-1)/P of its tensor to the next peer and receives as much from the previous one.
fn ring(a: &Args, bytes: usize, block: usize) -> Result<Timings> {
    let p = a.peers;
    let each = bytes * 2 * (p - 1) / p;
    let listeners = (0..p).map(|_| listen(a)).collect::<Result<Vec<_>>>()?;
    let mut outs = Vec::new(); // peer i sends on outs[i] to peer i+1
    for i in 0..p {
        let c = TcpStream::connect(listeners[(i + 1) % p].local_addr()?).context("connect")?;
        tune(&c, a)?;
        outs.push(c);
    }
    let mut ins = Vec::new(); // peer i receives on ins[i] from peer i-1
    for l in &listeners {
        let c = l.accept().context("accept")?.0;
        tune(&c, a)?;
        ins.push(c);
    }
    let inputs = tensors(a, each, |p| p as u8 + 1);
    let mut outputs = tensors(a, each, |_| 0);
    repeat(a, (each * p) as f64, || {
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            for (((out, inp), input), output) in
                outs.iter().zip(&ins).zip(&inputs).zip(outputs.iter_mut())
            {
                if a.poll {
                    let lane = Lane::new(out, inp, input, output);
                    handles.push(s.spawn(move || peer_polled(vec![lane], block, a.checksums)));
                } else {
                    handles.push(s.spawn(move || send_all(out, input, block, a)));
                    handles.push(s.spawn(move || recv_all(inp, output, block, a)));
                }
            }
            handles.into_iter().try_for_each(join)
        })
    })
}

/// One direction pair of a peer's traffic: what it sends on `out` and receives on `inp` (the
/// same socket for a relay, the next and previous peers' for a ring).
struct Lane<'a> {
    out: &'a TcpStream,
    inp: &'a TcpStream,
    input: &'a [u8],
    output: &'a mut [u8],
    sent: usize,
    got: usize,
    /// Bytes of `input` hashed so far (ahead of `sent`: a block is hashed before its first write).
    hashed: usize,
    /// Bytes of `output` hashed so far (a block is hashed once it is all in).
    checked: usize,
}

impl<'a> Lane<'a> {
    fn new(out: &'a TcpStream, inp: &'a TcpStream, input: &'a [u8], output: &'a mut [u8]) -> Self {
        Lane {
            out,
            inp,
            input,
            output,
            sent: 0,
            got: 0,
            hashed: 0,
            checked: 0,
        }
    }
}

/// One peer on one thread: every lane's socket is written to and read from whenever it is
/// ready (non-blocking sockets, poll), instead of a writer and a reader thread per lane.
/// With `checksums`, each block is hashed as the threaded peer hashes it (before sending it,
/// once all of it is received).
fn peer_polled(mut lanes: Vec<Lane<'_>>, block: usize, checksums: bool) -> Result<()> {
    use std::io::ErrorKind::WouldBlock;
    for l in &lanes {
        l.out.set_nonblocking(true)?;
        l.inp.set_nonblocking(true)?;
    }
    loop {
        let mut fds = Vec::with_capacity(lanes.len() * 2);
        for l in &lanes {
            let (more_out, more_in) = (l.sent < l.input.len(), l.got < l.output.len());
            fds.push(libc::pollfd {
                fd: l.out.as_raw_fd(),
                events: if more_out { libc::POLLOUT } else { 0 },
                revents: 0,
            });
            fds.push(libc::pollfd {
                fd: l.inp.as_raw_fd(),
                events: if more_in { libc::POLLIN } else { 0 },
                revents: 0,
            });
        }
        if fds.iter().all(|f| f.events == 0) {
            break;
        }
        // SAFETY: valid pollfds, their count, a timeout.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10_000) } < 0 {
            return Err(std::io::Error::last_os_error()).context("poll");
        }
        for l in &mut lanes {
            let mut w = l.out;
            while l.sent < l.input.len() {
                let end = (l.sent + block).min(l.input.len());
                if checksums && l.hashed == l.sent {
                    black_box(checksum(&l.input[l.sent..end]));
                    l.hashed = end;
                }
                match w.write(&l.input[l.sent..end]) {
                    Ok(k) => l.sent += k,
                    Err(e) if e.kind() == WouldBlock => break,
                    Err(e) => return Err(e).context("peer write"),
                }
            }
            let mut r = l.inp;
            while l.got < l.output.len() {
                let end = (l.got + block).min(l.output.len());
                match r.read(&mut l.output[l.got..end]) {
                    Ok(0) => bail!("a connection closed early"),
                    Ok(k) => {
                        l.got += k;
                        // Each block is hashed as soon as it is all in, while it is still in
                        // cache (one read can complete two: the short last block and the one before).
                        while checksums && l.checked < l.got {
                            let done = (l.checked + block).min(l.output.len());
                            if l.got < done {
                                break;
                            }
                            black_box(checksum(&l.output[l.checked..done]));
                            l.checked = done;
                        }
                    }
                    Err(e) if e.kind() == WouldBlock => break,
                    Err(e) => return Err(e).context("peer read"),
                }
            }
        }
    }
    for l in &lanes {
        l.out.set_nonblocking(false)?;
        l.inp.set_nonblocking(false)?;
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn report(a: &Args, elements: usize, block: usize, t: &Timings) {
    let (med, cpu) = (median(&t.times), median(&t.cpus));
    let min = t.times.iter().copied().fold(f64::INFINITY, f64::min);
    let tensor_mb = elements as f64 * 4.0 / 1e6;
    let design = if a.ring { "ring" } else { "relay" };
    if a.json {
        let v = serde_json::json!({
            "design": design, "peers": a.peers, "miners": a.miners, "mib": a.mib,
            "wire_bytes": a.wire_bytes, "block_bytes": block, "checksums": a.checksums,
            "hot": a.hot, "poll": a.poll, "reps": a.reps,
            "median_s": med, "min_s": min, "times_s": t.times,
            "mb_per_s_per_peer": tensor_mb / med,
            "moved_bytes": t.moved, "moved_gb_per_s": t.moved / 1e9 / med,
            "cpu_s": cpu, "cpu_ns_per_byte_moved": cpu * 1e9 / t.moved,
        });
        println!("{v}");
    } else {
        println!(
            "{design} traffic P={} M={} D={} MiB, {} B/element{}: median {:.3} s (min {:.3}), \
             {:.1} MB/s per peer, {:.2} GB/s moved, CPU {:.3} s ({:.2} ns per byte moved)",
            a.peers,
            a.miners,
            a.mib,
            a.wire_bytes,
            if a.checksums { ", checksums" } else { "" },
            med,
            min,
            tensor_mb / med,
            t.moved / 1e9 / med,
            cpu,
            cpu * 1e9 / t.moved
        );
    }
}
