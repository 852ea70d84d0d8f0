//! Config: the effective configuration as a form. Edited values are marked, the daemon's validation
//! problems are shown on their key's row, the diff of a dry run is previewed beside the form.

use super::{Theme, block, fmt, scroll_offset};
use crate::tui::state::{App, Daemon, Mode};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) {
    let Some(doc) = &d.config else {
        frame.render_widget(
            Paragraph::new("configuration not received yet").block(block("config", theme)),
            area,
        );
        return;
    };
    let form = &d.form;
    let show_preview = !form.edits.is_empty() || form.preview.is_some();
    let [form_area, side] = if area.width >= 120 && show_preview {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area)
    } else if show_preview {
        let [a, b] =
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
        [a, b]
    } else {
        [area, Rect::default()]
    };

    let title = if doc.path.is_empty() {
        "config (no file: read-only)".to_string()
    } else {
        format!("config {}", doc.path)
    };
    let outer = block(&title, theme);
    let inner = outer.inner(form_area);
    frame.render_widget(outer, form_area);

    // One line per key; a key with a problem gets a second line with the message.
    let entries = app.config_entries(d);
    let selected = app.config_selected.min(entries.len().saturating_sub(1));
    let key_w = entries
        .iter()
        .map(|e| e.key.chars().count())
        .max()
        .unwrap_or(10)
        .min(inner.width as usize / 2);
    let mut lines: Vec<Line> = Vec::new();
    let mut selected_line = 0;
    if entries.is_empty() {
        lines.push(Line::styled(
            format!(
                "no key contains {:?} (Esc clears the filter)",
                app.config_filter
            ),
            theme.label(),
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        if i == selected {
            selected_line = lines.len();
        }
        let editing = match &app.mode {
            Mode::EditConfig { key, buffer } if *key == e.key => Some(buffer.as_str()),
            _ => None,
        };
        let edited = form.edits.get(&e.key);
        let marker = if edited.is_some() { "*" } else { " " };
        let value_w = inner.width as usize - key_w.min(inner.width as usize) - 12;
        let value_span = match (editing, edited) {
            (Some(buffer), _) => Span::styled(format!("{buffer}▏"), theme.edited()),
            (None, Some(v)) => Span::styled(
                fmt::clip(&format!("{} → {v}", e.value), value_w),
                theme.edited(),
            ),
            (None, None) => Span::raw(fmt::clip(&e.value, value_w)),
        };
        let live = if e.live { "live   " } else { "restart" };
        let mut line = Line::from(vec![
            Span::styled(marker, theme.edited()),
            Span::raw(format!("{:<key_w$} ", fmt::clip(&e.key, key_w))),
            Span::styled(format!("{live} "), theme.label()),
            value_span,
        ]);
        if i == selected {
            line = line.style(theme.selected());
        }
        lines.push(line);
        if let Some(problem) = form.problem(&e.key) {
            lines.push(Line::styled(format!("   ✗ {problem}"), theme.error()));
        }
    }
    let visible = inner.height.saturating_sub(1) as usize;
    let skip = scroll_offset(selected_line, visible);
    let shown: Vec<Line> = lines.into_iter().skip(skip).take(visible).collect();
    let [list, foot] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(shown), list);
    // The filter being typed, else the selected key's origin and documentation, in the last line.
    if app.mode == Mode::ConfigFilter || !app.config_filter.is_empty() {
        let cursor = if app.mode == Mode::ConfigFilter {
            "▏"
        } else {
            ""
        };
        frame.render_widget(
            Paragraph::new(format!("filter /{}{cursor}", app.config_filter)).style(theme.edited()),
            foot,
        );
    } else if let Some(e) = entries.get(selected) {
        let text = format!(
            "{} ({}): {}",
            e.key,
            e.origin,
            e.doc.lines().next().unwrap_or("")
        );
        frame.render_widget(
            Paragraph::new(fmt::clip(&text, foot.width as usize)).style(theme.label()),
            foot,
        );
    }

    if side.area() == 0 {
        return;
    }
    draw_preview(frame, side, d, theme);
}

fn draw_preview(frame: &mut Frame, area: Rect, d: &Daemon, theme: Theme) {
    let form = &d.form;
    let mut lines: Vec<Line> = Vec::new();
    if form.waiting {
        lines.push(Line::styled("checking with the daemon…", theme.warn()));
    }
    match &form.preview {
        Some(p) if !p.problems.is_empty() => {
            lines.push(Line::styled(
                format!("{} problem(s): not applicable", p.problems.len()),
                theme.error(),
            ));
            for problem in &p.problems {
                lines.push(Line::styled(
                    format!("{}: {}", problem.key, problem.message),
                    theme.error(),
                ));
            }
        }
        Some(p) => {
            lines.push(Line::styled("valid: press a to apply", theme.ok()));
            for w in &p.warnings {
                lines.push(Line::styled(format!("note: {w}"), theme.warn()));
            }
            if !p.restart_required.is_empty() {
                lines.push(Line::styled(
                    format!("needs a restart: {}", p.restart_required.join(", ")),
                    theme.warn(),
                ));
            }
            for l in p.diff.lines() {
                let style = if l.starts_with('+') && !l.starts_with("+++") {
                    theme.ok()
                } else if l.starts_with('-') && !l.starts_with("---") {
                    theme.error()
                } else {
                    theme.label()
                };
                lines.push(Line::styled(l.to_string(), style));
            }
        }
        None if !form.edits.is_empty() && !form.waiting => {
            lines.push(Line::raw("not checked yet"));
        }
        None => {}
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(
                &format!("{} edit(s): diff preview", form.edits.len()),
                theme,
            )),
        area,
    );
}
