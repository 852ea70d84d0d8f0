//! What the daemon-facing commands share: exit codes, JSON documents, tables sized to the
//! terminal, and human formats for bytes, rates and times.

use crate::client::ClientError;
use serde::Serialize;
use std::process::ExitCode;

/// Version of every `--json` document; bumped only when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// A failed command and its exit code: 1 failed, 2 bad usage, 3 daemon unreachable.
#[derive(Debug)]
pub struct CmdError {
    pub code: u8,
    pub message: String,
}

impl CmdError {
    pub fn failed(message: impl Into<String>) -> CmdError {
        CmdError {
            code: 1,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> CmdError {
        CmdError {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<ClientError> for CmdError {
    fn from(e: ClientError) -> Self {
        CmdError {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl From<tonic::Status> for CmdError {
    fn from(s: tonic::Status) -> Self {
        let code = if s.code() == tonic::Code::Unavailable {
            3
        } else {
            1
        };
        let what = match s.code() {
            tonic::Code::Unimplemented => "not served here",
            tonic::Code::Unauthenticated => "unauthenticated",
            tonic::Code::Unavailable => "daemon unreachable",
            _ => "daemon error",
        };
        CmdError {
            code,
            message: format!("{what}: {}", s.message()),
        }
    }
}

impl From<anyhow::Error> for CmdError {
    fn from(e: anyhow::Error) -> Self {
        CmdError::failed(format!("{e:#}"))
    }
}

pub type CmdResult = Result<(), CmdError>;

/// Prints the error and turns the result into the process exit code.
pub fn exit(r: CmdResult) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Prints a JSON document (pretty, one per command).
pub fn print_json<T: Serialize>(doc: &T) -> CmdResult {
    let s = serde_json::to_string_pretty(doc)
        .map_err(|e| CmdError::failed(format!("encoding JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

/// Width of the terminal on stdout ($COLUMNS, else the tty's, else 120 for pipes).
pub fn term_width() -> usize {
    if let Some(w) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&w| w >= 20)
    {
        return w;
    }
    terminal_size::terminal_size_of(std::io::stdout())
        .map_or(120, |(terminal_size::Width(w), _)| usize::from(w))
}

/// A plain table: columns as wide as their widest cell; when the whole is wider than `width`,
/// the columns marked shrinkable give up room first (cut with `…`).
pub struct Table {
    headers: Vec<&'static str>,
    shrink: Vec<bool>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn cut(s: &str, w: usize) -> String {
    if chars(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

impl Table {
    /// Columns: (header, shrinkable, right-aligned).
    pub fn new(cols: &[(&'static str, bool, bool)]) -> Table {
        Table {
            headers: cols.iter().map(|c| c.0).collect(),
            shrink: cols.iter().map(|c| c.1).collect(),
            right: cols.iter().map(|c| c.2).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self, width: usize) -> String {
        let n = self.headers.len();
        let mut w: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| chars(c)))
                    .chain([chars(self.headers[i])])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        // Take room from the widest shrinkable column, one character at a time, down to 8.
        while total(&w) > width {
            let Some((i, _)) = w
                .iter()
                .enumerate()
                .filter(|(i, x)| self.shrink[*i] && **x > 8)
                .max_by_key(|(_, x)| **x)
            else {
                break;
            };
            w[i] -= 1;
        }
        let line = |cells: Vec<String>| -> String {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                let c = cut(c, w[i]);
                let pad = w[i] - chars(&c);
                if i > 0 {
                    out.push_str("  ");
                }
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&c);
                } else {
                    out.push_str(&c);
                    if i + 1 < n {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(self.headers.iter().map(|h| h.to_string()).collect());
        out.push('\n');
        for r in &self.rows {
            let mut cells = r.clone();
            cells.resize(n, String::new());
            out.push_str(&line(cells));
            out.push('\n');
        }
        out
    }
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Bytes per second as MiB/s (the unit the README's figures use).
pub fn rate(bps: f64) -> String {
    if bps <= 0.0 {
        "-".into()
    } else {
        format!("{:.1} MiB/s", bps / (1024.0 * 1024.0))
    }
}

/// Seconds as "3d 4h", "2h 5m", "4m 10s", "12s".
pub fn duration(s: u64) -> String {
    let (d, h, m, sec) = (s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// How long ago a unix-ms time was, relative to `now_ms` ("never" for 0).
pub fn ago(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        "never".into()
    } else {
        format!("{} ago", duration(now_ms.saturating_sub(at_ms) / 1000))
    }
}

/// Unix ms → "2026-11-26 00:01:02" (UTC).
pub fn utc(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12), "12 B");
        assert_eq!(duration(3725), "1h 2m");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_764_115_262_000), "2025-11-26 00:01:02");
    }

    #[test]
    fn table_shrinks_to_the_width() {
        let mut t = Table::new(&[
            ("uid", false, true),
            ("hotkey", true, false),
            ("ok", false, false),
        ]);
        t.row(vec!["1".into(), "x".repeat(40), "yes".into()]);
        let narrow = t.render(30);
        assert!(narrow.lines().all(|l| l.chars().count() <= 30), "{narrow}");
        assert!(narrow.contains('…'));
        let wide = t.render(200);
        assert!(wide.contains(&"x".repeat(40)));
    }
}
