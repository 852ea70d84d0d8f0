//! The Admin gRPC service: role-neutral calls here, role data through [`RoleData`].

use super::config_edit::{self, LOGGING_LIVE};
use super::metrics::Metrics;
use super::role::{BenchStream, RoleData};
use crate::config::{Config, Loader};
use crate::logging::{LevelHandle, LogCapture};
use futures_util::Stream;
use mr_proto::v1::admin_server::Admin;
use mr_proto::v1::{
    BotStatus, ConfigDocument, GetConfigRequest, GetStatusRequest, GetWeightsRequest, JobEvent,
    JobList, JobSummary, ListJobsRequest, ListMinersRequest, LogLine, MetricsSample, MinerList,
    StartBenchRequest, StartBenchResponse, Status as DaemonStatus, UpdateConfigRequest,
    UpdateConfigResponse, WatchBenchRequest, WatchBotsRequest, WatchJobsRequest, WatchLogsRequest,
    WatchMetricsRequest, Weights,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Finished jobs ListJobs/WatchJobs include when the request says 0.
const DEFAULT_RECENT: u32 = 50;
/// Log lines WatchLogs sends first when the request says 0.
const DEFAULT_TAIL: u32 = 200;
/// How often WatchJobs and WatchBots look for changes.
const POLL: Duration = Duration::from_millis(500);

/// Everything the service needs; one per daemon, shared with the daemon's code.
pub struct AdminContext {
    pub role: Arc<dyn RoleData>,
    pub hotkey: String,
    pub netuid: u32,
    pub chain_endpoint: String,
    /// The effective configuration; UpdateConfig sends each applied change.
    pub config: watch::Sender<Config>,
    /// The file UpdateConfig writes (None: refused).
    pub config_path: Option<PathBuf>,
    /// The daemon's layers (environment, flags) to validate edits with.
    pub loader: Loader,
    pub logs: Option<LogCapture>,
    pub log_level: Option<LevelHandle>,
    pub metrics: Metrics,
    pub endpoint: String,
    pub(super) health: tonic_health::server::HealthReporter,
    started: Instant,
    ready: AtomicBool,
    update_lock: tokio::sync::Mutex<()>,
}

/// What [`AdminContext::new`] takes.
pub struct ContextParts {
    pub role: Arc<dyn RoleData>,
    pub hotkey: String,
    pub netuid: u32,
    pub chain_endpoint: String,
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub loader: Loader,
    pub logs: Option<LogCapture>,
    pub log_level: Option<LevelHandle>,
    pub endpoint: String,
}

impl AdminContext {
    pub(super) fn new(
        p: ContextParts,
        health: tonic_health::server::HealthReporter,
    ) -> Arc<AdminContext> {
        Arc::new(AdminContext {
            role: p.role,
            hotkey: p.hotkey,
            netuid: p.netuid,
            chain_endpoint: p.chain_endpoint,
            config: watch::channel(p.config).0,
            config_path: p.config_path,
            loader: p.loader,
            logs: p.logs,
            log_level: p.log_level,
            metrics: Metrics::new(),
            endpoint: p.endpoint,
            health,
            started: Instant::now(),
            ready: AtomicBool::new(false),
            update_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub(super) fn mark_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Keys that take effect without a restart.
    pub fn live_keys(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = LOGGING_LIVE.to_vec();
        k.extend(self.role.live_keys());
        k
    }

    pub fn status(&self) -> DaemonStatus {
        let mut s = DaemonStatus {
            role: self.role.role() as i32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            hotkey: self.hotkey.clone(),
            netuid: self.netuid,
            chain_endpoint: self.chain_endpoint.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            ready: self.is_ready(),
            pid: std::process::id(),
            config_path: self
                .config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            admin_endpoint: self.endpoint.clone(),
            ..Default::default()
        };
        self.role.fill_status(&mut s);
        if let Some(mr_proto::v1::status::Summary::Miner(m)) = &mut s.summary
            && let Some(last) = self.metrics.last()
        {
            m.bytes_in_per_s = last.bytes_in as f64;
            m.bytes_out_per_s = last.bytes_out as f64;
        }
        s
    }

    /// UpdateConfig: validate, write, apply.
    pub async fn update_config(
        &self,
        req: UpdateConfigRequest,
    ) -> Result<UpdateConfigResponse, Status> {
        let Some(path) = self.config_path.clone() else {
            return Err(Status::failed_precondition(
                "this daemon runs without a config file, so there is nothing to update; start it with --config FILE",
            ));
        };
        let _one_at_a_time = self.update_lock.lock().await;
        let mut resp = UpdateConfigResponse {
            path: path.display().to_string(),
            ..Default::default()
        };
        let checked = match config_edit::check(&self.loader, &path, &req) {
            Ok(c) => c,
            Err(problems) => {
                resp.problems = problems;
                return Ok(resp);
            }
        };
        let current = self.config.borrow().clone();
        resp.diff = config_edit::diff(&path, &checked.old_text, &checked.new_text);
        resp.changed_keys = config_edit::changed(&current, &checked.config);
        let live = self.live_keys();
        resp.restart_required = resp
            .changed_keys
            .iter()
            .filter(|k| !live.contains(&k.as_str()))
            .cloned()
            .collect();
        // A key the request names whose effective value is not what was asked: a higher layer wins.
        if let Ok(loaded) = self.loader.clone().file(Some(checked.tmp.clone())).load() {
            let requested = requested_keys(&req);
            for k in requested {
                let origin = loaded.origin_of(&k);
                if origin != "default" && !origin.contains(&checked.tmp.display().to_string()) {
                    resp.warnings.push(format!(
                        "{k} is set by {origin}, which wins over the file: the new value takes effect only without it"
                    ));
                }
            }
        }
        if req.dry_run {
            let _ = std::fs::remove_file(&checked.tmp);
            return Ok(resp);
        }
        if let Err(e) = config_edit::replace(&checked.tmp, &path) {
            let _ = std::fs::remove_file(&checked.tmp);
            return Err(Status::internal(format!(
                "writing {}: {e} (the file is unchanged)",
                path.display()
            )));
        }
        resp.applied = true;
        let logging_changed = current.logging != checked.config.logging;
        self.config.send_replace(checked.config.clone());
        if logging_changed
            && let Some(h) = &self.log_level
            && let Err(e) = h.set(&checked.config.logging)
        {
            tracing::warn!("changing the log level: {e}");
        }
        tracing::info!(
            changed = ?resp.changed_keys,
            restart_required = ?resp.restart_required,
            "configuration updated through the admin API"
        );
        Ok(resp)
    }

    pub fn get_config(&self) -> ConfigDocument {
        let cfg = self.config.borrow().clone();
        let loaded = self.loader.load().ok();
        let origin = |k: &str| {
            loaded
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |l| l.origin_of(k))
        };
        ConfigDocument {
            toml: toml::to_string(&cfg).unwrap_or_default(),
            path: self
                .config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            entries: config_edit::entries(&cfg, origin, &self.live_keys()),
            file_text: self
                .config_path
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default(),
        }
    }
}

fn requested_keys(req: &UpdateConfigRequest) -> Vec<String> {
    let mut keys: Vec<String> = req.set.iter().map(|s| s.key.trim().to_string()).collect();
    if let Ok(frag) = req.toml.parse::<toml::Table>() {
        fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(t) => walk(&key, t, out),
                    _ => out.push(key),
                }
            }
        }
        walk("", &frag, &mut keys);
    }
    keys
}

/// The tonic service.
#[derive(Clone)]
pub struct AdminService {
    pub ctx: Arc<AdminContext>,
}

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A stream fed by a task; the task ends when the client goes away (send fails).
fn channel_stream<T: Send + 'static>() -> (mpsc::Sender<Result<T, Status>>, Out<T>) {
    let (tx, rx) = mpsc::channel(64);
    (tx, Box::pin(ReceiverStream::new(rx)))
}

fn level_of(s: &str) -> Result<tracing::Level, Status> {
    match s.to_ascii_lowercase().as_str() {
        "" | "info" => Ok(tracing::Level::INFO),
        "error" => Ok(tracing::Level::ERROR),
        "warn" | "warning" => Ok(tracing::Level::WARN),
        "debug" => Ok(tracing::Level::DEBUG),
        "trace" => Ok(tracing::Level::TRACE),
        other => Err(Status::invalid_argument(format!(
            "min_level {other:?}: expected error, warn, info, debug or trace"
        ))),
    }
}

fn log_line(c: &crate::logging::Captured, history: bool) -> LogLine {
    LogLine {
        at_ms: c.at_ms,
        level: c.level.to_string(),
        target: c.target.clone(),
        message: c.message.clone(),
        fields: serde_json::Value::Object(c.fields.clone()).to_string(),
        history,
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn get_status(
        &self,
        _req: Request<GetStatusRequest>,
    ) -> Result<Response<DaemonStatus>, Status> {
        tracing::debug!(call = "GetStatus", "admin call");
        Ok(Response::new(self.ctx.status()))
    }

    async fn list_miners(
        &self,
        _req: Request<ListMinersRequest>,
    ) -> Result<Response<MinerList>, Status> {
        tracing::debug!(call = "ListMiners", "admin call");
        self.ctx.role.list_miners().await.map(Response::new)
    }

    async fn get_weights(
        &self,
        req: Request<GetWeightsRequest>,
    ) -> Result<Response<Weights>, Status> {
        tracing::debug!(call = "GetWeights", "admin call");
        self.ctx
            .role
            .get_weights(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_jobs(&self, req: Request<ListJobsRequest>) -> Result<Response<JobList>, Status> {
        tracing::debug!(call = "ListJobs", "admin call");
        let recent = match req.into_inner().recent {
            0 => DEFAULT_RECENT,
            n => n,
        };
        self.ctx.role.list_jobs(recent).await.map(Response::new)
    }

    async fn get_config(
        &self,
        _req: Request<GetConfigRequest>,
    ) -> Result<Response<ConfigDocument>, Status> {
        tracing::debug!(call = "GetConfig", "admin call");
        Ok(Response::new(self.ctx.get_config()))
    }

    async fn update_config(
        &self,
        req: Request<UpdateConfigRequest>,
    ) -> Result<Response<UpdateConfigResponse>, Status> {
        tracing::debug!(call = "UpdateConfig", "admin call");
        self.ctx
            .update_config(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn start_bench(
        &self,
        req: Request<StartBenchRequest>,
    ) -> Result<Response<StartBenchResponse>, Status> {
        tracing::debug!(call = "StartBench", "admin call");
        let r = req.into_inner();
        if r.miner_uid.is_none() && !r.all {
            return Err(Status::invalid_argument(
                "name a miner (miner_uid) or ask for all",
            ));
        }
        self.ctx.role.start_bench(r).await.map(Response::new)
    }

    type WatchBenchStream = BenchStream;

    async fn watch_bench(
        &self,
        req: Request<WatchBenchRequest>,
    ) -> Result<Response<Self::WatchBenchStream>, Status> {
        tracing::debug!(call = "WatchBench", "admin call");
        self.ctx
            .role
            .watch_bench(req.into_inner().run_id)
            .await
            .map(Response::new)
    }

    type WatchMetricsStream = Out<MetricsSample>;

    async fn watch_metrics(
        &self,
        req: Request<WatchMetricsRequest>,
    ) -> Result<Response<Self::WatchMetricsStream>, Status> {
        tracing::debug!(call = "WatchMetrics", "admin call");
        let live_only = req.into_inner().live_only;
        let (history, mut rx) = self.ctx.metrics.subscribe();
        let (tx, out) = channel_stream();
        tokio::spawn(async move {
            if !live_only {
                for mut s in history {
                    s.history = true;
                    if tx.send(Ok(s)).await.is_err() {
                        return;
                    }
                }
            }
            loop {
                match rx.recv().await {
                    Ok(s) => {
                        if tx.send(Ok(s)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(out))
    }

    type WatchBotsStream = Out<BotStatus>;

    async fn watch_bots(
        &self,
        _req: Request<WatchBotsRequest>,
    ) -> Result<Response<Self::WatchBotsStream>, Status> {
        tracing::debug!(call = "WatchBots", "admin call");
        let role = Arc::clone(&self.ctx.role);
        let first = role.bots().await?;
        let (tx, out) = channel_stream();
        tokio::spawn(async move {
            let mut seen: HashMap<String, BotStatus> = HashMap::new();
            let mut next = Ok(first);
            loop {
                match next {
                    Ok(bots) => {
                        for b in bots {
                            if seen.get(&b.hotkey) != Some(&b) {
                                seen.insert(b.hotkey.clone(), b.clone());
                                if tx.send(Ok(b)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = tx.closed() => return,
                }
                next = role.bots().await;
            }
        });
        Ok(Response::new(out))
    }

    type WatchJobsStream = Out<JobEvent>;

    async fn watch_jobs(
        &self,
        _req: Request<WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        tracing::debug!(call = "WatchJobs", "admin call");
        let role = Arc::clone(&self.ctx.role);
        let first = role.list_jobs(DEFAULT_RECENT).await?;
        let (tx, out) = channel_stream();
        tokio::spawn(async move {
            let mut seen: HashMap<u64, JobSummary> = HashMap::new();
            let mut initial = true;
            let mut next = Ok(first);
            loop {
                match next {
                    Ok(list) => {
                        // Oldest first, so a client building a list sees them in order.
                        for job in list.jobs.into_iter().rev() {
                            if seen.get(&job.job_id) != Some(&job) {
                                seen.insert(job.job_id, job.clone());
                                if tx
                                    .send(Ok(JobEvent {
                                        job: Some(job),
                                        initial,
                                    }))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                initial = false;
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = tx.closed() => return,
                }
                next = role.list_jobs(DEFAULT_RECENT).await;
            }
        });
        Ok(Response::new(out))
    }

    type WatchLogsStream = Out<LogLine>;

    async fn watch_logs(
        &self,
        req: Request<WatchLogsRequest>,
    ) -> Result<Response<Self::WatchLogsStream>, Status> {
        tracing::debug!(call = "WatchLogs", "admin call");
        let r = req.into_inner();
        let min = level_of(&r.min_level)?;
        let Some(logs) = self.ctx.logs.clone() else {
            return Err(Status::unavailable(
                "this daemon keeps no log lines in memory",
            ));
        };
        let tail = match r.tail {
            0 => DEFAULT_TAIL,
            n => n,
        } as usize;
        let (history, mut rx) = logs.tail(tail, min);
        let (tx, out) = channel_stream();
        tokio::spawn(async move {
            for l in &history {
                if tx.send(Ok(log_line(l, true))).await.is_err() {
                    return;
                }
            }
            if !r.follow {
                return;
            }
            loop {
                match rx.recv().await {
                    Ok(l) if l.level <= min => {
                        if tx.send(Ok(log_line(&l, false))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(out))
    }
}
