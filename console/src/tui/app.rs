//! `update`: the only place the console's state changes. Pure (no I/O, no clock): it returns the
//! commands the daemons' connection tasks must carry out.

use super::action::{Action, Command, DaemonEvent};
use super::state::{App, BENCH_ROWS, FINISHED_JOBS, LEVELS, LOG_LINES, Link, Mode, Notice, Tab};
use mr_proto::v1::BotState;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// How long a notice stays at the bottom of the screen.
const NOTICE_MS: u64 = 8_000;

/// Applies `action` to `app`; returns what to ask of which daemon (index into `app.daemons`).
pub fn update(app: &mut App, action: Action) -> Vec<(usize, Command)> {
    match action {
        Action::Tick(now_ms) => {
            app.now_ms = now_ms;
            if app.notice.as_ref().is_some_and(|n| n.until_ms <= now_ms) {
                app.notice = None;
            }
            Vec::new()
        }
        Action::Key(key) => on_key(app, key),
        Action::Daemon(i, event) => {
            on_daemon(app, i, event);
            Vec::new()
        }
    }
}

fn notice(app: &mut App, text: impl Into<String>, error: bool) {
    app.notice = Some(Notice {
        text: text.into(),
        error,
        until_ms: app.now_ms + NOTICE_MS,
    });
}

fn on_daemon(app: &mut App, i: usize, event: DaemonEvent) {
    let now = app.now_ms;
    let Some(d) = app.daemons.get_mut(i) else {
        return;
    };
    let mut message: Option<(String, bool)> = None;
    match event {
        DaemonEvent::Connecting => {
            if !matches!(d.link, Link::Disconnected { .. }) {
                d.link = Link::Connecting;
            }
        }
        DaemonEvent::Connected(status) => {
            if matches!(d.link, Link::Disconnected { .. }) {
                message = Some((format!("{}: reconnected", d.name()), false));
            }
            d.link = Link::Connected;
            d.connected_at_ms = now;
            d.status = Some(*status);
            // Streams start again with their initial state: forget what may have changed meanwhile.
            d.bots.clear();
            d.form.waiting = false;
        }
        DaemonEvent::Disconnected { error, retry_at_ms } => {
            if d.link == Link::Connected {
                message = Some((format!("{}: disconnected: {error}", d.name()), true));
            }
            d.link = Link::Disconnected { error, retry_at_ms };
            d.form.waiting = false;
        }
        DaemonEvent::Status(status) => d.status = Some(*status),
        DaemonEvent::Metrics(sample) => d.metrics.push(&sample),
        DaemonEvent::Bot(bot) => {
            d.bots.insert(bot.hotkey.clone(), bot);
        }
        DaemonEvent::Bench(event) => {
            d.bench.insert((event.run_id, event.miner_uid), event);
            while d.bench.len() > BENCH_ROWS {
                d.bench.pop_first();
            }
        }
        DaemonEvent::Job(event) => {
            if let Some(job) = event.job {
                d.jobs.insert(job.job_id, job);
                let finished = d.jobs.values().filter(|j| j.finished_at_ms != 0).count();
                if finished > FINISHED_JOBS {
                    let mut old: Vec<(u64, u64)> = d
                        .jobs
                        .values()
                        .filter(|j| j.finished_at_ms != 0)
                        .map(|j| (j.finished_at_ms, j.job_id))
                        .collect();
                    old.sort_unstable();
                    for (_, id) in old.into_iter().take(finished - FINISHED_JOBS) {
                        d.jobs.remove(&id);
                    }
                }
            }
        }
        DaemonEvent::Log(line) => {
            // A reconnect replays the history: skip lines not newer than the newest one kept.
            if line.history && d.logs.back().is_some_and(|last| line.at_ms <= last.at_ms) {
                return;
            }
            d.logs.push_back(line);
            if d.logs.len() > LOG_LINES {
                d.logs.pop_front();
            }
        }
        DaemonEvent::Miners(list) => d.miners = Some(list),
        DaemonEvent::Weights(weights) => d.weights = Some(weights),
        DaemonEvent::Config(doc) => d.config = Some(doc),
        DaemonEvent::ConfigChecked(resp) => {
            d.form.waiting = false;
            d.form.preview = Some(resp);
        }
        DaemonEvent::ConfigAppliedWith(resp, doc) => {
            d.config = Some(doc);
            on_daemon(app, i, DaemonEvent::ConfigApplied(resp));
            return;
        }
        DaemonEvent::ConfigApplied(resp) => {
            d.form.waiting = false;
            if resp.applied {
                let restart = if resp.restart_required.is_empty() {
                    String::new()
                } else {
                    format!("; restart needed for {}", resp.restart_required.join(", "))
                };
                let warnings = if resp.warnings.is_empty() {
                    String::new()
                } else {
                    format!("; {}", resp.warnings.join("; "))
                };
                message = Some((
                    format!(
                        "config applied: {}{restart}{warnings}",
                        resp.changed_keys.join(", ")
                    ),
                    false,
                ));
                d.form.edits.clear();
                d.form.preview = None;
            } else {
                message = Some((
                    format!("config not applied: {} problem(s)", resp.problems.len()),
                    true,
                ));
                d.form.preview = Some(resp.clone());
            }
            d.form.applied = Some(resp);
        }
        DaemonEvent::BenchStarted(resp) => {
            let uids: Vec<String> = resp.miner_uids.iter().map(|u| u.to_string()).collect();
            message = Some((
                format!(
                    "benchmark run {} started: miners {}",
                    resp.run_id,
                    uids.join(", ")
                ),
                false,
            ));
        }
        DaemonEvent::CommandFailed(text) => {
            d.form.waiting = false;
            message = Some((text, true));
        }
    }
    if let Some((text, error)) = message {
        notice(app, text, error);
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<(usize, Command)> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        app.quit = true;
        return Vec::new();
    }
    match app.mode.clone() {
        Mode::EditConfig {
            key: cfg_key,
            buffer,
        } => edit_key(app, key, cfg_key, buffer),
        Mode::Search => {
            search_key(app, key);
            Vec::new()
        }
        Mode::ConfigFilter => {
            filter_key(app, key);
            Vec::new()
        }
        Mode::Normal => normal_key(app, key),
    }
}

fn edit_key(
    app: &mut App,
    key: KeyEvent,
    cfg_key: String,
    mut buffer: String,
) -> Vec<(usize, Command)> {
    match key.code {
        KeyCode::Esc => app.mode = Mode::Normal,
        KeyCode::Enter => {
            app.mode = Mode::Normal;
            let current = app.current;
            if let Some(d) = app.daemons.get_mut(current) {
                let original = d
                    .config
                    .as_ref()
                    .and_then(|c| c.entries.iter().find(|e| e.key == cfg_key))
                    .map(|e| e.value.clone());
                if original.as_deref() == Some(buffer.as_str()) {
                    d.form.edits.remove(&cfg_key);
                } else {
                    d.form.edits.insert(cfg_key, buffer);
                }
                return check(app);
            }
        }
        KeyCode::Backspace => {
            buffer.pop();
            app.mode = Mode::EditConfig {
                key: cfg_key,
                buffer,
            };
        }
        KeyCode::Char(c) => {
            buffer.push(c);
            app.mode = Mode::EditConfig {
                key: cfg_key,
                buffer,
            };
        }
        _ => {}
    }
    Vec::new()
}

/// Asks the current daemon to validate the pending edits (or clears the preview when none).
fn check(app: &mut App) -> Vec<(usize, Command)> {
    let current = app.current;
    let Some(d) = app.daemons.get_mut(current) else {
        return Vec::new();
    };
    if d.form.edits.is_empty() {
        d.form.preview = None;
        return Vec::new();
    }
    d.form.waiting = true;
    let edits = d
        .form
        .edits
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vec![(current, Command::CheckConfig(edits))]
}

fn filter_key(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Esc => {
            app.config_filter.clear();
            app.mode = Mode::Normal;
        }
        KeyCode::Enter => app.mode = Mode::Normal,
        KeyCode::Backspace => {
            app.config_filter.pop();
        }
        KeyCode::Char(c) => app.config_filter.push(c),
        _ => {}
    }
    app.config_selected = 0;
}

fn search_key(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Esc => {
            app.logs.search.clear();
            app.mode = Mode::Normal;
        }
        KeyCode::Enter => app.mode = Mode::Normal,
        KeyCode::Backspace => {
            app.logs.search.pop();
        }
        KeyCode::Char(c) => app.logs.search.push(c),
        _ => {}
    }
    app.logs.scroll = 0;
}

/// Rows the selection can move over on the current tab.
fn rows(app: &App) -> usize {
    let Some(d) = app.daemon() else { return 0 };
    match app.tab {
        Tab::Bots => d.bots.len(),
        Tab::Weights => d.miners.as_ref().map_or(0, |m| m.miners.len()),
        Tab::Jobs => d.jobs.len(),
        Tab::Config => app.config_entries(d).len(),
        _ => 0,
    }
}

fn selection(app: &mut App) -> Option<&mut usize> {
    match app.tab {
        Tab::Bots => Some(&mut app.bots_selected),
        Tab::Weights => Some(&mut app.weights_selected),
        Tab::Jobs => Some(&mut app.jobs_selected),
        Tab::Config => Some(&mut app.config_selected),
        _ => None,
    }
}

fn move_selection(app: &mut App, delta: isize) {
    if app.tab == Tab::Logs {
        // Scroll counts lines up from the newest; 0 follows the tail.
        let total = app.daemon().map_or(0, |d| d.logs.len());
        let scroll = app.logs.scroll as isize - delta;
        app.logs.scroll = scroll.clamp(0, total.saturating_sub(1) as isize) as usize;
        return;
    }
    let n = rows(app);
    if let Some(sel) = selection(app) {
        let moved = *sel as isize + delta;
        *sel = moved.clamp(0, n.saturating_sub(1) as isize) as usize;
    }
}

fn normal_key(app: &mut App, key: KeyEvent) -> Vec<(usize, Command)> {
    if app.help {
        // Any key closes the help (q still quits).
        app.help = false;
        if key.code != KeyCode::Char('q') {
            return Vec::new();
        }
    }
    match key.code {
        KeyCode::Char('q') => app.quit = true,
        KeyCode::Char('?') => app.help = true,
        KeyCode::Char(c @ '1'..='7') => {
            app.tab = Tab::ALL[(c as u8 - b'1') as usize];
        }
        KeyCode::Tab => app.tab = app.tab.next(),
        KeyCode::BackTab => app.tab = app.tab.prev(),
        KeyCode::Char(']') | KeyCode::Char('>') => {
            if !app.daemons.is_empty() {
                app.current = (app.current + 1) % app.daemons.len();
            }
        }
        KeyCode::Char('[') | KeyCode::Char('<') => {
            if !app.daemons.is_empty() {
                app.current = (app.current + app.daemons.len() - 1) % app.daemons.len();
            }
        }
        KeyCode::Up | KeyCode::Char('k') => move_selection(app, -1),
        KeyCode::Down | KeyCode::Char('j') => move_selection(app, 1),
        KeyCode::PageUp => move_selection(app, -10),
        KeyCode::PageDown => move_selection(app, 10),
        KeyCode::Home | KeyCode::Char('g') => move_selection(app, -1_000_000),
        KeyCode::End | KeyCode::Char('G') => move_selection(app, 1_000_000),
        _ => return tab_key(app, key),
    }
    Vec::new()
}

fn tab_key(app: &mut App, key: KeyEvent) -> Vec<(usize, Command)> {
    let current = app.current;
    match (app.tab, key.code) {
        (Tab::Bandwidth, KeyCode::Char('w')) => app.window = app.window.next(),
        (Tab::Bots, KeyCode::Enter) | (Tab::Bots, KeyCode::Char('b')) => {
            return bench(app, None);
        }
        (Tab::Weights, KeyCode::Enter) | (Tab::Weights, KeyCode::Char('b')) => {
            let uid = app
                .daemon()
                .and_then(|d| d.miners.as_ref())
                .and_then(|m| m.miners.get(app.weights_selected))
                .map(|m| m.uid);
            if let Some(uid) = uid {
                return bench(app, Some(uid));
            }
        }
        (Tab::Weights, KeyCode::Char('B')) => return bench(app, None),
        (Tab::Config, KeyCode::Enter) | (Tab::Config, KeyCode::Char('e')) => {
            let entry = app.selected_config_entry().and_then(|e| {
                let d = app.daemon()?;
                let value = d.form.edits.get(&e.key).unwrap_or(&e.value).clone();
                Some((e.key.clone(), value))
            });
            if let Some((key, buffer)) = entry {
                app.mode = Mode::EditConfig { key, buffer };
            }
        }
        (Tab::Config, KeyCode::Char('u')) => {
            let key = app.selected_config_entry().map(|e| e.key.clone());
            if let (Some(key), Some(d)) = (key, app.daemons.get_mut(current)) {
                d.form.edits.remove(&key);
                return check(app);
            }
        }
        (Tab::Config, KeyCode::Esc) => {
            if let Some(d) = app.daemons.get_mut(current) {
                d.form.edits.clear();
                d.form.preview = None;
            }
        }
        (Tab::Config, KeyCode::Char('a')) => {
            let Some(d) = app.daemons.get_mut(current) else {
                return Vec::new();
            };
            if d.form.edits.is_empty() {
                notice(
                    app,
                    "nothing to apply: press Enter on a key to edit it",
                    true,
                );
            } else if d
                .form
                .preview
                .as_ref()
                .is_some_and(|p| !p.problems.is_empty())
            {
                notice(app, "fix the problems shown before applying", true);
            } else {
                d.form.waiting = true;
                let edits = d
                    .form
                    .edits
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                return vec![(current, Command::ApplyConfig(edits))];
            }
        }
        (Tab::Config, KeyCode::Char('r')) => return vec![(current, Command::ReloadConfig)],
        (Tab::Config, KeyCode::Char('/')) => {
            app.mode = Mode::ConfigFilter;
            app.config_filter.clear();
            app.config_selected = 0;
        }
        (Tab::Logs, KeyCode::Char('l')) => app.logs.level = (app.logs.level + 1) % LEVELS.len(),
        (Tab::Logs, KeyCode::Char('L')) => {
            app.logs.level = (app.logs.level + LEVELS.len() - 1) % LEVELS.len()
        }
        (Tab::Logs, KeyCode::Char('/')) => {
            app.mode = Mode::Search;
            app.logs.search.clear();
        }
        (Tab::Logs, KeyCode::Esc) => app.logs.search.clear(),
        _ => {}
    }
    Vec::new()
}

fn bench(app: &mut App, miner_uid: Option<u32>) -> Vec<(usize, Command)> {
    let Some(d) = app.daemon() else {
        return Vec::new();
    };
    if d.link != Link::Connected {
        notice(app, "not connected: cannot start a benchmark", true);
        return Vec::new();
    }
    vec![(app.current, Command::StartBench { miner_uid })]
}

/// Lines the Logs tab shows (oldest first), after the level filter and the search.
pub fn visible_log_count(app: &App) -> usize {
    app.daemon()
        .map_or(0, |d| d.logs.iter().filter(|l| app.logs.matches(l)).count())
}

/// Whether a bot is busy (for the Bots tab's summary).
pub fn bot_busy(state: i32) -> bool {
    matches!(
        BotState::try_from(state).unwrap_or(BotState::Unspecified),
        BotState::Requesting | BotState::Running | BotState::Verifying | BotState::Reporting
    )
}
