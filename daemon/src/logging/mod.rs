//! tracing set-up: human or JSON lines on stderr, optional daily-rotated files.
//!
//! The level comes from `RUST_LOG` when set, else from `--logging.trace` / `--logging.debug`, else info.
//! One filter applies to every output (it can be changed at run time through [`LogGuard::set_level`]);
//! [`capture`] keeps recent lines in memory for the admin API.

pub mod capture;
pub use capture::{Captured, LogCapture};

use crate::config::LoggingConfig;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};

/// Keeps the file writer flushing; drop it last (at the end of `main`).
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
    /// Recent lines, for WatchLogs.
    pub capture: LogCapture,
    level: LevelHandle,
}

/// Changes the level of every output while the process runs.
#[derive(Clone)]
pub struct LevelHandle(reload::Handle<EnvFilter, Registry>);

impl LevelHandle {
    /// Switches to the level of `cfg` (`RUST_LOG` is not consulted again: the operator asked
    /// for this level now).
    pub fn set(&self, cfg: &LoggingConfig) -> Result<(), LoggingError> {
        self.0
            .reload(EnvFilter::new(level(cfg)))
            .map_err(|e| LoggingError::Filter(e.to_string()))
    }
}

impl LogGuard {
    pub fn level_handle(&self) -> LevelHandle {
        self.level.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot create log folder {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open log files in {path}: {reason}")]
    Appender { path: String, reason: String },
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    #[error("logging was already initialised")]
    AlreadySet,
}

/// The default filter directive for a config.
pub fn level(cfg: &LoggingConfig) -> &'static str {
    if cfg.trace {
        "trace"
    } else if cfg.debug {
        "debug"
    } else {
        "info"
    }
}

fn filter(cfg: &LoggingConfig) -> Result<EnvFilter, LoggingError> {
    match std::env::var("RUST_LOG") {
        Ok(s) if !s.is_empty() => {
            EnvFilter::try_new(&s).map_err(|e| LoggingError::Filter(e.to_string()))
        }
        _ => Ok(EnvFilter::new(level(cfg))),
    }
}

/// Install the global subscriber. `role` names the log files (`<role>.YYYY-MM-DD.log`).
pub fn init(cfg: &LoggingConfig, role: &str) -> Result<LogGuard, LoggingError> {
    let (filter_layer, handle) = reload::Layer::new(filter(cfg)?);
    let stderr = if cfg.json {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };

    let (file, guard) = match &cfg.logging_dir {
        None => (None, None),
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| LoggingError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
            let mut builder = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(role)
                .filename_suffix("log");
            if let Some(n) = cfg.max_files {
                builder = builder.max_log_files(n);
            }
            let appender = builder.build(dir).map_err(|e| LoggingError::Appender {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            // Files get the same format as stderr, without colour codes.
            let layer = if cfg.json {
                fmt::layer().json().with_writer(writer).boxed()
            } else {
                fmt::layer().with_ansi(false).with_writer(writer).boxed()
            };
            (Some(layer), Some(guard))
        }
    };

    let capture = LogCapture::new();
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(stderr)
        .with(file)
        .with(capture.layer())
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)?;
    Ok(LogGuard {
        _file: guard,
        capture,
        level: LevelHandle(handle),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_wins_over_debug() {
        let mut c = LoggingConfig::default();
        assert_eq!(level(&c), "info");
        c.debug = true;
        assert_eq!(level(&c), "debug");
        c.trace = true;
        assert_eq!(level(&c), "trace");
    }
}
