//! One peer connection: handshake, then a reader (frames into the job's machine, only while the
//! window allows) and a writer (the job's blocks out to this peer).

use super::job::{JobCell, Out};
use super::machine::Fault;
use super::server::Relay;
use crate::core::traffic::FlowCounter;
use crate::wire::handshake::{now_ms, verify_join};
use crate::wire::{Frame, FrameCodec, FrameReader, HEADER_LEN, Header, Kind, WireError};
use futures_util::StreamExt;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

/// Largest handshake (a ticket naming up to 1024 peers and miners fits).
const MAX_HANDSHAKE: u32 = 512 * 1024;
/// Time allowed to tell a peer why its job failed before closing.
const ERROR_GRACE: Duration = Duration::from_secs(1);

/// Serves one connection to the end; never panics on what the peer sends.
pub async fn run(relay: Arc<Relay>, stream: TcpStream, addr: SocketAddr) {
    // Small frames (Begin, Welcome) must not wait on Nagle; large ones are written whole.
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut framed = FramedRead::new(rd, FrameCodec::new(MAX_HANDSHAKE));

    let first = tokio::time::timeout(relay.options.handshake_timeout, framed.next()).await;
    let hello = match first {
        Ok(Some(Ok(f))) if f.header.kind == Kind::Hello => f,
        Ok(Some(Ok(f))) => {
            let why = format!("expected a handshake, got a {:?} frame", f.header.kind);
            return refuse(&mut wr, addr, &why).await;
        }
        Ok(Some(Err(e))) => {
            return refuse(&mut wr, addr, &format!("bad handshake frame: {e}")).await;
        }
        Ok(None) => return,
        Err(_) => return refuse(&mut wr, addr, "no handshake in time").await,
    };
    let trust = &relay.options.trust;
    let (verified, rank, shard, resume_seq) =
        match verify_join(&hello.payload, &|a| trust.trusts(a), now_ms()) {
            Ok(j) => (j.verified, j.rank, j.shard, j.resume_seq),
            Err(e) => return refuse(&mut wr, addr, &e.to_string()).await,
        };
    if hello.header.job != verified.ticket.job_id {
        let why = format!(
            "handshake frame names job {}, its ticket job {}",
            hello.header.job, verified.ticket.job_id
        );
        return refuse(&mut wr, addr, &why).await;
    }
    if let Some(why) = super::limits::not_ours(&relay.options, &verified.ticket, shard) {
        return refuse(&mut wr, addr, &why).await;
    }
    let cell = match relay.admit_at(&verified, shard, resume_seq) {
        Ok(c) => c,
        Err(e) => return refuse(&mut wr, addr, &e.to_string()).await,
    };
    let _guard = ConnGuard::new(&relay, &cell);
    let peer = verified.ticket.peers.get(rank as usize).cloned();
    let flow = relay.traffic.flow(
        "peer",
        peer.as_deref().unwrap_or(&addr.to_string()),
        &format!("rank {rank} of job {}", verified.ticket.job_id),
    );
    let (block_bytes, pool) = {
        let g = cell.lock();
        (g.machine.params().block_bytes(), g.machine.pool().clone())
    };
    // From here frames are read straight into buffers of their own size (no codec buffer).
    let parts = framed.into_parts();
    let mut frames = FrameReader::new(
        parts.io,
        parts.read_buf,
        u32::try_from(block_bytes.max(4096)).unwrap_or(u32::MAX),
    )
    .with_pool(pool);

    let (tx, rx) = mpsc::unbounded_channel();
    let key = relay.receipt_key();
    let writer = tokio::spawn(writer(
        Arc::clone(&cell),
        rank,
        wr,
        rx,
        Arc::clone(&flow),
        key,
    ));
    if cell.join(rank, tx).is_ok() {
        tracing::debug!(job = cell.key.0, shard, rank, %addr, "peer joined");
        reader(&cell, rank, &mut frames, &flow).await;
        // Only a rank that joined owns its queue (a duplicate's was never registered).
        cell.close_writer(rank);
    }
    // Dropping a socket with unread input makes the kernel send RST, which can destroy the Error
    // frame before the peer reads it; so read and discard until the peer closes (bounded).
    let _ = tokio::join!(writer, drain(frames.get_mut()));
}

/// Reads and discards until end of stream, an error, or `ERROR_GRACE`.
async fn drain(rd: &mut OwnedReadHalf) {
    let mut scratch = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(ERROR_GRACE, async {
        while let Ok(n) = rd.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Tells a connection that never joined a job why, and closes it.
async fn refuse(wr: &mut OwnedWriteHalf, addr: SocketAddr, why: &str) {
    tracing::info!(%addr, "refused: {why}");
    crate::core::refusals::record("relay", "handshake");
    let _ = tokio::time::timeout(ERROR_GRACE, write_error(wr, 0, why)).await;
    let _ = wr.shutdown().await;
}

async fn write_error(
    wr: &mut (impl AsyncWrite + Unpin),
    job: u64,
    why: &str,
) -> std::io::Result<()> {
    let payload = why.as_bytes();
    let h = Header::for_payload(Kind::Error, job, payload);
    write_frame(wr, &h, payload).await
}

/// Writes a header and payload with vectored writes: no copy of the payload.
async fn write_frame(
    wr: &mut (impl AsyncWrite + Unpin),
    header: &Header,
    payload: &[u8],
) -> std::io::Result<()> {
    let head = header.encode();
    let mut bufs = [IoSlice::new(&head), IoSlice::new(payload)];
    let mut slices: &mut [IoSlice<'_>] = &mut bufs;
    while !slices.is_empty() {
        let n = wr.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Signs a receipt with the miner's key (unsigned for a relay without one) and sends it.
async fn write_receipt(
    wr: &mut (impl AsyncWrite + Unpin),
    r: &crate::wire::receipt::ShardReceipt,
    key: Option<&crate::wallet::Keypair>,
) -> std::io::Result<()> {
    use prost::Message;
    let signed = crate::wire::receipt::seal(r.clone(), key).map_err(std::io::Error::other)?;
    let payload = signed.encode_to_vec();
    let mut h = Header::for_payload(Kind::Receipt, r.job_id, &payload);
    h.shard = r.shard;
    h.seq = r.seq;
    write_frame(wr, &h, &payload).await
}

async fn reader(
    cell: &Arc<JobCell>,
    rank: u32,
    frames: &mut FrameReader<OwnedReadHalf>,
    flow: &FlowCounter,
) {
    let mut progress = cell.watch();
    loop {
        // Backpressure: nothing is read from this peer until the window has room for it.
        loop {
            progress.borrow_and_update();
            if cell.cancel.is_cancelled() {
                return;
            }
            if cell.lock().machine.may_read(rank) {
                break;
            }
            tokio::select! {
                r = progress.changed() => if r.is_err() { return },
                _ = cell.cancel.cancelled() => return,
            }
        }
        let next: Option<Result<Frame, WireError>> = tokio::select! {
            f = frames.next() => f,
            // Dropping a half-read frame is fine: the reader stops here for good.
            _ = cell.cancel.cancelled() => return,
        };
        match next {
            // A reset or a half-sent frame is the peer going away, not a protocol breach.
            None | Some(Err(WireError::Io(_) | WireError::Truncated)) => {
                let f = cell.lock().machine.disconnected(rank);
                cell.fail(f);
                return;
            }
            Some(Err(e)) => {
                let who = cell.lock().machine.params().who(rank).to_string();
                let reason = format!("{who} broke the protocol: {e}");
                cell.fail(Fault {
                    reason,
                    culprit: Some(rank),
                });
                return;
            }
            Some(Ok(frame)) => {
                flow.add_in((HEADER_LEN + frame.payload.len()) as u64);
                let end = frame.header.kind == Kind::End;
                if cell.on_frame(rank, frame).is_err() || end {
                    return;
                }
            }
        }
    }
}

async fn writer(
    cell: Arc<JobCell>,
    rank: u32,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    flow: Arc<FlowCounter>,
    key: Option<Arc<crate::wallet::Keypair>>,
) {
    let (job, shard) = cell.key;
    let (dtype, who) = {
        let g = cell.lock();
        (
            g.machine.params().dtype,
            g.machine.params().who(rank).to_string(),
        )
    };
    loop {
        let msg = tokio::select! {
            biased;
            _ = cell.cancel.cancelled() => break,
            m = rx.recv() => m,
        };
        let Some(msg) = msg else { break };
        let write = async {
            match &msg {
                Out::Welcome => {
                    write_frame(&mut wr, &Header::for_payload(Kind::Welcome, job, &[]), &[]).await
                }
                Out::Block(b) => {
                    let h = Header {
                        kind: Kind::Result,
                        dtype: Some(dtype),
                        job,
                        shard,
                        block: b.block,
                        seq: b.seq,
                        len: b.payload.len() as u32,
                        checksum: b.checksum,
                    };
                    write_frame(&mut wr, &h, &b.payload).await
                }
                Out::Receipt(r) => write_receipt(&mut wr, r, key.as_deref()).await,
            }
        };
        let res = tokio::time::timeout(cell.deadline, write).await;
        if let (Ok(Ok(())), Out::Block(b)) = (&res, &msg) {
            flow.add_out((HEADER_LEN + b.payload.len()) as u64);
        }
        // The block is released as soon as this peer has it (or is given up on).
        drop(msg);
        let why = match res {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("{who} went away (sending to it failed: {e})"),
            Err(_) => format!(
                "{who} did not take a result within {:.1} s (it is not reading)",
                cell.deadline.as_secs_f64()
            ),
        };
        cell.fail(Fault {
            reason: why,
            culprit: Some(rank),
        });
        break;
    }
    // Whatever is still queued is released here, outside any lock.
    drop(rx);
    if let Some(f) = cell.failure() {
        let _ = tokio::time::timeout(ERROR_GRACE, write_error(&mut wr, job, &f.reason)).await;
    }
    let _ = wr.shutdown().await;
}

/// Counts a job's live connections; the last one out removes the job (and so frees its memory).
struct ConnGuard {
    relay: Arc<Relay>,
    cell: Arc<JobCell>,
}

impl ConnGuard {
    fn new(relay: &Arc<Relay>, cell: &Arc<JobCell>) -> ConnGuard {
        cell.conns.fetch_add(1, Ordering::AcqRel);
        ConnGuard {
            relay: Arc::clone(relay),
            cell: Arc::clone(cell),
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.cell.conns.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.relay.remove(&self.cell);
        }
    }
}
