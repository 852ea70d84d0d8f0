//! Overview: who the daemon is, chain and health, and its role's summary; every daemon in a table.

use super::{Theme, block, fmt, kv, link_text};
use crate::tui::state::{App, Daemon, Link};
use mr_proto::v1::{Role, status::Summary};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};

pub fn role_name(role: i32) -> &'static str {
    match Role::try_from(role).unwrap_or(Role::Unspecified) {
        Role::Miner => "miner",
        Role::Validator => "validator",
        Role::Bench => "bench",
        Role::Unspecified => "unknown",
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) {
    let others = if app.daemons.len() > 1 {
        app.daemons.len() as u16 + 3
    } else {
        0
    };
    let [top, list] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(others)]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    let Some(s) = &d.status else {
        frame.render_widget(
            Paragraph::new("no status yet").block(block("daemon", theme)),
            top,
        );
        draw_daemons(frame, list, app, theme);
        return;
    };
    let block_age = if s.last_block_at_ms == 0 {
        "no chain".to_string()
    } else {
        format!(
            "#{} ({})",
            s.last_block,
            fmt::ago(app.now_ms, s.last_block_at_ms)
        )
    };
    let health = if s.ready {
        Span::styled("ready", theme.ok())
    } else {
        Span::styled("starting", theme.warn())
    };
    let width = left.width.saturating_sub(15) as usize;
    let lines = vec![
        kv("role", role_name(s.role), theme),
        kv("hotkey", fmt::clip(&s.hotkey, width), theme),
        kv(
            "uid",
            s.uid
                .map_or("not registered".to_string(), |u| u.to_string()),
            theme,
        ),
        kv("netuid", s.netuid.to_string(), theme),
        kv("version", s.version.clone(), theme),
        kv("chain", fmt::clip(&s.chain_endpoint, width), theme),
        kv("block", block_age, theme),
        kv("uptime", fmt::duration(s.uptime_s), theme),
        Line::from(vec![
            Span::styled(format!("{:<12} ", "health"), theme.label()),
            health,
        ]),
        kv("pid", s.pid.to_string(), theme),
        kv(
            "config",
            if s.config_path.is_empty() {
                "none".to_string()
            } else {
                fmt::clip(&s.config_path, width)
            },
            theme,
        ),
    ];
    frame.render_widget(Paragraph::new(lines).block(block("daemon", theme)), left);

    let (title, lines) = match &s.summary {
        Some(Summary::Miner(m)) => (
            "miner",
            vec![
                kv("axon", m.axon_address.clone(), theme),
                kv("relay", m.relay_address.clone(), theme),
                kv(
                    "jobs",
                    format!("{} running, {} served", m.jobs_running, m.jobs_served),
                    theme,
                ),
                kv(
                    "memory",
                    format!(
                        "{} of {} reserved",
                        fmt::bytes(m.memory_reserved),
                        fmt::bytes(m.memory_limit)
                    ),
                    theme,
                ),
                Line::from(vec![
                    Span::styled(format!("{:<12} ", "relay now"), theme.label()),
                    Span::styled(
                        format!("in {}", fmt::rate(m.bytes_in_per_s)),
                        theme.incoming(),
                    ),
                    Span::raw("  "),
                    Span::styled(
                        format!("out {}", fmt::rate(m.bytes_out_per_s)),
                        theme.outgoing(),
                    ),
                ]),
                if m.draining {
                    Line::styled("draining: finishing jobs, taking no new ones", theme.warn())
                } else {
                    kv("accepting", "new jobs", theme)
                },
            ],
        ),
        Some(Summary::Validator(v)) => (
            "validator",
            vec![
                kv("axon", v.axon_address.clone(), theme),
                kv(
                    "miners",
                    format!("{} reachable of {}", v.miners_reachable, v.miners_total),
                    theme,
                ),
                kv("jobs", format!("{} running", v.jobs_running), theme),
                kv(
                    "benchmarks",
                    format!("{} total, {} bots", v.benchmarks_total, v.bots_known),
                    theme,
                ),
                kv(
                    "weights set",
                    if v.last_weights_block == 0 {
                        "never".to_string()
                    } else {
                        format!("block {}", v.last_weights_block)
                    },
                    theme,
                ),
                kv(
                    "next allowed",
                    format!("block {}", v.next_weights_block),
                    theme,
                ),
            ],
        ),
        Some(Summary::Bench(b)) => {
            let mut lines = vec![
                kv("validator", b.validator.clone(), theme),
                kv(
                    "benchmarks",
                    format!("{} ok, {} failed", b.benchmarks_ok, b.benchmarks_failed),
                    theme,
                ),
            ];
            if let Some(bot) = &b.bot {
                lines.push(kv("bot", super::bots::state_name(bot.state), theme));
                lines.push(kv(
                    "last",
                    format!("{} {}", fmt::rate(bot.last_bytes_per_s), bot.last_verdict),
                    theme,
                ));
            }
            ("bench", lines)
        }
        None => ("summary", vec![Line::raw("no role summary")]),
    };
    frame.render_widget(Paragraph::new(lines).block(block(title, theme)), right);
    draw_daemons(frame, list, app, theme);
}

fn draw_daemons(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    if area.height == 0 {
        return;
    }
    let rows = app.daemons.iter().enumerate().map(|(i, d)| {
        let (role, uptime) = d.status.as_ref().map_or(("?", String::new()), |s| {
            (role_name(s.role), fmt::duration(s.uptime_s))
        });
        let style = match d.link {
            Link::Connected => theme.ok(),
            Link::Connecting => theme.warn(),
            Link::Disconnected { .. } => theme.error(),
        };
        let row = Row::new(vec![
            ratatui::widgets::Cell::from(d.name()),
            ratatui::widgets::Cell::from(role),
            ratatui::widgets::Cell::from(Span::styled(link_text(&d.link, app.now_ms), style)),
            ratatui::widgets::Cell::from(uptime),
            ratatui::widgets::Cell::from(d.target.clone()),
        ]);
        if i == app.current {
            row.style(theme.selected())
        } else {
            row
        }
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(32),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["daemon", "role", "link", "uptime", "target"]).style(theme.header()))
    .block(block("daemons", theme));
    frame.render_widget(table, area);
}
