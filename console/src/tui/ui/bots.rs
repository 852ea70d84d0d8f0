//! Bots: one row per bench bot, and the progress of the benchmark runs seen (WatchBench).

use super::{Theme, block, fmt, scroll_offset};
use crate::tui::state::{App, Daemon};
use mr_proto::v1::{BenchPhase, BotState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

pub fn state_name(state: i32) -> &'static str {
    match BotState::try_from(state).unwrap_or(BotState::Unspecified) {
        BotState::Idle => "idle",
        BotState::Requesting => "requesting",
        BotState::Running => "running",
        BotState::Verifying => "verifying",
        BotState::Reporting => "reporting",
        BotState::BackingOff => "backoff",
        BotState::Unspecified => "unknown",
    }
}

fn state_style(state: i32, theme: Theme) -> Style {
    match BotState::try_from(state).unwrap_or(BotState::Unspecified) {
        BotState::Running | BotState::Verifying | BotState::Reporting | BotState::Requesting => {
            theme.ok()
        }
        BotState::BackingOff => theme.warn(),
        _ => Style::default(),
    }
}

pub fn phase_name(phase: i32) -> &'static str {
    match BenchPhase::try_from(phase).unwrap_or(BenchPhase::Unspecified) {
        BenchPhase::Queued => "queued",
        BenchPhase::Connecting => "connecting",
        BenchPhase::AllReduce => "all_reduce",
        BenchPhase::Broadcast => "broadcast",
        BenchPhase::Verifying => "verifying",
        BenchPhase::Reporting => "reporting",
        BenchPhase::Done => "done",
        BenchPhase::Failed => "failed",
        BenchPhase::Unspecified => "?",
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) {
    let runs_height = if d.bench.is_empty() {
        0
    } else {
        (d.bench.len() as u16 + 3).min(area.height / 2)
    };
    let [bots_area, runs_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(runs_height)]).areas(area);
    let title = format!("bench bots ({})", d.bots.len());
    if d.bots.is_empty() {
        frame.render_widget(
            Paragraph::new("no bench bot has reported to this daemon yet; Enter starts a benchmark of every miner")
                .wrap(ratatui::widgets::Wrap { trim: true })
                .block(block(&title, theme)),
            bots_area,
        );
    } else {
        // Narrow screens drop the age and the error column (the verdict stays).
        let wide = bots_area.width >= 110;
        let visible = bots_area.height.saturating_sub(3) as usize;
        let selected = app.bots_selected.min(d.bots.len() - 1);
        let skip = scroll_offset(selected, visible);
        let rows = d
            .bots
            .values()
            .enumerate()
            .skip(skip)
            .take(visible)
            .map(|(i, b)| {
                let miner = match b.miner_uid {
                    Some(uid) => format!("uid {uid}"),
                    None => "-".to_string(),
                };
                let since = fmt::ago(app.now_ms, b.since_ms);
                let mut state = state_name(b.state).to_string();
                if b.next_attempt_ms > app.now_ms {
                    state = format!(
                        "{state} {}",
                        fmt::duration((b.next_attempt_ms - app.now_ms).div_ceil(1000))
                    );
                }
                let verdict_style = if b.last_verdict == "ok" {
                    theme.ok()
                } else if b.last_verdict.is_empty() {
                    Style::default()
                } else {
                    theme.error()
                };
                let mut cells = vec![
                    Cell::from(fmt::key(&b.hotkey)),
                    Cell::from(Span::styled(state, state_style(b.state, theme))),
                    Cell::from(miner),
                    Cell::from(fmt::bar(b.progress, 8)),
                    Cell::from(fmt::rate(b.last_bytes_per_s)),
                    Cell::from(format!(
                        "{}/{}",
                        b.benchmarks_ok,
                        b.benchmarks_ok + b.benchmarks_failed
                    )),
                ];
                if wide {
                    cells.push(Cell::from(since));
                }
                cells.push(Cell::from(Span::styled(
                    b.last_verdict.clone(),
                    verdict_style,
                )));
                if wide {
                    cells.push(Cell::from(Span::styled(
                        b.last_error.clone(),
                        theme.error(),
                    )));
                }
                let row = Row::new(cells);
                if i == selected {
                    row.style(theme.selected())
                } else {
                    row
                }
            });
        let mut widths = vec![
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(7),
        ];
        let mut header = vec!["bot", "state", "miner", "progress", "last", "ok"];
        if wide {
            widths.extend([
                Constraint::Length(9),
                Constraint::Length(32),
                Constraint::Min(0),
            ]);
            header.extend(["since", "verdict", "error"]);
        } else {
            widths.push(Constraint::Min(0));
            header.push("verdict");
        }
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(theme.header()))
            .block(block(&title, theme));
        frame.render_widget(table, bots_area);
    }
    if runs_height == 0 {
        return;
    }
    let visible = runs_area.height.saturating_sub(3) as usize;
    // Newest run first; within a run by miner uid.
    let rows = d.bench.iter().rev().take(visible).map(|((run, uid), e)| {
        let fraction = if e.bytes_total == 0 {
            0.0
        } else {
            e.bytes_done as f64 / e.bytes_total as f64
        };
        let result = e.result.as_ref().map_or(String::new(), |r| {
            if r.reason.is_empty() {
                format!(
                    "up {} down {} {:.1} ms",
                    fmt::rate(r.upload_bytes_per_s),
                    fmt::rate(r.download_bytes_per_s),
                    r.latency_ms
                )
            } else {
                r.reason.clone()
            }
        });
        let phase_style = match BenchPhase::try_from(e.phase).unwrap_or(BenchPhase::Unspecified) {
            BenchPhase::Done => theme.ok(),
            BenchPhase::Failed => theme.error(),
            _ => theme.warn(),
        };
        Row::new(vec![
            Cell::from(run.to_string()),
            Cell::from(format!("uid {uid}")),
            Cell::from(Span::styled(phase_name(e.phase), phase_style)),
            Cell::from(format!(
                "{} {:>3.0}%",
                fmt::bar(fraction, 10),
                fraction * 100.0
            )),
            Cell::from(fmt::rate(e.bytes_per_s)),
            Cell::from(result),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(16),
            Constraint::Length(11),
            Constraint::Min(0),
        ],
    )
    .header(Row::new(["run", "miner", "phase", "progress", "now", "result"]).style(theme.header()))
    .block(block("benchmark runs", theme));
    frame.render_widget(table, runs_area);
}
