//! `mrd bench-peer` (hidden): one peer process of `mrctl bench local`, driven over stdin/stdout
//! (see `mapreduce::peer::bench`).

use anyhow::{Context, anyhow, bail};
use mapreduce::core::{Collective, Op};
use mapreduce::peer::bench::{Command, Reply, Setup, cpu_secs};
use mapreduce::peer::{Job, Peer, check};
use mapreduce::wallet::Keypair;
use mapreduce::wire::SignedTicket;
use prost::Message;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

fn reply(r: &Reply) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, r)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

fn parse_op(op: &str, src: u32) -> anyhow::Result<Collective> {
    Ok(match op {
        "broadcast" => Collective::Broadcast { src },
        other => Collective::AllReduce(other.parse::<Op>().map_err(|e| anyhow!(e))?),
    })
}

pub fn run() -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut next = || -> anyhow::Result<String> {
        lines
            .next()
            .ok_or_else(|| anyhow!("stdin closed"))?
            .context("reading stdin")
    };
    let setup: Setup = serde_json::from_str(&next()?).context("the setup line")?;
    let ticket = SignedTicket::decode(hex::decode(&setup.ticket_hex)?.as_slice())
        .context("decoding the ticket")?;
    let key = Keypair::from_seed_hex(&setup.secret_hex).context("the peer key")?;
    let job = Job::from_ticket(ticket, setup.rank)?;
    let (peers, dtype, rank, job_id) = (job.peers, job.dtype, job.rank, job.id);
    let mut data = vec![0f32; usize::try_from(job.elements)?];
    let mut peer: Option<Peer> = None;
    let mut pending: Option<Collective> = None;
    loop {
        let line = match next() {
            Ok(l) => l,
            Err(_) => return Ok(ExitCode::SUCCESS),
        };
        let cmd: Command =
            serde_json::from_str(&line).with_context(|| format!("command {line:?}"))?;
        match cmd {
            Command::Connect => match Peer::connect(job.clone(), &key) {
                Ok(p) => {
                    reply(&Reply::Connected {
                        setup_ms: p.setup_time().as_secs_f64() * 1e3,
                    })?;
                    peer = Some(p);
                }
                Err(e) => {
                    reply(&Reply::Failed {
                        error: e.to_string(),
                    })?;
                    return Ok(ExitCode::FAILURE);
                }
            },
            Command::Prepare { op, src } => {
                let c = parse_op(&op, src)?;
                check::fill(setup.data_seed, rank, &mut data);
                pending = Some(c);
                reply(&Reply::Ready)?;
            }
            Command::Go => {
                let (Some(p), Some(c)) = (peer.as_mut(), pending.take()) else {
                    bail!("go before connect and prepare");
                };
                let me = std::process::id();
                let cpu0 = cpu_secs(me).unwrap_or(0.0);
                let t = Instant::now();
                let r = match c {
                    Collective::AllReduce(op) => p.all_reduce(&mut data, op),
                    Collective::Broadcast { src } => p.broadcast(&mut data, src),
                };
                let secs = t.elapsed().as_secs_f64();
                // The reports a session would send in the background: built (and their CPU
                // counted) here, then dropped, as there is no validator.
                for ev in p.take_evidence() {
                    for req in mapreduce::peer::report::requests(job_id, &ev) {
                        std::hint::black_box(req.encode_to_vec());
                    }
                }
                let cpu_s = cpu_secs(me).map_or(0.0, |c| c - cpu0);
                match r {
                    Ok(()) => {
                        let mismatch = check::verify(setup.data_seed, peers, c, dtype, rank, &data)
                            .err()
                            .map(|m| m.to_string());
                        reply(&Reply::Done {
                            secs,
                            cpu_s,
                            mismatch,
                        })?;
                    }
                    Err(e) => {
                        reply(&Reply::Failed {
                            error: e.to_string(),
                        })?;
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            Command::Sample { seed, ppm } => {
                let Some(p) = peer.as_mut() else {
                    bail!("sample before connect");
                };
                p.set_sample(mapreduce::core::sample::SampleSpec { seed, ppm });
                reply(&Reply::Ready)?;
            }
            Command::Quit => return Ok(ExitCode::SUCCESS),
        }
    }
}
