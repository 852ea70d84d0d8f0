//! Logs: live lines with a level filter and a search; follows the newest line unless scrolled.

use super::{Theme, block, fmt};
use crate::tui::state::{App, Daemon, LEVELS, Mode, level_rank};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// "HH:MM:SS.mmm" (UTC) of a unix ms time.
fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) {
    let [bar, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let searching = app.mode == Mode::Search;
    let matching: Vec<_> = d.logs.iter().filter(|l| app.logs.matches(l)).collect();
    let follow = if app.logs.scroll == 0 {
        "following".to_string()
    } else {
        format!("{} lines up", app.logs.scroll)
    };
    let mut spans = vec![
        Span::styled("level ≤ ", theme.label()),
        Span::styled(LEVELS[app.logs.level], theme.title()),
        Span::styled("  search ", theme.label()),
    ];
    if searching {
        spans.push(Span::styled(
            format!("/{}▏", app.logs.search),
            theme.edited(),
        ));
    } else if app.logs.search.is_empty() {
        spans.push(Span::styled("(none, / to search)", theme.label()));
    } else {
        spans.push(Span::styled(
            format!("/{}", app.logs.search),
            theme.edited(),
        ));
    }
    spans.push(Span::styled(
        format!("  {} of {} lines, {follow}", matching.len(), d.logs.len()),
        theme.label(),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), bar);

    let outer = block("logs", theme);
    let inner = outer.inner(body);
    frame.render_widget(outer, body);
    let height = inner.height as usize;
    let end = matching
        .len()
        .saturating_sub(app.logs.scroll.min(matching.len()));
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = matching[start..end]
        .iter()
        .map(|l| {
            let style = match level_rank(&l.level) {
                0 => theme.error(),
                1 => theme.warn(),
                2 => Style::default(),
                _ => theme.label(),
            };
            let fields = if l.fields.is_empty() || l.fields == "{}" {
                String::new()
            } else {
                format!(" {}", l.fields)
            };
            let text = format!("{} {}{}", l.target, l.message, fields);
            let room = (inner.width as usize).saturating_sub(19);
            Line::from(vec![
                Span::styled(format!("{} ", clock(l.at_ms)), theme.label()),
                Span::styled(format!("{:<5} ", l.level.to_uppercase()), style),
                Span::styled(fmt::clip(&text, room), style),
            ])
        })
        .collect();
    if lines.is_empty() {
        let text = if d.logs.is_empty() {
            "no log lines yet"
        } else {
            "no line matches the filter (l level, Esc clears the search)"
        };
        frame.render_widget(Paragraph::new(text).style(theme.label()), inner);
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_is_utc_time_of_day() {
        assert_eq!(super::clock(3_723_004), "01:02:03.004");
    }
}
