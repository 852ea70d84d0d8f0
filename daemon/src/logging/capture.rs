//! A tracing layer that keeps the most recent log lines in memory and broadcasts new ones, for
//! the admin API's WatchLogs (history first, then live).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Lines kept for WatchLogs' history.
pub const CAPACITY: usize = 2000;

/// One captured line.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub at_ms: u64,
    pub level: Level,
    pub target: String,
    pub message: String,
    /// Structured fields, as a JSON object.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// The shared buffer: clone it freely; the layer writes, the admin server reads.
#[derive(Clone)]
pub struct LogCapture {
    inner: Arc<Mutex<VecDeque<Captured>>>,
    tx: broadcast::Sender<Captured>,
}

impl Default for LogCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl LogCapture {
    pub fn new() -> Self {
        LogCapture {
            inner: Arc::new(Mutex::new(VecDeque::with_capacity(CAPACITY))),
            tx: broadcast::channel(1024).0,
        }
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, VecDeque<Captured>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last `n` lines at `min` level or more severe, oldest first, and a receiver of the lines
    /// after them (subscribed under the same lock, so nothing falls between the two).
    pub fn tail(&self, n: usize, min: Level) -> (Vec<Captured>, broadcast::Receiver<Captured>) {
        let lines = self.lines();
        let rx = self.tx.subscribe();
        let mut out: Vec<Captured> = lines
            .iter()
            .rev()
            .filter(|l| l.level <= min)
            .take(n)
            .cloned()
            .collect();
        out.reverse();
        (out, rx)
    }

    fn push(&self, line: Captured) {
        let mut lines = self.lines();
        if lines.len() == CAPACITY {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        let _ = self.tx.send(line);
    }

    /// The layer to add to the subscriber.
    pub fn layer(&self) -> CaptureLayer {
        CaptureLayer { cap: self.clone() }
    }
}

pub struct CaptureLayer {
    cap: LogCapture,
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.insert(field.name().into(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), value.into());
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let meta = event.metadata();
        self.cap.push(Captured {
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            level: *meta.level(),
            target: meta.target().to_string(),
            message: f.message,
            fields: f.fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_lines_and_filters_by_level() {
        let cap = LogCapture::new();
        let sub = tracing_subscriber::registry().with(cap.layer());
        tracing::subscriber::with_default(sub, || {
            for i in 0..CAPACITY + 5 {
                tracing::debug!(i, "line");
            }
            tracing::warn!(peer = "x", "careful");
        });
        let (all, _) = cap.tail(usize::MAX, Level::TRACE);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].fields["i"], 6);
        let (warn, _) = cap.tail(10, Level::WARN);
        assert_eq!(warn.len(), 1);
        assert_eq!(warn[0].message, "careful");
        assert_eq!(warn[0].fields["peer"], "x");
    }
}
