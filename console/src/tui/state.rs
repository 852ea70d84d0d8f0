//! What the console knows: per daemon, the last data its admin API sent, and the view state (tab,
//! selections, edits). Only `update` (see `app.rs`) changes it; drawing only reads it.

use mr_proto::v1::{
    BenchEvent, BotStatus, ConfigDocument, ConfigEntry, JobSummary, LogLine, MetricsSample,
    MinerList, Status, UpdateConfigResponse, Weights,
};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Samples older than this (relative to the newest) are dropped: the admin API's ring buffer is as long.
pub const HISTORY_MS: u64 = 15 * 60 * 1000;
/// Log lines kept per daemon.
pub const LOG_LINES: usize = 5000;
/// Benchmark progress rows kept per daemon (newest runs win).
pub const BENCH_ROWS: usize = 64;
/// Finished jobs kept per daemon (running ones are always kept).
pub const FINISHED_JOBS: usize = 200;

/// The screens, in the order of their number keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Bandwidth,
    Bots,
    Weights,
    Jobs,
    Config,
    Logs,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Overview,
        Tab::Bandwidth,
        Tab::Bots,
        Tab::Weights,
        Tab::Jobs,
        Tab::Config,
        Tab::Logs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Bandwidth => "Bandwidth",
            Tab::Bots => "Bots",
            Tab::Weights => "Weights",
            Tab::Jobs => "Jobs",
            Tab::Config => "Config",
            Tab::Logs => "Logs",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    pub fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    pub fn prev(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }
}

/// Time span of the Bandwidth charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    One,
    Five,
    Fifteen,
}

impl Window {
    pub fn secs(self) -> u64 {
        match self {
            Window::One => 60,
            Window::Five => 300,
            Window::Fifteen => 900,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Window::One => "1 min",
            Window::Five => "5 min",
            Window::Fifteen => "15 min",
        }
    }

    pub fn next(self) -> Window {
        match self {
            Window::One => Window::Five,
            Window::Five => Window::Fifteen,
            Window::Fifteen => Window::One,
        }
    }
}

/// The connection to one daemon as the user should see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    Connected,
    /// Lost or never reached; the next attempt is at `retry_at_ms`.
    Disconnected {
        error: String,
        retry_at_ms: u64,
    },
}

/// One second of traffic, totals or one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Point {
    pub at_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One counterpart's traffic over time (a peer for a miner, a miner for a validator or bench).
#[derive(Debug, Clone, Default)]
pub struct FlowSeries {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub points: VecDeque<Point>,
}

/// Current, mean and peak of one direction over a window, bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RateStats {
    pub current: f64,
    pub average: f64,
    pub peak: f64,
}

/// Per-second samples for the last 15 minutes, totals and per flow.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub totals: VecDeque<Point>,
    pub flows: Vec<FlowSeries>,
    index: HashMap<String, usize>,
    pub jobs_running: u32,
    pub memory_reserved: u64,
    pub rss_bytes: u64,
}

impl Metrics {
    /// Adds one sample; a sample older than the newest one (a replayed ring buffer after a
    /// reconnect) is dropped so the series stays ordered and has no duplicates.
    pub fn push(&mut self, sample: &MetricsSample) {
        if let Some(last) = self.totals.back()
            && sample.at_ms <= last.at_ms
        {
            return;
        }
        self.totals.push_back(Point {
            at_ms: sample.at_ms,
            bytes_in: sample.bytes_in,
            bytes_out: sample.bytes_out,
        });
        for flow in &sample.flows {
            let i = match self.index.get(&flow.id) {
                Some(i) => *i,
                None => {
                    self.flows.push(FlowSeries {
                        id: flow.id.clone(),
                        kind: flow.kind.clone(),
                        label: flow.label.clone(),
                        points: VecDeque::new(),
                    });
                    self.index.insert(flow.id.clone(), self.flows.len() - 1);
                    self.flows.len() - 1
                }
            };
            let series = &mut self.flows[i];
            if !flow.label.is_empty() && series.label != flow.label {
                series.label = flow.label.clone();
            }
            series.points.push_back(Point {
                at_ms: sample.at_ms,
                bytes_in: flow.bytes_in,
                bytes_out: flow.bytes_out,
            });
        }
        self.jobs_running = sample.jobs_running;
        self.memory_reserved = sample.memory_reserved;
        self.rss_bytes = sample.rss_bytes;
        self.prune(sample.at_ms.saturating_sub(HISTORY_MS));
    }

    fn prune(&mut self, before_ms: u64) {
        while self.totals.front().is_some_and(|p| p.at_ms < before_ms) {
            self.totals.pop_front();
        }
        let mut removed = false;
        for flow in &mut self.flows {
            while flow.points.front().is_some_and(|p| p.at_ms < before_ms) {
                flow.points.pop_front();
            }
            removed |= flow.points.is_empty();
        }
        if removed {
            self.flows.retain(|f| !f.points.is_empty());
            self.index = self
                .flows
                .iter()
                .enumerate()
                .map(|(i, f)| (f.id.clone(), i))
                .collect();
        }
    }

    /// The newest sample's time (0 when none).
    pub fn latest_ms(&self) -> u64 {
        self.totals.back().map_or(0, |p| p.at_ms)
    }
}

/// Points of `series` with `at_ms >= since_ms` (the series is ordered by time).
pub fn since(series: &VecDeque<Point>, since_ms: u64) -> impl Iterator<Item = &Point> {
    let start = series.partition_point(|p| p.at_ms < since_ms);
    series.range(start..)
}

/// Current (newest point), average and peak of inbound and outbound bytes per second.
pub fn rate_stats(series: &VecDeque<Point>, since_ms: u64) -> (RateStats, RateStats) {
    let mut n = 0u64;
    let (mut sum_in, mut sum_out, mut peak_in, mut peak_out) = (0u64, 0u64, 0u64, 0u64);
    for p in since(series, since_ms) {
        n += 1;
        sum_in += p.bytes_in;
        sum_out += p.bytes_out;
        peak_in = peak_in.max(p.bytes_in);
        peak_out = peak_out.max(p.bytes_out);
    }
    let last = series.back().copied().unwrap_or_default();
    let avg = |s: u64| if n == 0 { 0.0 } else { s as f64 / n as f64 };
    (
        RateStats {
            current: last.bytes_in as f64,
            average: avg(sum_in),
            peak: peak_in as f64,
        },
        RateStats {
            current: last.bytes_out as f64,
            average: avg(sum_out),
            peak: peak_out as f64,
        },
    )
}

/// Pending edits of the Config tab and what the daemon said of them.
#[derive(Debug, Clone, Default)]
pub struct ConfigForm {
    /// Key -> new value (as TOML text), in key order.
    pub edits: BTreeMap<String, String>,
    /// The daemon's answer to a dry run of `edits` (problems and diff).
    pub preview: Option<UpdateConfigResponse>,
    /// The answer to the last apply.
    pub applied: Option<UpdateConfigResponse>,
    /// A dry run or apply is on its way.
    pub waiting: bool,
}

impl ConfigForm {
    pub fn problem(&self, key: &str) -> Option<&str> {
        self.preview
            .as_ref()?
            .problems
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.message.as_str())
    }
}

/// Everything known about one daemon.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Where it is (socket path or host:port), as the user named it or as it was found.
    pub target: String,
    pub link: Link,
    /// Wall-clock time of the last connect (unix ms), for "reconnected" notices.
    pub connected_at_ms: u64,
    pub status: Option<Status>,
    pub metrics: Metrics,
    pub bots: BTreeMap<String, BotStatus>,
    /// Latest event per (run, miner uid).
    pub bench: BTreeMap<(u64, u32), BenchEvent>,
    pub miners: Option<MinerList>,
    pub weights: Option<Weights>,
    pub jobs: BTreeMap<u64, JobSummary>,
    pub config: Option<ConfigDocument>,
    pub form: ConfigForm,
    pub logs: VecDeque<LogLine>,
}

impl Daemon {
    pub fn new(target: impl Into<String>) -> Self {
        Daemon {
            target: target.into(),
            link: Link::Connecting,
            connected_at_ms: 0,
            status: None,
            metrics: Metrics::default(),
            bots: BTreeMap::new(),
            bench: BTreeMap::new(),
            miners: None,
            weights: None,
            jobs: BTreeMap::new(),
            config: None,
            form: ConfigForm::default(),
            logs: VecDeque::new(),
        }
    }

    /// Short name for the daemon bar: the socket's file name without `.sock`, or host:port.
    pub fn name(&self) -> String {
        std::path::Path::new(&self.target)
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(".sock").to_string())
            .unwrap_or_else(|| self.target.clone())
    }

    /// Jobs in display order: running first (newest first), then finished (newest first).
    pub fn jobs_sorted(&self) -> Vec<&JobSummary> {
        let mut jobs: Vec<&JobSummary> = self.jobs.values().collect();
        jobs.sort_by_key(|j| (j.finished_at_ms != 0, std::cmp::Reverse(j.created_at_ms)));
        jobs
    }
}

/// Levels in increasing verbosity; the filter shows lines at or above the chosen one.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

pub fn level_rank(level: &str) -> usize {
    LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(level))
        .unwrap_or(2)
}

/// The Logs tab's view: minimum level, search text, scroll (0: follow the newest line).
#[derive(Debug, Clone)]
pub struct LogView {
    pub level: usize,
    pub search: String,
    pub scroll: usize,
}

impl Default for LogView {
    fn default() -> Self {
        LogView {
            level: 2,
            search: String::new(),
            scroll: 0,
        }
    }
}

impl LogView {
    pub fn matches(&self, line: &LogLine) -> bool {
        if level_rank(&line.level) > self.level {
            return false;
        }
        if self.search.is_empty() {
            return true;
        }
        let needle = self.search.to_lowercase();
        line.message.to_lowercase().contains(&needle)
            || line.target.to_lowercase().contains(&needle)
            || line.fields.to_lowercase().contains(&needle)
    }
}

/// What keys do right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Editing the value of a config key; the buffer is the new value as typed.
    EditConfig {
        key: String,
        buffer: String,
    },
    /// Typing the Logs search text.
    Search,
    /// Typing the Config key filter.
    ConfigFilter,
}

/// A one-line message at the bottom of the screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
    /// Hidden after this time (unix ms).
    pub until_ms: u64,
}

/// The whole console.
#[derive(Debug, Clone)]
pub struct App {
    pub daemons: Vec<Daemon>,
    /// Index of the daemon shown.
    pub current: usize,
    pub tab: Tab,
    pub window: Window,
    /// Wall clock (unix ms) as of the last tick: drawing uses this, never the system clock.
    pub now_ms: u64,
    pub mode: Mode,
    pub help: bool,
    pub color: bool,
    pub quit: bool,
    pub bots_selected: usize,
    pub weights_selected: usize,
    pub jobs_selected: usize,
    pub config_selected: usize,
    /// Config keys shown: those containing this text (all when empty).
    pub config_filter: String,
    pub logs: LogView,
    pub notice: Option<Notice>,
}

impl App {
    pub fn new(targets: Vec<String>, color: bool, now_ms: u64) -> Self {
        App {
            daemons: targets.into_iter().map(Daemon::new).collect(),
            current: 0,
            tab: Tab::Overview,
            window: Window::Five,
            now_ms,
            mode: Mode::Normal,
            help: false,
            color,
            quit: false,
            bots_selected: 0,
            weights_selected: 0,
            jobs_selected: 0,
            config_selected: 0,
            config_filter: String::new(),
            logs: LogView::default(),
            notice: None,
        }
    }

    pub fn daemon(&self) -> Option<&Daemon> {
        self.daemons.get(self.current)
    }

    /// The config entries the Config tab lists (after the key filter).
    pub fn config_entries<'a>(&self, d: &'a Daemon) -> Vec<&'a ConfigEntry> {
        let needle = self.config_filter.to_lowercase();
        d.config.as_ref().map_or(Vec::new(), |c| {
            c.entries
                .iter()
                .filter(|e| needle.is_empty() || e.key.to_lowercase().contains(&needle))
                .collect()
        })
    }

    /// The config entry under the selection.
    pub fn selected_config_entry(&self) -> Option<&ConfigEntry> {
        let d = self.daemon()?;
        self.config_entries(d).get(self.config_selected).copied()
    }
}
