//! The event loop and the daemons' connection tasks.
//!
//! One task per daemon connects (through a [`Connector`], so discovery and transport stay in
//! `client.rs`), opens the admin streams and polls the unary calls, and sends everything as
//! [`Action`]s. When the daemon goes away the task says "disconnected", waits with exponential
//! backoff and connects again. The loop drains actions, runs `update`, hands commands to the tasks,
//! and draws at a steady frame rate; key presses come from a thread reading the terminal.

use super::action::{Action, Command, DaemonEvent};
use super::app::update;
use super::state::App;
use super::terminal::TerminalGuard;
use super::ui;
use anyhow::Context;
use mr_proto::v1::admin_client::AdminClient;
use mr_proto::v1::{
    GetConfigRequest, GetStatusRequest, GetWeightsRequest, ListMinersRequest, Role,
    StartBenchRequest, UpdateConfigRequest, WatchBenchRequest, WatchBotsRequest, WatchJobsRequest,
    WatchLogsRequest, WatchMetricsRequest,
};
use ratatui::crossterm::event::{self, Event};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Frames per second of the screen.
const FPS: u64 = 10;
/// Status poll (also how fast a silent daemon is noticed gone).
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// Validator scores and weights poll.
const SCORES_EVERY: Duration = Duration::from_secs(3);
/// Reconnect backoff: first wait and cap.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A call that takes longer than this counts as a lost daemon.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// An open channel to a daemon's admin API and the bearer token it wants.
pub struct Connection {
    pub channel: Channel,
    pub token: String,
}

pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Connection>> + Send + 'a>>;

/// How to reach a daemon named by a target (socket path or host:port). Implemented by the binary
/// on top of `client.rs`, so the console's discovery and token rules live in one place.
pub trait Connector: Send + Sync + 'static {
    fn connect<'a>(&'a self, target: &'a str) -> ConnectFuture<'a>;
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> anyhow::Result<Self> {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .context("the admin token has characters a header cannot carry")?;
        Ok(Bearer(value))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Api = AdminClient<InterceptedService<Channel, Bearer>>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the console on the terminal until the user quits. `targets` are the daemons to watch.
pub async fn run(
    targets: Vec<String>,
    connector: Arc<dyn Connector>,
    color: bool,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    let mut commands = Vec::new();
    let mut tasks = JoinSet::new();
    for (i, target) in targets.iter().enumerate() {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        commands.push(cmd_tx);
        tasks.spawn(daemon_task(
            i,
            target.clone(),
            connector.clone(),
            tx.clone(),
            cmd_rx,
        ));
    }
    let mut app = App::new(targets, color, now_ms());

    let mut guard =
        TerminalGuard::enter().context("cannot put the terminal in full-screen mode")?;
    let stop = Arc::new(AtomicBool::new(false));
    let input = {
        let (tx, stop) = (tx.clone(), stop.clone());
        std::thread::spawn(move || read_keys(tx, stop))
    };

    let mut frames = tokio::time::interval(Duration::from_millis(1000 / FPS));
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        let redraw = tokio::select! {
            _ = frames.tick() => {
                update(&mut app, Action::Tick(now_ms()));
                true
            }
            Some(action) = rx.recv() => {
                let key = matches!(action, Action::Key(_));
                dispatch(&commands, update(&mut app, action));
                // Take everything already queued before drawing again.
                while let Ok(action) = rx.try_recv() {
                    dispatch(&commands, update(&mut app, action));
                }
                key
            }
        };
        if app.quit {
            break Ok(());
        }
        if redraw && let Err(e) = guard.terminal.draw(|frame| ui::draw(frame, &app)) {
            break Err(anyhow::Error::from(e).context("cannot draw on the terminal"));
        }
    };
    stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    drop(guard);
    let _ = input.join();
    result
}

fn dispatch(commands: &[mpsc::UnboundedSender<Command>], list: Vec<(usize, Command)>) {
    for (i, command) in list {
        if let Some(tx) = commands.get(i) {
            let _ = tx.send(command);
        }
    }
}

/// Reads terminal events on a plain thread (crossterm's reads block) until `stop`.
fn read_keys(tx: mpsc::UnboundedSender<Action>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) => {
                    if tx.send(Action::Key(key)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// Keeps one daemon connected for the life of the console.
async fn daemon_task(
    i: usize,
    target: String,
    connector: Arc<dyn Connector>,
    tx: mpsc::UnboundedSender<Action>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let send = |event| tx.send(Action::Daemon(i, event)).is_ok();
    let mut backoff = BACKOFF_FIRST;
    loop {
        if !send(DaemonEvent::Connecting) {
            return;
        }
        let started = tokio::time::Instant::now();
        let error = match session(i, &target, connector.as_ref(), &tx, &mut commands).await {
            Ok(()) => return,
            Err(e) => format!("{e:#}"),
        };
        // A session that stayed up a while starts the backoff over.
        if started.elapsed() > BACKOFF_MAX * 2 {
            backoff = BACKOFF_FIRST;
        }
        let retry_at = tokio::time::Instant::now() + backoff;
        if !send(DaemonEvent::Disconnected {
            error,
            retry_at_ms: now_ms() + backoff.as_millis() as u64,
        }) {
            return;
        }
        // While waiting, commands fail at once rather than queue up behind a dead daemon.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(retry_at) => break,
                command = commands.recv() => match command {
                    Some(command) => {
                        send(DaemonEvent::CommandFailed(format!(
                            "{target}: not connected, cannot {}", describe(&command)
                        )));
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn describe(command: &Command) -> &'static str {
    match command {
        Command::StartBench { .. } => "start a benchmark",
        Command::CheckConfig(_) => "check the config",
        Command::ApplyConfig(_) => "apply the config",
        Command::ReloadConfig => "reload the config",
    }
}

async fn call<T>(
    what: &str,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(anyhow::anyhow!("{what}: {}", status_text(&status))),
        Err(_) => Err(anyhow::anyhow!(
            "{what}: no answer within {}s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

fn status_text(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_string()
    }
}

/// One connected period: returns Err when the daemon is lost, Ok only when the console is closing.
async fn session(
    i: usize,
    target: &str,
    connector: &dyn Connector,
    tx: &mpsc::UnboundedSender<Action>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> anyhow::Result<()> {
    let conn = tokio::time::timeout(CALL_TIMEOUT, connector.connect(target))
        .await
        .map_err(|_| anyhow::anyhow!("connect: no answer within {}s", CALL_TIMEOUT.as_secs()))??;
    let mut api: Api = AdminClient::with_interceptor(conn.channel, Bearer::new(&conn.token)?);
    let status = call("GetStatus", api.get_status(GetStatusRequest {})).await?;
    let validator = status.role == Role::Validator as i32;
    let send = |event| tx.send(Action::Daemon(i, event)).is_ok();
    send(DaemonEvent::Connected(Box::new(status)));

    // Streams run as tasks; one that fails for any reason but UNIMPLEMENTED ends the session.
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<String>();
    let mut streams = JoinSet::new();
    spawn_streams(&mut streams, i, &api, tx, &lost_tx);

    match call("GetConfig", api.get_config(GetConfigRequest {})).await {
        Ok(doc) => {
            send(DaemonEvent::Config(doc));
        }
        Err(e) => {
            send(DaemonEvent::CommandFailed(format!("{e:#}")));
        }
    }
    let mut status_timer = tokio::time::interval(STATUS_EVERY);
    let mut scores_timer = tokio::time::interval(SCORES_EVERY);
    // Commands run beside the polls so a slow UpdateConfig does not stall the status.
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            _ = status_timer.tick() => {
                let status = call("GetStatus", api.get_status(GetStatusRequest {})).await?;
                if !send(DaemonEvent::Status(Box::new(status))) {
                    return Ok(());
                }
            }
            _ = scores_timer.tick(), if validator => {
                match call("ListMiners", api.list_miners(ListMinersRequest {})).await {
                    Ok(list) => { send(DaemonEvent::Miners(list)); }
                    Err(e) if is_unimplemented(&e) => {}
                    Err(e) => return Err(e),
                }
                match call("GetWeights", api.get_weights(GetWeightsRequest { history: 30 })).await {
                    Ok(w) => { send(DaemonEvent::Weights(w)); }
                    Err(e) if is_unimplemented(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(why) = lost_rx.recv() => return Err(anyhow::anyhow!(why)),
            command = commands.recv() => match command {
                Some(command) => {
                    let (api, tx) = (api.clone(), tx.clone());
                    running.spawn(async move {
                        let event = run_command(api, command).await;
                        let _ = tx.send(Action::Daemon(i, event));
                    });
                }
                None => return Ok(()),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

fn is_unimplemented(e: &anyhow::Error) -> bool {
    // `call` keeps the status text; UNIMPLEMENTED answers name the role ("... not served by ...").
    let text = format!("{e:#}").to_lowercase();
    text.contains("unimplemented")
        || text.contains("not served")
        || text.contains("not implemented")
}

async fn run_command(mut api: Api, command: Command) -> DaemonEvent {
    let pairs = |edits: Vec<(String, String)>| {
        edits
            .into_iter()
            .map(|(key, value)| mr_proto::v1::ConfigSet { key, value })
            .collect()
    };
    let result = match command {
        Command::StartBench { miner_uid } => call(
            "StartBench",
            api.start_bench(StartBenchRequest {
                miner_uid,
                all: miner_uid.is_none(),
                mib: 0,
            }),
        )
        .await
        .map(DaemonEvent::BenchStarted),
        Command::CheckConfig(edits) => call(
            "UpdateConfig (dry run)",
            api.update_config(UpdateConfigRequest {
                toml: String::new(),
                set: pairs(edits),
                dry_run: true,
                ..Default::default()
            }),
        )
        .await
        .map(DaemonEvent::ConfigChecked),
        Command::ApplyConfig(edits) => {
            let applied = call(
                "UpdateConfig",
                api.update_config(UpdateConfigRequest {
                    toml: String::new(),
                    set: pairs(edits),
                    dry_run: false,
                    ..Default::default()
                }),
            )
            .await;
            // Show the configuration as it is now (origins and values changed).
            if let Ok(r) = &applied
                && r.applied
                && let Ok(doc) = call("GetConfig", api.get_config(GetConfigRequest {})).await
            {
                return DaemonEvent::ConfigAppliedWith(r.clone(), doc);
            }
            applied.map(DaemonEvent::ConfigApplied)
        }
        Command::ReloadConfig => call("GetConfig", api.get_config(GetConfigRequest {}))
            .await
            .map(DaemonEvent::Config),
    };
    result.unwrap_or_else(|e| DaemonEvent::CommandFailed(format!("{e:#}")))
}

/// Opens every stream; each forwards its messages as actions. A stream the role does not serve
/// (UNIMPLEMENTED) just ends; any other failure or end reports the session lost.
fn spawn_streams(
    set: &mut JoinSet<()>,
    i: usize,
    api: &Api,
    tx: &mpsc::UnboundedSender<Action>,
    lost: &mpsc::UnboundedSender<String>,
) {
    macro_rules! stream {
        ($name:literal, $method:ident, $request:expr, $event:expr) => {{
            let (mut api, tx, lost) = (api.clone(), tx.clone(), lost.clone());
            set.spawn(async move {
                // A stream the daemon ends on its own (none should) is opened again after a pause.
                let why = loop {
                    match api.$method($request).await {
                        Ok(response) => {
                            let mut stream = response.into_inner();
                            let ended = loop {
                                match stream.message().await {
                                    Ok(Some(message)) => {
                                        if tx.send(Action::Daemon(i, $event(message))).is_err() {
                                            return;
                                        }
                                    }
                                    Ok(None) => break None,
                                    Err(status) => {
                                        break Some(format!("{}: {}", $name, status_text(&status)));
                                    }
                                }
                            };
                            match ended {
                                Some(why) => break why,
                                None => tokio::time::sleep(Duration::from_secs(1)).await,
                            }
                        }
                        Err(status) if status.code() == tonic::Code::Unimplemented => return,
                        Err(status) => break format!("{}: {}", $name, status_text(&status)),
                    }
                };
                let _ = lost.send(why);
            });
        }};
    }
    stream!(
        "WatchMetrics",
        watch_metrics,
        WatchMetricsRequest { live_only: false },
        DaemonEvent::Metrics
    );
    stream!(
        "WatchBots",
        watch_bots,
        WatchBotsRequest {},
        DaemonEvent::Bot
    );
    stream!(
        "WatchJobs",
        watch_jobs,
        WatchJobsRequest {},
        DaemonEvent::Job
    );
    stream!(
        "WatchLogs",
        watch_logs,
        WatchLogsRequest {
            tail: 500,
            follow: true,
            min_level: "debug".to_string()
        },
        DaemonEvent::Log
    );
    stream!(
        "WatchBench",
        watch_bench,
        WatchBenchRequest { run_id: 0 },
        DaemonEvent::Bench
    );
}
