//! Drawing: a pure function of `App`. Every tab has its own module; this one lays out the frame
//! (daemon bar, tab bar, body, status line) and the help overlay.

mod bandwidth;
mod bots;
mod config;
pub mod fmt;
mod jobs;
mod logs;
mod overview;
mod weights;

use super::state::{App, Daemon, Link, Mode, Tab};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};

/// Below this the console shows a single line asking for a larger terminal.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 8;

/// Styles for every kind of text; with `--no-color` only bold/reverse/dim remain. Colours are the
/// terminal's named ones, so they follow its dark or light palette.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn label(self) -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn incoming(self) -> Style {
        self.fg(Color::Cyan)
    }
    pub fn outgoing(self) -> Style {
        self.fg(Color::Magenta)
    }
    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub fn header(self) -> Style {
        Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    pub fn edited(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
}

/// Draws the whole console for `app` into `frame`.
pub fn draw(frame: &mut Frame, app: &App) {
    let theme = Theme { color: app.color };
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small ({}x{}); mrctl tui needs {MIN_WIDTH}x{MIN_HEIGHT} (80x24 for everything); q quits",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [daemons, tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_daemon_bar(frame, daemons, app, theme);
    draw_tabs(frame, tabs, app, theme);
    match app.daemon() {
        Some(d) => {
            let body = draw_link_banner(frame, body, app, d, theme);
            match app.tab {
                Tab::Overview => overview::draw(frame, body, app, d, theme),
                Tab::Bandwidth => bandwidth::draw(frame, body, app, d, theme),
                Tab::Bots => bots::draw(frame, body, app, d, theme),
                Tab::Weights => weights::draw(frame, body, app, d, theme),
                Tab::Jobs => jobs::draw(frame, body, app, d, theme),
                Tab::Config => config::draw(frame, body, app, d, theme),
                Tab::Logs => logs::draw(frame, body, app, d, theme),
            }
        }
        None => frame.render_widget(
            Paragraph::new("no daemon to watch: start one, or name it with --connect"),
            body,
        ),
    }
    draw_status(frame, status, app, theme);
    if app.help {
        draw_help(frame, area, theme);
    }
}

/// "retrying in 3s" for a disconnected daemon.
pub fn link_text(link: &Link, now_ms: u64) -> String {
    match link {
        Link::Connecting => "connecting".to_string(),
        Link::Connected => "connected".to_string(),
        Link::Disconnected { retry_at_ms, .. } => {
            let secs = retry_at_ms.saturating_sub(now_ms).div_ceil(1000);
            format!("disconnected, retrying in {secs}s")
        }
    }
}

fn link_style(link: &Link, theme: Theme) -> Style {
    match link {
        Link::Connecting => theme.warn(),
        Link::Connected => theme.ok(),
        Link::Disconnected { .. } => theme.error(),
    }
}

fn draw_daemon_bar(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let mut spans = vec![Span::styled("mrctl ", theme.title())];
    for (i, d) in app.daemons.iter().enumerate() {
        let mark = match d.link {
            Link::Connected => "●",
            Link::Connecting => "○",
            Link::Disconnected { .. } => "✗",
        };
        let mut style = link_style(&d.link, theme);
        if i == app.current {
            style = style.add_modifier(Modifier::REVERSED);
        }
        spans.push(Span::styled(format!(" {mark} {} ", d.name()), style));
        spans.push(Span::raw(" "));
    }
    if app.daemons.len() > 1 {
        spans.push(Span::styled("[ ] switch", theme.label()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    // Narrow terminals get the number and the first letters only.
    let long = area.width >= 80;
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let title = if long {
                t.title().to_string()
            } else {
                t.title().chars().take(4).collect()
            };
            Line::from(format!("{} {title}", i + 1))
        })
        .collect();
    let tabs = Tabs::new(titles)
        .select(app.tab.index())
        .highlight_style(theme.title().add_modifier(Modifier::REVERSED))
        .divider("|")
        .padding("", "");
    frame.render_widget(tabs, area);
}

/// A red line over the body while the daemon is not connected; returns the rest of the body.
fn draw_link_banner(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) -> Rect {
    let text = match &d.link {
        Link::Connected => return area,
        Link::Connecting => format!("{}: connecting to {}", d.name(), d.target),
        Link::Disconnected { error, .. } => format!(
            "{}: {} ({error}){}",
            d.name(),
            link_text(&d.link, app.now_ms),
            if d.status.is_some() {
                "; showing the last data received"
            } else {
                ""
            }
        ),
    };
    let [banner, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(
        Paragraph::new(fmt::clip(&text, banner.width as usize)).style(link_style(&d.link, theme)),
        banner,
    );
    rest
}

fn hints(app: &App) -> &'static str {
    match (&app.mode, app.tab) {
        (Mode::EditConfig { .. }, _) => "Enter check  Esc cancel",
        (Mode::Search, _) => "type to search  Enter keep  Esc clear",
        (Mode::ConfigFilter, _) => "type part of a key  Enter keep  Esc clear",
        (_, Tab::Bandwidth) => "w window  1-7 tabs  ? help  q quit",
        (_, Tab::Bots) => "Enter benchmark all  ↑↓ select  ? help  q quit",
        (_, Tab::Weights) => "Enter benchmark miner  B all  ↑↓  ? help  q quit",
        (_, Tab::Config) => "Enter edit  / filter  u undo  a apply  Esc discard  r reload",
        (_, Tab::Logs) => "l/L level  / search  ↑↓ scroll  End follow  ? help",
        _ => "1-7/Tab tabs  [ ] daemon  ? help  q quit",
    }
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let line = match &app.notice {
        Some(n) => Line::styled(
            n.text.clone(),
            if n.error { theme.error() } else { theme.ok() },
        ),
        None => Line::styled(hints(app), theme.label()),
    };
    frame.render_widget(Paragraph::new(line), area);
}

const HELP: &[(&str, &str)] = &[
    ("1-7, Tab, Shift-Tab", "switch tab"),
    ("[ ] (or < >)", "previous / next daemon"),
    ("↑↓ j k, PgUp PgDn, g G", "move the selection / scroll"),
    ("w", "Bandwidth: window 1 / 5 / 15 min"),
    ("Enter, b", "Bots: benchmark every miner now"),
    ("Enter, b / B", "Weights: benchmark this miner / all"),
    ("Enter, e", "Config: edit the value (checked by the daemon)"),
    ("u / Esc", "Config: undo this edit / discard all"),
    ("a / r", "Config: apply the edits / reload"),
    ("/ (Config)", "Config: show only keys containing the text"),
    ("l L, /", "Logs: level filter up/down, search"),
    ("?", "this help (any key closes)"),
    ("q, Ctrl-C", "quit"),
];

fn draw_help(frame: &mut Frame, area: Rect, theme: Theme) {
    let width = area.width.min(72);
    let height = area.height.min(HELP.len() as u16 + 2);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:>22}  "), theme.title()),
                Span::raw(*v),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        popup,
    );
}

/// A bordered block with a title.
pub fn block(title: &str, theme: Theme) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {title} "), theme.title()))
}

/// A "label value" pair for key/value panels.
pub fn kv(label: &str, value: impl Into<String>, theme: Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<12} "), theme.label()),
        Span::raw(value.into()),
    ])
}

/// First index of a window of `visible` rows that keeps `selected` in view.
pub fn scroll_offset(selected: usize, visible: usize) -> usize {
    if visible == 0 {
        0
    } else {
        selected.saturating_sub(visible - 1)
    }
}
