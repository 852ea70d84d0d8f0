//! `mrctl job demo`: a real training-style job through a validator and its miners — P peers on
//! this machine request a job by name, all_reduce known data, and check every element.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mapreduce::core::{Collective, Dtype, Op};
use mapreduce::peer::{Session, SessionOptions, ValidatorAddr, check};
use mapreduce::wallet::Keypair;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Run a demo all_reduce through a validator: every peer checks the exact result.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The validator's control-plane address (host:port).
    #[arg(long)]
    pub validator: String,
    /// The validator's hotkey (ss58): requests are signed for it.
    #[arg(long = "validator-hotkey")]
    pub validator_hotkey: String,
    /// Peers (each with a fresh hotkey; the validator must allow them: `validator.clients = ["*"]`).
    #[arg(long, default_value_t = 3)]
    pub peers: u32,
    /// Tensor size per peer, in MiB of f32.
    #[arg(long, default_value_t = 16)]
    pub mib: u64,
}

pub fn run(cmd: JobCmd) -> anyhow::Result<()> {
    match cmd {
        JobCmd::Demo(args) => demo(args),
    }
}

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if args.peers == 0 || args.peers > 64 {
        bail!("--peers must be from 1 to 64, got {}", args.peers);
    }
    if args.mib == 0 || args.mib > 4096 {
        bail!("--mib must be from 1 to 4096, got {}", args.mib);
    }
    mapreduce::wallet::ss58::decode(&args.validator_hotkey).with_context(|| {
        format!(
            "--validator-hotkey {:?} is not an ss58 address",
            args.validator_hotkey
        )
    })?;
    let addr = ValidatorAddr {
        endpoint: args.validator.clone(),
        hotkey: args.validator_hotkey.clone(),
    };
    let elements = args.mib * (1 << 20) / 4;
    let seed = now_seed();
    let name = format!("demo-{seed:x}");
    let keys: Vec<Keypair> = (0..args.peers)
        .map(|_| Keypair::generate(12))
        .collect::<Result<_, _>>()
        .context("generating peer keys")?;
    println!(
        "job {name}: {} peers all_reduce {} MiB of f32 each through {}",
        args.peers, args.mib, args.validator
    );
    let start = Instant::now();
    let results: Vec<anyhow::Result<(u64, f64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(rank, key)| {
                let (addr, name) = (&addr, &name);
                s.spawn(move || -> anyhow::Result<(u64, f64)> {
                    let rank = rank as u32;
                    let mut sess = Session::init(
                        addr,
                        key,
                        args.peers,
                        rank,
                        name,
                        elements,
                        Dtype::F32,
                        SessionOptions::default(),
                    )
                    .with_context(|| format!("rank {rank}: joining"))?;
                    let mut data = vec![0f32; elements as usize];
                    check::fill(seed, rank, &mut data);
                    let t = Instant::now();
                    sess.all_reduce(&mut data, Op::Sum)
                        .with_context(|| format!("rank {rank}: all_reduce"))?;
                    let secs = t.elapsed().as_secs_f64();
                    let c = Collective::AllReduce(Op::Sum);
                    check::verify(seed, args.peers, c, Dtype::F32, rank, &data).map_err(|m| {
                        anyhow::anyhow!(
                            "rank {rank}: wrong result at element {}: got {} want {}",
                            m.index,
                            m.got,
                            m.want
                        )
                    })?;
                    let id = sess.job_id();
                    sess.close();
                    Ok((id, secs))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a peer thread panicked")))
            })
            .collect()
    });
    let mut job = None;
    for (rank, r) in results.into_iter().enumerate() {
        let (id, secs) = r?;
        let mbs = (args.mib as f64 * 1_048_576.0) / secs / 1e6;
        println!("   rank {rank}: all_reduce {secs:.2} s ({mbs:.0} MB/s), every element checked");
        job = Some(id);
    }
    println!(
        "job {} done in {:.1} s: results exact on all {} peers",
        job.unwrap_or_default(),
        start.elapsed().as_secs_f64(),
        args.peers
    );
    Ok(())
}

/// A seed the miners cannot know in advance.
fn now_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
}
