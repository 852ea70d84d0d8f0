//! tracing set-up: human or JSON lines on stderr, optional daily-rotated files.
//!
//! The level comes from `RUST_LOG` when set, else from `--logging.trace` / `--logging.debug`, else info.

use crate::config::LoggingConfig;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Keeps the file writer flushing; drop it last (at the end of `main`).
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
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
    let stderr = if cfg.json {
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter(cfg)?)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter(cfg)?)
            .boxed()
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
                fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_filter(filter(cfg)?)
                    .boxed()
            } else {
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(filter(cfg)?)
                    .boxed()
            };
            (Some(layer), Some(guard))
        }
    };

    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)?;
    Ok(LogGuard { _file: guard })
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
