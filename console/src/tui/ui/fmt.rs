//! Text for numbers: sizes, rates, durations, keys.

/// Bytes in binary units, e.g. "1.5 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Bytes per second, e.g. "12.3 MiB/s".
pub fn rate(bytes_per_s: f64) -> String {
    if !bytes_per_s.is_finite() || bytes_per_s <= 0.0 {
        return "0 B/s".to_string();
    }
    format!("{}/s", bytes(bytes_per_s.round() as u64))
}

/// A duration in seconds as "3d04h", "1h02m", "3m05s" or "12s".
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Time since `then_ms` as "12s ago" (or "never" for 0).
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "never".to_string();
    }
    format!("{} ago", duration(now_ms.saturating_sub(then_ms) / 1000))
}

/// An ss58 key shortened to its first 8 characters and an ellipsis.
pub fn key(hotkey: &str) -> String {
    if hotkey.chars().count() <= 10 {
        hotkey.to_string()
    } else {
        let head: String = hotkey.chars().take(8).collect();
        format!("{head}…")
    }
}

/// `s` cut to `width` characters, with an ellipsis when cut.
pub fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}

/// A fraction 0..=1 as a bar of `width` cells ("████▌   ").
pub fn bar(fraction: f64, width: usize) -> String {
    const PARTS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (f * width as f64 * 8.0).round() as usize;
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        out.push(PARTS[eighths % 8 - 1]);
    }
    let len = out.chars().count();
    out.push_str(&" ".repeat(width.saturating_sub(len)));
    out
}

/// A job's verification in a few words: "-", "ok (397)", "CORRUPTED (1/397)", "peer flagged (3/98)".
pub fn verify_cell(j: &mr_proto::v1::JobSummary) -> String {
    if j.samples_checked == 0 && j.verdict.is_empty() {
        return "-".into();
    }
    let head = if j.verdict.starts_with("corrupted") {
        "CORRUPTED"
    } else if j.verdict.starts_with("peer flagged") {
        "peer flagged"
    } else {
        "ok"
    };
    if j.samples_failed > 0 {
        format!("{head} ({}/{})", j.samples_failed, j.samples_checked)
    } else {
        format!("{head} ({})", j.samples_checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_durations() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 * 1024 * 1024), "300 MiB");
        assert_eq!(rate(0.0), "0 B/s");
        assert_eq!(rate(f64::NAN), "0 B/s");
        assert_eq!(rate(2.5 * 1024.0 * 1024.0), "2.5 MiB/s");
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(185), "3m05s");
        assert_eq!(duration(3720), "1h02m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600), "3d04h");
        assert_eq!(ago(10_000, 0), "never");
        assert_eq!(ago(10_000, 4_000), "6s ago");
        assert_eq!(
            key("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"),
            "5GrwvaEF…"
        );
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(bar(0.5, 4), "██  ");
        assert_eq!(bar(1.5, 2), "██");
        assert_eq!(bar(0.0, 3), "   ");
    }
}
