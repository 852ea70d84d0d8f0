//! Jobs: running and recent jobs with peers, miners, bytes, throughput and state; the selected job's
//! details below.

use super::{Theme, block, fmt, scroll_offset};
use crate::tui::state::{App, Daemon};
use mr_proto::v1::{JobState, JobSummary};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

fn state(job: &JobSummary, theme: Theme) -> Span<'static> {
    match JobState::try_from(job.state).unwrap_or(JobState::Unspecified) {
        JobState::Pending => Span::styled("pending", theme.warn()),
        JobState::Running => Span::styled("running", theme.ok()),
        JobState::Done => Span::styled("done", Style::default()),
        JobState::Failed => Span::styled("failed", theme.error()),
        JobState::Expired => Span::styled("expired", theme.warn()),
        JobState::Unspecified => Span::raw("?"),
    }
}

fn dtype(code: u32) -> &'static str {
    match code {
        1 => "f32",
        2 => "f16",
        3 => "bf16",
        _ => "?",
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) {
    let jobs = d.jobs_sorted();
    let running = jobs.iter().filter(|j| j.finished_at_ms == 0).count();
    let title = format!("jobs ({running} running, {} recent)", jobs.len() - running);
    if jobs.is_empty() {
        frame.render_widget(
            Paragraph::new("no jobs yet").block(block(&title, theme)),
            area,
        );
        return;
    }
    let detail_height = if area.height >= 16 { 5 } else { 0 };
    let [table_area, detail_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(detail_height)]).areas(area);
    let selected = app.jobs_selected.min(jobs.len() - 1);
    // Narrow screens drop the tensor size and the reason (the detail panel has it).
    let wide = table_area.width >= 110;
    let visible = table_area.height.saturating_sub(3) as usize;
    let skip = scroll_offset(selected, visible);
    let rows = jobs
        .iter()
        .enumerate()
        .skip(skip)
        .take(visible)
        .map(|(i, j)| {
            let age = if j.finished_at_ms == 0 {
                fmt::duration(app.now_ms.saturating_sub(j.created_at_ms) / 1000)
            } else {
                fmt::ago(app.now_ms, j.finished_at_ms)
            };
            let name = if j.benchmark {
                format!("{} (bench)", j.name)
            } else {
                j.name.clone()
            };
            let verified = fmt::verify_cell(j);
            let verified = if j.samples_failed > 0 {
                Span::styled(verified, theme.error())
            } else {
                Span::raw(verified)
            };
            // Narrow screens have no verified column: a corrupted job's state says it instead.
            let state_cell = if !wide && j.verdict.starts_with("corrupted") {
                Span::styled("corrupt", theme.error())
            } else {
                state(j, theme)
            };
            let mut cells = vec![
                Cell::from(j.job_id.to_string()),
                Cell::from(name),
                Cell::from(state_cell),
            ];
            if wide {
                cells.push(Cell::from(verified));
            }
            cells.extend([
                Cell::from(j.world_size.to_string()),
                Cell::from(j.miners.len().to_string()),
            ]);
            if wide {
                cells.push(Cell::from(fmt::bytes(j.elements * dtype_size(j.dtype))));
            }
            cells.extend([
                Cell::from(fmt::bytes(j.bytes_in + j.bytes_out)),
                Cell::from(fmt::rate(j.bytes_per_s)),
                Cell::from(age),
            ]);
            if wide {
                cells.push(Cell::from(Span::styled(j.reason.clone(), theme.error())));
            }
            let row = Row::new(cells);
            if i == selected {
                row.style(theme.selected())
            } else {
                row
            }
        });
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Length(if wide { 24 } else { 14 }),
        Constraint::Length(8),
    ];
    let mut header = vec!["id", "name", "state"];
    if wide {
        widths.push(Constraint::Length(18));
        header.push("verified");
    }
    widths.extend([Constraint::Length(5), Constraint::Length(6)]);
    header.extend(["peers", "miners"]);
    if wide {
        widths.push(Constraint::Length(9));
        header.push("tensor");
    }
    widths.extend([
        Constraint::Length(9),
        Constraint::Length(11),
        Constraint::Length(10),
    ]);
    header.extend(["moved", "rate", "age"]);
    if wide {
        widths.push(Constraint::Min(0));
        header.push("reason");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header()))
        .block(block(&title, theme));
    frame.render_widget(table, table_area);
    if detail_height == 0 {
        return;
    }
    let j = jobs[selected];
    let miners: Vec<String> = j
        .miners
        .iter()
        .map(|m| {
            let spare = if m.spare { " (spare)" } else { "" };
            format!("uid {} {}{spare}", m.uid, m.address)
        })
        .collect();
    let peers: Vec<String> = j.peers.iter().map(|p| fmt::key(p)).collect();
    let mut lines = vec![
        Line::from(vec![
            Span::styled("job ", theme.label()),
            Span::raw(format!(
                "{} {}: {} elements {}, in {} out {}",
                j.job_id,
                j.name,
                j.elements,
                dtype(j.dtype),
                fmt::bytes(j.bytes_in),
                fmt::bytes(j.bytes_out)
            )),
        ]),
        Line::from(vec![
            Span::styled("miners ", theme.label()),
            Span::raw(miners.join(", ")),
        ]),
        Line::from(vec![
            Span::styled("peers ", theme.label()),
            Span::raw(peers.join(", ")),
        ]),
    ];
    if !j.reason.is_empty() {
        lines.push(Line::styled(j.reason.clone(), theme.error()));
    }
    if !j.verdict.is_empty() {
        let style = if j.samples_failed > 0 {
            theme.error()
        } else {
            Style::default()
        };
        lines.push(Line::from(vec![
            Span::styled("verified ", theme.label()),
            Span::styled(
                format!("{} sampled blocks: {}", j.samples_checked, j.verdict),
                style,
            ),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(block("selected job", theme)),
        detail_area,
    );
}

fn dtype_size(code: u32) -> u64 {
    match code {
        2 | 3 => 2,
        _ => 4,
    }
}
