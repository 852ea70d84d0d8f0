//! Weights (validator): per miner score parts, EMA, weight as a bar and flags; weight-set blocks and
//! the selected miner's weight history.

use super::{Theme, block, fmt, scroll_offset};
use crate::tui::state::{App, Daemon};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) {
    let (Some(miners), weights) = (&d.miners, &d.weights) else {
        frame.render_widget(
            Paragraph::new("no scores: this daemon is not a validator, or has not answered yet")
                .block(block("weights", theme)),
            area,
        );
        return;
    };
    let [head, table_area, history_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(if area.height >= 20 { 5 } else { 0 }),
    ])
    .areas(area);

    let selected = app
        .weights_selected
        .min(miners.miners.len().saturating_sub(1));
    let selected_uid = miners.miners.get(selected).map(|m| m.uid);
    let head_lines = match weights {
        Some(w) => {
            let last = w.history.first();
            let last_text = match last {
                Some(s) if s.ok => format!("{} at block {}", s.kind, s.block),
                Some(s) => format!("{} failed at block {}: {}", s.kind, s.block, s.error),
                None => "never".to_string(),
            };
            let blocks_left = w.next_allowed_block.saturating_sub(w.current_block);
            vec![
                Line::from(vec![
                    Span::styled("block ", theme.label()),
                    Span::raw(w.current_block.to_string()),
                    Span::styled("  last set ", theme.label()),
                    Span::raw(if w.last_set_block == 0 {
                        "never".to_string()
                    } else {
                        w.last_set_block.to_string()
                    }),
                    Span::styled("  next allowed ", theme.label()),
                    Span::raw(format!(
                        "{} (in {blocks_left} blocks)",
                        w.next_allowed_block
                    )),
                    Span::styled("  every ", theme.label()),
                    Span::raw(format!("{} blocks", w.interval_blocks)),
                    Span::raw(if w.commit_reveal {
                        "  commit-reveal"
                    } else {
                        ""
                    }),
                ]),
                Line::from(vec![
                    Span::styled("last weight set: ", theme.label()),
                    Span::styled(
                        last_text,
                        if last.is_some_and(|s| !s.ok) {
                            theme.error()
                        } else {
                            theme.ok()
                        },
                    ),
                ]),
            ]
        }
        None => vec![Line::raw("weights not known yet")],
    };
    frame.render_widget(Paragraph::new(head_lines), head);

    let max_weight = miners.miners.iter().map(|m| m.weight).fold(0.0, f64::max);
    // Narrow screens drop the hotkey, the round score and the benchmark age.
    let wide = table_area.width >= 110;
    let visible = table_area.height.saturating_sub(3) as usize;
    let skip = scroll_offset(selected, visible);
    let rows = miners
        .miners
        .iter()
        .enumerate()
        .skip(skip)
        .take(visible)
        .map(|(i, m)| {
            let s = m.score.unwrap_or_default();
            let flags = if m.flags.is_empty() && m.reachable {
                Span::raw("")
            } else {
                let mut f = m.flags.clone();
                if !m.reachable && !f.iter().any(|x| x.starts_with("unreachable")) {
                    f.push("unreachable".to_string());
                }
                Span::styled(f.join(", "), theme.error())
            };
            let bar_fraction = if max_weight > 0.0 {
                m.weight / max_weight
            } else {
                0.0
            };
            let weight = Cell::from(Line::from(vec![
                Span::styled(fmt::bar(bar_fraction, 8), theme.ok()),
                Span::raw(format!(" {:>5.1}%", m.weight * 100.0)),
            ]));
            let row = if wide {
                Row::new(vec![
                    Cell::from(m.uid.to_string()),
                    Cell::from(fmt::key(&m.hotkey)),
                    Cell::from(fmt::rate(s.upload_bytes_per_s)),
                    Cell::from(fmt::rate(s.download_bytes_per_s)),
                    Cell::from(format!("{:.1}", s.latency_ms)),
                    Cell::from(format!("{:.0}%", s.success_rate * 100.0)),
                    Cell::from(format!("{:.3}", s.round)),
                    Cell::from(format!("{:.3}", s.ema)),
                    weight,
                    Cell::from(fmt::ago(app.now_ms, m.last_benchmark_ms)),
                    Cell::from(flags),
                ])
            } else {
                Row::new(vec![
                    Cell::from(m.uid.to_string()),
                    Cell::from(fmt::rate(s.upload_bytes_per_s)),
                    Cell::from(fmt::rate(s.download_bytes_per_s)),
                    Cell::from(format!("{:.1}", s.latency_ms)),
                    Cell::from(format!("{:.0}%", s.success_rate * 100.0)),
                    Cell::from(format!("{:.3}", s.ema)),
                    weight,
                    Cell::from(flags),
                ])
            };
            if i == selected {
                row.style(theme.selected())
            } else {
                row
            }
        });
    let (widths, header) = if wide {
        (
            vec![
                Constraint::Length(4),
                Constraint::Length(10),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(6),
                Constraint::Length(5),
                Constraint::Length(6),
                Constraint::Length(6),
                Constraint::Length(15),
                Constraint::Length(10),
                Constraint::Min(0),
            ],
            vec![
                "uid",
                "hotkey",
                "up",
                "down",
                "ms",
                "ok",
                "round",
                "ema",
                "weight",
                "benchmark",
                "flags",
            ],
        )
    } else {
        (
            vec![
                Constraint::Length(3),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(5),
                Constraint::Length(4),
                Constraint::Length(5),
                Constraint::Length(15),
                Constraint::Min(0),
            ],
            vec!["uid", "up", "down", "ms", "ok", "ema", "weight", "flags"],
        )
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header()))
        .block(block(&format!("miners ({})", miners.miners.len()), theme));
    frame.render_widget(table, table_area);

    if history_area.height == 0 {
        return;
    }
    let (Some(w), Some(uid)) = (weights, selected_uid) else {
        return;
    };
    // Oldest first for the sparkline; u16 weights as sent to the chain.
    let history: Vec<u64> = w
        .history
        .iter()
        .rev()
        .filter(|s| s.ok)
        .map(|s| {
            s.uids
                .iter()
                .position(|u| *u == uid)
                .and_then(|i| s.weights.get(i))
                .map_or(0, |w| u64::from(*w))
        })
        .collect();
    let title = format!("uid {uid}: weight over the last {} sets", history.len());
    frame.render_widget(
        Sparkline::default()
            .block(block(&title, theme))
            .max(u64::from(u16::MAX))
            .data(history)
            .style(theme.ok()),
        history_area,
    );
}
