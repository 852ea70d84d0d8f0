//! Sends a peer's live-job evidence to the validator off the hot path: a background thread with
//! its own runtime and connection takes [`ShardEvidence`] from a queue and sends it as
//! `ReportSamples` requests of bounded size, so a collective never waits for the validator.

use super::sample::ShardEvidence;
use super::session::ValidatorAddr;
use crate::control::sign;
use crate::core::Version;
use crate::wallet::Keypair;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_proto::v1::{ReportSamplesRequest, SampleBlock};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Sample bytes per request: under the axon's default request limit (1 MiB) with room for the
/// receipt and the checksum lists.
pub const MAX_REQUEST_BYTES: usize = 640 << 10;
/// Largest piece of one block in a request.
pub const PIECE: usize = 256 << 10;

enum Msg {
    Evidence(u64, ShardEvidence),
    /// Answers once everything queued before it was sent (or given up on).
    Flush(mpsc::Sender<()>),
}

/// The queue to the background sender.
pub struct Reporter {
    tx: mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Pieces of a block's input or output, at most [`PIECE`] bytes each.
fn pieces(block: u32, bytes: &[u8], input: bool) -> impl Iterator<Item = SampleBlock> + '_ {
    let total = bytes.len() as u32;
    bytes.chunks(PIECE).enumerate().map(move |(i, c)| {
        let data = c.to_vec();
        let (input, output) = if input {
            (data, Vec::new())
        } else {
            (Vec::new(), data)
        };
        SampleBlock {
            block,
            input,
            output,
            offset: (i * PIECE) as u32,
            total,
        }
    })
}

/// Cuts one shard's evidence into requests of at most [`MAX_REQUEST_BYTES`] of sample bytes;
/// each carries the receipt and checksums, and blocks go in pieces of at most [`PIECE`].
pub fn requests(job: u64, ev: &ShardEvidence) -> Vec<ReportSamplesRequest> {
    let base = ReportSamplesRequest {
        version: Some(Version::CURRENT.into()),
        job_id: job,
        receipt: Some(ev.receipt.clone()),
        input_checksums: ev.inputs.clone(),
        output_checksums: ev.outputs.clone(),
        samples: Vec::new(),
    };
    let mut out = Vec::new();
    let mut cur = base.clone();
    let mut size = 0usize;
    let parts = ev
        .samples
        .iter()
        .flat_map(|s| pieces(s.block, &s.input, true).chain(pieces(s.block, &s.output, false)));
    for part in parts {
        let n = part.input.len() + part.output.len();
        if size > 0 && size + n > MAX_REQUEST_BYTES {
            out.push(std::mem::replace(&mut cur, base.clone()));
            size = 0;
        }
        size += n;
        cur.samples.push(part);
    }
    if !cur.samples.is_empty() {
        out.push(cur);
    }
    out
}

impl Reporter {
    pub fn start(validator: ValidatorAddr, key: Keypair, timeout: Duration) -> Reporter {
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new()
            .name("mr-evidence".into())
            .spawn(move || run(validator, key, timeout, rx))
            .ok();
        Reporter { tx, thread }
    }

    pub fn send(&self, job: u64, ev: ShardEvidence) {
        let _ = self.tx.send(Msg::Evidence(job, ev));
    }

    /// Waits (at most `wait`) until everything queued so far has been sent.
    pub fn flush(&self, wait: Duration) -> bool {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Msg::Flush(ack)).is_err() {
            return false;
        }
        done.recv_timeout(wait).is_ok()
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        // Whatever is queued still goes out (bounded by the call timeouts), then the thread ends.
        self.flush(Duration::from_secs(30));
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(validator: ValidatorAddr, key: Keypair, timeout: Duration, rx: mpsc::Receiver<Msg>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let mut client: Option<ValidatorClient<sign::SignedChannel>> = None;
    let key = Arc::new(key);
    while let Ok(msg) = rx.recv() {
        let (job, ev) = match msg {
            Msg::Flush(ack) => {
                let _ = ack.send(());
                continue;
            }
            Msg::Evidence(job, ev) => (job, ev),
        };
        if client.is_none() {
            match rt.block_on(sign::connect(
                &validator.endpoint,
                Arc::clone(&key),
                &validator.hotkey,
                timeout,
            )) {
                Ok(ch) => client = Some(ValidatorClient::new(ch)),
                Err(e) => {
                    tracing::warn!(job, "evidence not sent: cannot reach the validator: {e}");
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        for req in requests(job, &ev) {
            for attempt in 0..3 {
                match rt.block_on(c.report_samples(req.clone())) {
                    Ok(_) => break,
                    Err(s)
                        if s.code() == tonic::Code::ResourceExhausted
                            || s.code() == tonic::Code::Unavailable =>
                    {
                        std::thread::sleep(Duration::from_millis(500 << attempt));
                    }
                    Err(s) => {
                        tracing::warn!(
                            job,
                            shard = ev.shard,
                            seq = ev.seq,
                            "evidence refused: {:?}: {}",
                            s.code(),
                            s.message()
                        );
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Collective, Op};

    #[test]
    fn requests_are_bounded_and_carry_everything() {
        let big = vec![1u8; 1 << 20];
        let ev = ShardEvidence {
            shard: 1,
            seq: 2,
            collective: Collective::AllReduce(Op::Sum),
            miner: "m".into(),
            receipt: Default::default(),
            inputs: vec![1, 2, 3, 4, 5],
            outputs: vec![6, 7, 8, 9, 10],
            samples: (0..5)
                .map(|b| SampleBlock {
                    block: b,
                    input: big.clone(),
                    output: big.clone(),
                    ..Default::default()
                })
                .collect(),
        };
        let reqs = requests(7, &ev);
        assert!(reqs.len() >= 16, "{}", reqs.len());
        let mut parts = 0;
        for r in &reqs {
            let n: usize = r
                .samples
                .iter()
                .map(|s| s.input.len() + s.output.len())
                .sum();
            assert!(n <= MAX_REQUEST_BYTES);
            assert_eq!(r.input_checksums.len(), 5);
            assert!(r.receipt.is_some());
            parts += r.samples.len();
        }
        // 5 blocks, input and output, 4 pieces each.
        assert_eq!(parts, 40);
        let first = &reqs[0].samples[1];
        assert_eq!((first.offset, first.total), (PIECE as u32, 1 << 20));
    }
}
