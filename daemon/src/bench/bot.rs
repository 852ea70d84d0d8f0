//! The bot's loop: ask the validator for a benchmark, run it, report it, wait, repeat. It never
//! stops on a failure: a failed benchmark is reported like any other, and a validator that
//! cannot be reached or refuses is retried after a capped exponential backoff with jitter.
//!
//! Operators see and steer it through a [`BotHandle`]: the current [`BotStatus`] (a tokio
//! `watch`), every benchmark's progress as [`BenchEvent`]s (a tokio `broadcast`), and
//! [`BotHandle::start`] to benchmark one miner, or all, now.

use super::backoff::Backoff;
use super::runner::{self, Progress};
use super::state::{BenchEvent, BenchResult, BotState, BotStatus, Outcome, Phase};
use crate::control::sign::{self, SignedChannel};
use crate::core::Version;
use crate::peer::ValidatorAddr;
use crate::wallet::Keypair;
use crate::wire::handshake::now_ms;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_proto::v1::{BenchmarkAssignment, ReportBenchmarkRequest, RequestBenchmarkRequest};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// How long a stopping bot lets its running benchmark finish.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// What a bot does, from `[bench]`.
#[derive(Debug, Clone)]
pub struct BotOptions {
    pub validator: ValidatorAddr,
    /// Tensor bytes (f32) per virtual peer.
    pub bytes: u64,
    /// Virtual peers per benchmark.
    pub peers: u32,
    /// Pause between scheduled benchmarks.
    pub interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Time for each validator call.
    pub call_timeout: Duration,
}

/// Which miners a "benchmark now" covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Miner(u32),
    All,
}

/// A run accepted by [`BotHandle::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedRun {
    pub run_id: u64,
    /// Miners it will benchmark, in order.
    pub miner_uids: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the bot does not know the subnet's miners (no metagraph yet): name one miner uid instead"
    )]
    NoMiners,
    #[error("tensor size {0} MiB is out of range (1 to 65536)")]
    Size(u64),
    #[error("the bot has stopped")]
    Stopped,
}

/// Gives the uids of the miners "all" means (from the metagraph); `None` when unknown.
pub type MinerLister = Arc<dyn Fn() -> Option<Vec<u32>> + Send + Sync>;

struct StartCmd {
    target: Target,
    bytes: Option<u64>,
    reply: oneshot::Sender<Result<StartedRun, StartError>>,
}

/// The operator's view of a bot; cheap to clone.
#[derive(Clone)]
pub struct BotHandle {
    status: watch::Receiver<BotStatus>,
    events: broadcast::Sender<BenchEvent>,
    commands: mpsc::Sender<StartCmd>,
}

impl BotHandle {
    /// The bot now.
    pub fn status(&self) -> BotStatus {
        self.status.borrow().clone()
    }

    /// Every change of the status (`changed().await`, then `borrow()`).
    pub fn watch_status(&self) -> watch::Receiver<BotStatus> {
        self.status.clone()
    }

    /// Progress events of every benchmark from now on (a slow receiver skips, never blocks
    /// the bot).
    pub fn subscribe(&self) -> broadcast::Receiver<BenchEvent> {
        self.events.subscribe()
    }

    /// Benchmarks `target` next, before the scheduled ones; `mib` overrides `bench.mib`.
    pub async fn start(&self, target: Target, mib: Option<u64>) -> Result<StartedRun, StartError> {
        if let Some(m) = mib
            && !(1..=64 * 1024).contains(&m)
        {
            return Err(StartError::Size(m));
        }
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(StartCmd {
                target,
                bytes: mib.map(|m| m << 20),
                reply,
            })
            .await
            .map_err(|_| StartError::Stopped)?;
        rx.await.map_err(|_| StartError::Stopped)?
    }
}

/// One benchmark to do.
#[derive(Debug, Clone)]
struct Task {
    run_id: u64,
    miner_uid: Option<u32>,
    bytes: u64,
    last_of_run: bool,
}

/// Why a benchmark could not be done or reported (the validator's side, not the miner's).
#[derive(Debug, thiserror::Error)]
enum ValidatorError {
    #[error("cannot reach the validator at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("validator refused {call}: {code:?}: {message}")]
    Refused {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
}

fn refused(call: &'static str) -> impl Fn(tonic::Status) -> ValidatorError {
    move |s| ValidatorError::Refused {
        call,
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// The bot; [`Bot::run`] drives it until shutdown.
pub struct Bot {
    opts: BotOptions,
    key: Arc<Keypair>,
    status: Arc<watch::Sender<BotStatus>>,
    events: broadcast::Sender<BenchEvent>,
    commands: mpsc::Receiver<StartCmd>,
    lister: MinerLister,
    client: Option<ValidatorClient<SignedChannel>>,
    backoff: Backoff,
    next_run: AtomicU64,
}

impl Bot {
    pub fn new(opts: BotOptions, key: Arc<Keypair>, lister: MinerLister) -> (Bot, BotHandle) {
        let status = BotStatus {
            hotkey: key.ss58_address().to_string(),
            since_ms: now_ms(),
            ..Default::default()
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (events, _) = broadcast::channel(1024);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let handle = BotHandle {
            status: status_rx,
            events: events.clone(),
            commands: cmd_tx,
        };
        let backoff = Backoff::new(opts.backoff_initial, opts.backoff_max);
        let bot = Bot {
            opts,
            key,
            status: Arc::new(status_tx),
            events,
            commands: cmd_rx,
            lister,
            client: None,
            backoff,
            next_run: AtomicU64::new(1),
        };
        (bot, handle)
    }

    fn set_state(&self, state: BotState, f: impl FnOnce(&mut BotStatus)) {
        self.status.send_modify(|s| {
            if s.state != state {
                s.state = state;
                s.since_ms = now_ms();
            }
            f(s);
        });
    }

    fn emit(&self, e: BenchEvent) {
        // No subscriber is fine.
        let _ = self.events.send(e);
    }

    fn event(&self, t: &Task, phase: Phase) -> BenchEvent {
        BenchEvent {
            run_id: t.run_id,
            miner_uid: t.miner_uid,
            miner_hotkey: String::new(),
            bot_hotkey: self.key.ss58_address().to_string(),
            phase,
            bytes_done: 0,
            bytes_total: 0,
            bytes_per_s: 0.0,
            result: None,
            run_finished: false,
        }
    }

    /// Turns an operator's request into tasks at the front of the queue.
    fn accept(&self, cmd: StartCmd, queue: &mut VecDeque<Task>) {
        let uids = match cmd.target {
            Target::Miner(uid) => Some(vec![uid]),
            Target::All => (self.lister)().filter(|u| !u.is_empty()),
        };
        let Some(uids) = uids else {
            let _ = cmd.reply.send(Err(StartError::NoMiners));
            return;
        };
        let run_id = self.next_run.fetch_add(1, Ordering::Relaxed);
        let bytes = cmd.bytes.unwrap_or(self.opts.bytes);
        // Operator runs go before scheduled work but after earlier operator runs.
        let at = queue.iter().take_while(|t| t.miner_uid.is_some()).count();
        for (i, &uid) in uids.iter().enumerate().rev() {
            let t = Task {
                run_id,
                miner_uid: Some(uid),
                bytes,
                last_of_run: i + 1 == uids.len(),
            };
            self.emit(self.event(&t, Phase::Queued));
            queue.insert(at, t);
        }
        tracing::info!(run_id, miners = ?uids, "benchmark run queued");
        let _ = cmd.reply.send(Ok(StartedRun {
            run_id,
            miner_uids: uids,
        }));
    }

    /// Runs until `shutdown` completes. The first scheduled benchmark starts at once.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut queue: VecDeque<Task> = VecDeque::new();
        let mut next_due = tokio::time::Instant::now();
        loop {
            while let Ok(cmd) = self.commands.try_recv() {
                self.accept(cmd, &mut queue);
            }
            let Some(task) = queue.pop_front() else {
                self.set_state(BotState::Idle, |s| s.next_attempt_ms = 0);
                tokio::select! {
                    _ = &mut shutdown => break,
                    Some(cmd) = self.commands.recv() => self.accept(cmd, &mut queue),
                    _ = tokio::time::sleep_until(next_due) => {
                        let run_id = self.next_run.fetch_add(1, Ordering::Relaxed);
                        queue.push_back(Task { run_id, miner_uid: None, bytes: self.opts.bytes, last_of_run: true });
                    }
                }
                continue;
            };
            let scheduled = task.miner_uid.is_none();
            let outcome = {
                let bench = self.benchmark(&task);
                tokio::pin!(bench);
                tokio::select! {
                    r = &mut bench => r,
                    _ = &mut shutdown => {
                        // Finishing (and reporting) releases the miner's reservation at once.
                        tracing::info!(run_id = task.run_id, "stopping: letting the running benchmark finish (at most {} s)", STOP_GRACE.as_secs());
                        if tokio::time::timeout(STOP_GRACE, &mut bench).await.is_err() {
                            tracing::warn!(run_id = task.run_id, "the benchmark did not finish in time; it is abandoned");
                        }
                        break;
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    self.backoff.reset();
                    self.status.send_modify(|s| s.last_error.clear());
                    if scheduled {
                        next_due = tokio::time::Instant::now() + self.opts.interval;
                    }
                }
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(
                        run_id = task.run_id,
                        "{e}; trying again in {:.1} s",
                        delay.as_secs_f64()
                    );
                    let mut ev = self.event(&task, Phase::Failed);
                    ev.run_finished = task.last_of_run;
                    self.emit(ev);
                    let wake = now_ms() + delay.as_millis() as u64;
                    self.set_state(BotState::BackingOff, |s| {
                        s.last_error = e.to_string();
                        s.next_attempt_ms = wake;
                        s.miner_uid = None;
                        s.miner_hotkey.clear();
                        s.progress = 0.0;
                    });
                    let until = tokio::time::Instant::now() + delay;
                    if scheduled {
                        next_due = until;
                    }
                    loop {
                        tokio::select! {
                            _ = &mut shutdown => return self.stopped(),
                            Some(cmd) = self.commands.recv() => self.accept(cmd, &mut queue),
                            _ = tokio::time::sleep_until(until) => break,
                        }
                    }
                }
            }
        }
        self.stopped();
    }

    fn stopped(&self) {
        self.set_state(BotState::Idle, |s| {
            s.miner_uid = None;
            s.next_attempt_ms = 0;
        });
        tracing::info!("bot stopped");
    }

    async fn client(&mut self) -> Result<ValidatorClient<SignedChannel>, ValidatorError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let v = &self.opts.validator;
        let ch = sign::connect(
            &v.endpoint,
            Arc::clone(&self.key),
            &v.hotkey,
            self.opts.call_timeout,
        )
        .await
        .map_err(|e| ValidatorError::Connect {
            endpoint: v.endpoint.clone(),
            reason: e.to_string(),
        })?;
        let c = ValidatorClient::new(ch);
        self.client = Some(c.clone());
        Ok(c)
    }

    /// One benchmark: request, run and check, report. `Err` only for the validator's side.
    async fn benchmark(&mut self, task: &Task) -> Result<(), ValidatorError> {
        self.set_state(BotState::Requesting, |s| {
            s.miner_uid = task.miner_uid;
            s.miner_hotkey.clear();
            s.progress = 0.0;
            s.next_attempt_ms = 0;
        });
        let mut client = self.client().await?;
        let req = RequestBenchmarkRequest {
            version: Some(Version::CURRENT.into()),
            bytes: task.bytes,
            peers: self.opts.peers,
            miner_uid: task.miner_uid,
            dtype: 1,
        };
        let assignment = match client.request_benchmark(req).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                if s.code() == tonic::Code::Unavailable {
                    self.client = None;
                }
                return Err(refused("RequestBenchmark")(s));
            }
        };
        let Some(ticket) = assignment.ticket.clone() else {
            return Err(ValidatorError::Internal(format!(
                "benchmark {} came without a ticket",
                assignment.benchmark_id
            )));
        };
        // Drawn now, after the assignment: the miner cannot have seen it.
        let seed: u64 = rand::random();
        let mut base = self.event(task, Phase::Connecting);
        base.miner_uid = Some(assignment.miner_uid);
        base.miner_hotkey = assignment.miner_hotkey.clone();
        self.emit(base.clone());
        tracing::info!(
            benchmark = assignment.benchmark_id,
            miner_uid = assignment.miner_uid,
            miner = %assignment.miner_hotkey,
            mib = task.bytes >> 20,
            "benchmark assigned"
        );
        self.set_state(BotState::Running, |s| {
            s.miner_uid = Some(assignment.miner_uid);
            s.miner_hotkey = assignment.miner_hotkey.clone();
        });

        let key = Arc::clone(&self.key);
        let status = Arc::clone(&self.status);
        let events = self.events.clone();
        let ev = base.clone();
        let result = tokio::task::spawn_blocking(move || {
            runner::run(&ticket, &key, seed, &mut |p: Progress| {
                let state = if p.phase == Phase::Verifying {
                    BotState::Verifying
                } else {
                    BotState::Running
                };
                status.send_modify(|s| {
                    if s.state != state {
                        s.state = state;
                        s.since_ms = now_ms();
                    }
                    s.progress = if p.bytes_total == 0 {
                        0.0
                    } else {
                        p.bytes_done as f64 / p.bytes_total as f64
                    };
                    s.last_bytes_per_s = p.bytes_per_s;
                });
                let mut e = ev.clone();
                e.phase = p.phase;
                e.bytes_done = p.bytes_done;
                e.bytes_total = p.bytes_total;
                e.bytes_per_s = p.bytes_per_s;
                let _ = events.send(e);
            })
        })
        .await
        .map_err(|e| ValidatorError::Internal(format!("the benchmark runner failed: {e}")))?;

        let verdict = result.verdict();
        match result.outcome {
            Outcome::Ok => tracing::info!(
                benchmark = assignment.benchmark_id,
                up_mb_s = result.upload_bytes_per_s / 1e6,
                down_mb_s = result.download_bytes_per_s / 1e6,
                broadcast_mb_s = result.broadcast_bytes_per_s / 1e6,
                latency_ms = result.latency_ms,
                checked = result.checked_elements,
                "benchmark ok: every element checked"
            ),
            _ => tracing::warn!(
                benchmark = assignment.benchmark_id,
                "benchmark failed: {verdict}"
            ),
        }
        self.set_state(BotState::Reporting, |s| {
            s.progress = 1.0;
            s.last_verdict = verdict.clone();
            if result.outcome == Outcome::Ok {
                s.benchmarks_ok += 1;
                s.last_bytes_per_s = result.download_bytes_per_s;
            } else {
                s.benchmarks_failed += 1;
            }
        });
        let mut e = base.clone();
        e.phase = Phase::Reporting;
        self.emit(e);
        let reported = self.report(&mut client, &assignment, &result).await;
        let score = reported.as_ref().map_or(0.0, |s| *s);
        let mut e = base;
        e.phase = if result.outcome == Outcome::Ok {
            Phase::Done
        } else {
            Phase::Failed
        };
        e.bytes_total = result.bytes * 2 * u64::from(result.peers.max(1));
        e.bytes_done = e.bytes_total;
        e.result = Some((result, score));
        e.run_finished = task.last_of_run;
        self.emit(e);
        reported.map(|_| ())
    }

    async fn report(
        &mut self,
        client: &mut ValidatorClient<SignedChannel>,
        a: &BenchmarkAssignment,
        r: &BenchResult,
    ) -> Result<f64, ValidatorError> {
        let req = ReportBenchmarkRequest {
            version: Some(Version::CURRENT.into()),
            benchmark_id: a.benchmark_id,
            miner_uid: a.miner_uid,
            miner_hotkey: a.miner_hotkey.clone(),
            outcome: mr_proto::v1::BenchmarkOutcome::from(r.outcome) as i32,
            reason: r.reason.clone(),
            bytes: r.bytes,
            peers: r.peers,
            seed: r.seed,
            checked_elements: r.checked_elements,
            upload_bytes_per_s: r.upload_bytes_per_s,
            download_bytes_per_s: r.download_bytes_per_s,
            broadcast_bytes_per_s: r.broadcast_bytes_per_s,
            latency_ms: r.latency_ms,
            all_reduce_s: r.all_reduce_s,
            broadcast_s: r.broadcast_s,
            started_at_ms: r.started_at_ms,
            finished_at_ms: r.finished_at_ms,
        };
        match client.report_benchmark(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                if !resp.accepted {
                    tracing::warn!(
                        benchmark = a.benchmark_id,
                        "the validator did not accept the report (unknown, late or already reported)"
                    );
                }
                Ok(resp.score)
            }
            Err(s) => {
                if s.code() == tonic::Code::Unavailable {
                    self.client = None;
                }
                Err(refused("ReportBenchmark")(s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot(lister: MinerLister) -> (Bot, BotHandle) {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let key = Arc::new(Keypair::from_mini_secret(&[5u8; 32]).expect("key"));
        let validator = Keypair::from_mini_secret(&[6u8; 32]).expect("key");
        let opts = BotOptions {
            validator: ValidatorAddr {
                endpoint: format!("127.0.0.1:{port}"),
                hotkey: validator.ss58_address().to_string(),
            },
            bytes: 1 << 20,
            peers: 3,
            interval: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_millis(400),
            call_timeout: Duration::from_secs(2),
        };
        Bot::new(opts, key, lister)
    }

    #[tokio::test]
    async fn an_unreachable_validator_is_retried_with_backoff_and_operator_runs_queue() {
        let (bot, handle) = bot(Arc::new(|| Some(vec![4, 7])));
        let mut events = handle.subscribe();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(bot.run(async {
            let _ = stop_rx.await;
        }));
        let mut st = handle.watch_status();
        let backing_off = tokio::time::timeout(
            Duration::from_secs(10),
            st.wait_for(|s| s.state == BotState::BackingOff),
        )
        .await
        .expect("backs off in time")
        .expect("bot alive")
        .clone();
        assert!(
            backing_off
                .last_error
                .contains("cannot reach the validator"),
            "{}",
            backing_off.last_error
        );
        assert!(backing_off.next_attempt_ms > 0);
        // The scheduled benchmark failed: its run ends with a Failed event.
        let e = events.recv().await.expect("event");
        assert_eq!((e.phase, e.run_finished), (Phase::Failed, true));

        // "All" becomes one run over the lister's miners, one queued event each.
        let run = handle.start(Target::All, None).await.expect("accepted");
        assert_eq!(run.miner_uids, vec![4, 7]);
        let one = handle
            .start(Target::Miner(9), Some(2))
            .await
            .expect("accepted");
        assert_eq!(one.miner_uids, vec![9]);
        assert!(one.run_id > run.run_id);
        assert!(matches!(
            handle.start(Target::Miner(9), Some(0)).await,
            Err(StartError::Size(0))
        ));
        // It keeps trying (and keeps failing) without stopping.
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let e = events.recv().await.expect("event");
                if e.phase == Phase::Failed && e.miner_uid == Some(9) {
                    break;
                }
            }
        })
        .await
        .expect("the operator's runs were attempted");
        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on shutdown")
            .expect("no panic");
        assert!(matches!(
            handle.start(Target::Miner(1), None).await,
            Err(StartError::Stopped)
        ));
    }

    #[tokio::test]
    async fn all_without_a_metagraph_is_a_clear_error() {
        let (bot, handle) = bot(Arc::new(|| None));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(bot.run(async {
            let _ = stop_rx.await;
        }));
        let e = handle.start(Target::All, None).await.expect_err("refused");
        assert!(matches!(e, StartError::NoMiners), "{e}");
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
}
