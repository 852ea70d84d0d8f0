//! Prometheus exporter (`[metrics] enabled`, `metrics.addr`): `GET /metrics` in the text
//! exposition format, built with `prometheus-client` at each scrape from the same sources the
//! admin API reads (the role's status, miners, weights, jobs and bots; the traffic samples;
//! refusal counts), so the two never disagree.

use super::service::AdminContext;
use crate::core::refusals;
use mr_proto::v1::status::Summary;
use mr_proto::v1::{GetWeightsRequest, JobState, Role};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::JoinHandle;

type Labels = Vec<(String, String)>;
type GaugeF = Gauge<f64, AtomicU64>;

/// Bytes since the daemon started, summed from the per-second samples.
#[derive(Default)]
struct Totals {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// A running exporter.
pub struct Exporter {
    pub addr: SocketAddr,
    server: JoinHandle<()>,
    summer: JoinHandle<()>,
}

impl Exporter {
    /// Binds `addr` (an error when it cannot: the daemon should not start half-configured) and
    /// serves until [`Exporter::stop`].
    pub async fn start(ctx: Arc<AdminContext>, addr: SocketAddr) -> std::io::Result<Exporter> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let totals = Arc::new(Totals::default());
        let summer = {
            let totals = Arc::clone(&totals);
            let (history, mut live) = ctx.metrics.subscribe();
            tokio::spawn(async move {
                for s in history {
                    totals.bytes_in.fetch_add(s.bytes_in, Ordering::Relaxed);
                    totals.bytes_out.fetch_add(s.bytes_out, Ordering::Relaxed);
                }
                loop {
                    match live.recv().await {
                        Ok(s) => {
                            totals.bytes_in.fetch_add(s.bytes_in, Ordering::Relaxed);
                            totals.bytes_out.fetch_add(s.bytes_out, Ordering::Relaxed);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(missed = n, "metrics exporter lagged");
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (ctx, totals) = (Arc::clone(&ctx), Arc::clone(&totals));
                async move { scrape(&ctx, &totals).await }
            }),
        );
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("metrics exporter on {addr} stopped: {e}");
            }
        });
        tracing::info!(%addr, "Prometheus metrics at http://{addr}/metrics");
        Ok(Exporter {
            addr,
            server,
            summer,
        })
    }

    /// Stops serving (also on drop).
    pub fn stop(self) {}
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.abort();
        self.summer.abort();
    }
}

fn role_label(role: Role) -> &'static str {
    super::role_name(role)
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = GaugeF::default();
    g.set(v);
    reg.register(name, help, g);
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

async fn scrape(
    ctx: &AdminContext,
    totals: &Totals,
) -> (
    axum::http::StatusCode,
    [(axum::http::header::HeaderName, &'static str); 1],
    String,
) {
    let ctype = [(
        axum::http::header::CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )];
    let mut reg = Registry::with_prefix("mapreduce");
    fill(ctx, totals, &mut reg).await;
    let mut out = String::new();
    match encode(&mut out, &reg) {
        Ok(()) => (axum::http::StatusCode::OK, ctype, out),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ctype,
            format!("encoding metrics: {e}\n"),
        ),
    }
}

async fn fill(ctx: &AdminContext, totals: &Totals, reg: &mut Registry) {
    let st = ctx.status();
    let role = Role::try_from(st.role).unwrap_or(Role::Unspecified);
    let info: Family<Labels, GaugeF> = Family::default();
    info.get_or_create(&labels(&[
        ("role", role_label(role).to_string()),
        ("version", st.version.clone()),
        ("hotkey", st.hotkey.clone()),
        ("netuid", st.netuid.to_string()),
    ]))
    .set(1.0);
    reg.register("info", "The daemon: role, version, hotkey, netuid", info);
    gauge(
        reg,
        "ready",
        "1 once the daemon serves",
        f64::from(u8::from(st.ready)),
    );
    gauge(
        reg,
        "uptime_seconds",
        "Seconds since start",
        st.uptime_s as f64,
    );
    counter(
        reg,
        "received_bytes",
        "Data-plane bytes received",
        totals.bytes_in.load(Ordering::Relaxed),
    );
    counter(
        reg,
        "sent_bytes",
        "Data-plane bytes sent",
        totals.bytes_out.load(Ordering::Relaxed),
    );
    if let Some(last) = ctx.metrics.last() {
        gauge(
            reg,
            "memory_reserved_bytes",
            "Bytes reserved by jobs",
            last.memory_reserved as f64,
        );
    }
    gauge(
        reg,
        "process_resident_memory_bytes",
        "Resident memory of the daemon",
        super::metrics::rss_bytes() as f64,
    );
    if st.last_block > 0 {
        gauge(reg, "chain_block", "Last block seen", st.last_block as f64);
        let age = crate::wire::handshake::now_ms().saturating_sub(st.last_block_at_ms) as f64 / 1e3;
        gauge(
            reg,
            "chain_block_age_seconds",
            "Seconds since the last block arrived (lag)",
            age,
        );
    }
    gauge(
        reg,
        "jobs_running",
        "Jobs running now",
        f64::from(st.jobs_running),
    );

    let refused: Family<Labels, Counter> = Family::default();
    for ((place, reason), n) in refusals::snapshot() {
        refused
            .get_or_create(&labels(&[
                ("place", place.into()),
                ("reason", reason.into()),
            ]))
            .inc_by(n);
    }
    reg.register(
        "refusals",
        "Requests refused, by listener and reason",
        refused,
    );

    if let Ok(jobs) = ctx.role.list_jobs(50).await {
        let by_state: Family<Labels, GaugeF> = Family::default();
        for j in &jobs.jobs {
            let state = JobState::try_from(j.state).unwrap_or(JobState::Unspecified);
            let name = state
                .as_str_name()
                .trim_start_matches("JOB_STATE_")
                .to_lowercase();
            by_state
                .get_or_create(&labels(&[("state", name)]))
                .inc_by(1.0);
        }
        reg.register(
            "jobs",
            "Running and recent jobs (up to 50 finished), by state",
            by_state,
        );
    }

    match &st.summary {
        Some(Summary::Miner(m)) => {
            gauge(
                reg,
                "relay_memory_limit_bytes",
                "Relay memory budget",
                m.memory_limit as f64,
            );
            counter(
                reg,
                "jobs_served",
                "Jobs this miner has served",
                m.jobs_served,
            );
            gauge(
                reg,
                "draining",
                "1 while draining",
                f64::from(u8::from(m.draining)),
            );
        }
        Some(Summary::Validator(v)) => {
            gauge(
                reg,
                "miners",
                "Miners in the metagraph",
                f64::from(v.miners_total),
            );
            gauge(
                reg,
                "miners_reachable",
                "Miners answering",
                f64::from(v.miners_reachable),
            );
            counter(reg, "benchmarks", "Benchmarks reported", v.benchmarks_total);
            use crate::validator::verify::{SAMPLES_CHECKED, SAMPLES_FAILED};
            counter(
                reg,
                "live_samples_checked",
                "Sampled blocks of live jobs recomputed (live-job verification)",
                SAMPLES_CHECKED.load(Ordering::Relaxed),
            );
            counter(
                reg,
                "live_samples_failed",
                "Sampled blocks of live jobs that did not match (a miner or a peer flagged)",
                SAMPLES_FAILED.load(Ordering::Relaxed),
            );
            gauge(
                reg,
                "bots_known",
                "Bench bots seen",
                f64::from(v.bots_known),
            );
        }
        Some(Summary::Bench(b)) => {
            let runs: Family<Labels, Counter> = Family::default();
            runs.get_or_create(&labels(&[("outcome", "ok".into())]))
                .inc_by(b.benchmarks_ok);
            runs.get_or_create(&labels(&[("outcome", "failed".into())]))
                .inc_by(b.benchmarks_failed);
            reg.register(
                "bot_benchmarks",
                "Benchmarks this bot ran, by outcome",
                runs,
            );
        }
        None => {}
    }

    if role == Role::Validator {
        if let Ok(list) = ctx.role.list_miners().await {
            let ema: Family<Labels, GaugeF> = Family::default();
            let weight: Family<Labels, GaugeF> = Family::default();
            let thr: Family<Labels, GaugeF> = Family::default();
            let success: Family<Labels, GaugeF> = Family::default();
            for m in &list.miners {
                let who = labels(&[("uid", m.uid.to_string()), ("hotkey", m.hotkey.clone())]);
                weight.get_or_create(&who).set(m.weight);
                if let Some(s) = &m.score {
                    ema.get_or_create(&who).set(s.ema);
                    success.get_or_create(&who).set(s.success_rate);
                    for (dir, v) in [
                        ("up", s.upload_bytes_per_s),
                        ("down", s.download_bytes_per_s),
                    ] {
                        let mut l = who.clone();
                        l.push(("direction".into(), dir.into()));
                        thr.get_or_create(&l).set(v);
                    }
                }
            }
            reg.register("miner_score_ema", "Each miner's score EMA", ema);
            reg.register("miner_weight", "Each miner's normalised weight", weight);
            reg.register(
                "miner_throughput_bytes_per_second",
                "Verified benchmark throughput per virtual peer",
                thr,
            );
            reg.register(
                "miner_success_rate",
                "Successful benchmarks in the window",
                success,
            );
        }
        if let Ok(w) = ctx.role.get_weights(GetWeightsRequest { history: 1 }).await {
            gauge(
                reg,
                "weights_last_set_block",
                "Block of the last weight set",
                w.last_set_block as f64,
            );
            gauge(
                reg,
                "weights_next_allowed_block",
                "Block from which weights may be set again",
                w.next_allowed_block as f64,
            );
        }
    }
}
