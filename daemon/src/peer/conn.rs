//! One peer's connection to one miner: blocking sockets to join and to say goodbye; during an
//! operation the peer's engine (`super::engine`) drives it non-blocking.

use super::{Job, PeerError};
use crate::core::ShardPlan;
use crate::wallet::Keypair;
use crate::wire::io::{read_header, read_payload, write_frame};
use crate::wire::{Header, Kind, MinerSlot, WireError, handshake};
use prost::Message;
use std::io;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Error frames and other small frames may be this long whatever the block size.
const SMALL_FRAME: u32 = 64 * 1024;

/// Keeps at most `bytes` of unsent data in the socket (0: the kernel's default): a blocking
/// write returns once its block has nearly left, so the peer's pacing across its miners
/// ([`super::pace`]) sees where each flow really is, not how full a multi-MiB buffer is.
#[cfg(target_os = "linux")]
fn set_notsent_lowat(s: &TcpStream, bytes: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if bytes == 0 {
        return Ok(());
    }
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_notsent_lowat(_: &TcpStream, _: u32) -> io::Result<()> {
    Ok(())
}

/// A joined connection to the miner of one shard.
#[derive(Debug)]
pub struct Conn {
    pub shard: usize,
    /// "miner i (hotkey at address)".
    pub name: String,
    pub plan: ShardPlan,
    pub reader: TcpStream,
    pub writer: TcpStream,
    max_payload: u32,
}

/// When the handshake was sent and when the miner said the job was ready.
#[derive(Debug, Clone, Copy)]
pub struct JoinTimes {
    pub hello_sent: Instant,
    pub welcomed: Instant,
}

impl Conn {
    /// Connects, sends the handshake and waits (up to `wait`) until every peer has joined.
    pub fn open(
        job: &Job,
        shard: usize,
        key: &Keypair,
        wait: Duration,
    ) -> Result<(Conn, JoinTimes), PeerError> {
        Conn::open_slot(
            job,
            shard,
            &job.miners[shard],
            job.miner_name(shard),
            0,
            key,
            wait,
        )
    }

    /// [`Conn::open`] to the miner in `slot` (the shard's own, or a spare taking it over at
    /// operation `resume_seq`).
    pub fn open_slot(
        job: &Job,
        shard: usize,
        slot: &MinerSlot,
        name: String,
        resume_seq: u32,
        key: &Keypair,
        wait: Duration,
    ) -> Result<(Conn, JoinTimes), PeerError> {
        let connect_err = |source| PeerError::Connect {
            miner: name.clone(),
            source,
        };
        let addr = slot
            .address
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| connect_err(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        let stream = TcpStream::connect_timeout(&addr, wait).map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        set_notsent_lowat(&stream, super::pace::notsent_lowat()).map_err(connect_err)?;
        let writer = stream.try_clone().map_err(connect_err)?;
        let plan = job.layout.shard_plan(shard);
        let block_bytes = plan.block_elems * job.dtype.size() as u64;
        let conn = Conn {
            shard,
            name,
            plan,
            reader: stream,
            writer,
            max_payload: u32::try_from(block_bytes)
                .unwrap_or(u32::MAX)
                .max(SMALL_FRAME),
        };
        let hello =
            handshake::hello_resume(&job.ticket, job.id, job.rank, shard as u32, resume_seq, key)?;
        let payload = hello.encode_to_vec();
        let hello_sent = Instant::now();
        conn.send(
            &Header::for_payload(Kind::Hello, job.id, &payload),
            &payload,
            "joining",
        )?;
        conn.set_deadline(wait)?;
        let h = conn.recv_header("waiting for the other peers to join")?;
        if h.kind != Kind::Welcome {
            return Err(conn.protocol(format!("answered the handshake with {:?}", h.kind)));
        }
        let mut empty = [0u8; 0];
        if h.len != 0 {
            return Err(conn.protocol("sent a Welcome with a payload".into()));
        }
        conn.recv_payload(&h, &mut empty, "joining")?;
        let welcomed = Instant::now();
        Ok((
            conn,
            JoinTimes {
                hello_sent,
                welcomed,
            },
        ))
    }

    /// The largest payload a frame from the miner may carry.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Read and write timeouts for what follows.
    pub fn set_deadline(&self, d: Duration) -> Result<(), PeerError> {
        let err = |source| PeerError::Io {
            miner: self.name.clone(),
            during: "setting a deadline".into(),
            source,
        };
        self.reader.set_read_timeout(Some(d)).map_err(err)?;
        self.writer.set_write_timeout(Some(d)).map_err(err)
    }

    pub fn send(&self, h: &Header, payload: &[u8], during: &str) -> Result<(), PeerError> {
        let mut w = &self.writer;
        write_frame(&mut w, h, payload).map_err(|e| self.io(e, during))
    }

    /// Reads a payload into `dst` and checks it.
    pub fn recv_payload(&self, h: &Header, dst: &mut [u8], during: &str) -> Result<(), PeerError> {
        let mut r = &self.reader;
        read_payload(&mut r, h, dst).map_err(|e| self.wire(e, during))
    }

    /// The next header; an `Error` frame becomes `PeerError::Relay` with the relay's reason.
    pub fn recv_header(&self, during: &str) -> Result<Header, PeerError> {
        let mut r = &self.reader;
        match read_header(&mut r, self.max_payload) {
            Ok(Some(h)) if h.kind == Kind::Error => {
                let mut buf = vec![0u8; h.len as usize];
                self.recv_payload(&h, &mut buf, during)?;
                Err(PeerError::Relay {
                    miner: self.name.clone(),
                    reason: String::from_utf8_lossy(&buf).into_owned(),
                })
            }
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(PeerError::Closed {
                miner: self.name.clone(),
                during: during.into(),
            }),
            Err(e) => Err(self.wire(e, during)),
        }
    }

    pub fn protocol(&self, reason: String) -> PeerError {
        PeerError::Protocol {
            miner: self.name.clone(),
            reason,
        }
    }

    pub fn wire(&self, e: WireError, during: &str) -> PeerError {
        match e {
            WireError::Io(e) => self.io(e, during),
            WireError::Truncated => PeerError::Closed {
                miner: self.name.clone(),
                during: during.into(),
            },
            other => self.protocol(other.to_string()),
        }
    }

    pub fn io(&self, e: io::Error, during: &str) -> PeerError {
        let miner = self.name.clone();
        let during = during.to_string();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => PeerError::Timeout {
                miner,
                secs: self
                    .reader
                    .read_timeout()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .as_secs_f64(),
                during,
            },
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => PeerError::Closed { miner, during },
            _ => PeerError::Io {
                miner,
                during,
                source: e,
            },
        }
    }

    /// Unblocks this connection's threads at once (used when another miner failed).
    pub fn abort(&self) {
        let _ = self.reader.shutdown(Shutdown::Both);
    }

    /// Says goodbye between operations, without waiting long.
    pub fn end(&mut self, job: u64) {
        let _ = self.writer.set_write_timeout(Some(Duration::from_secs(1)));
        // The End names this connection's shard: the relay refuses a frame of another shard, and
        // with shard 0 on every connection a peer that finished first failed the job on the other
        // miners for the peers still running (relay_collectives, P=5 broadcasts).
        let mut h = Header::for_payload(Kind::End, job, &[]);
        h.shard = self.shard as u32;
        let _ = write_frame(&mut self.writer, &h, &[]);
        let _ = self.writer.shutdown(Shutdown::Write);
    }
}
