//! Every tab of `mrctl tui` drawn from fixture state (built from the admin API's messages through
//! `update`, as the live console does) at 80x24 and 160x48, plus the help, the config form with
//! edits and problems, the logs search, a small terminal, and a disconnected daemon.
//! Snapshots: console/tests/snapshots/ (review changes with `cargo insta review`).

use mr_proto::v1::{ConfigProblem, UpdateConfigResponse};
use mrctl::tui::action::{Action, Command, DaemonEvent};
use mrctl::tui::app::update;
use mrctl::tui::fixture::{self, NOW_MS};
use mrctl::tui::state::{App, Mode, Tab};
use mrctl::tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| ui::draw(frame, app)).expect("draw");
    terminal.backend().to_string()
}

/// Text that may differ between builds (the crate version) is replaced before comparing.
fn assert_screen(name: &str, screen: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"(version\s+)\d+\.\d+\.\d+\S*", "${1}X.Y.Z");
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_snapshot!(name, screen));
}

fn key(app: &mut App, code: KeyCode) -> Vec<(usize, Command)> {
    update(app, Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn fixture_app() -> App {
    fixture::app(3, 900, false)
}

#[test]
fn every_tab_at_80x24_and_160x48() {
    for tab in Tab::ALL {
        let mut app = fixture_app();
        key(&mut app, KeyCode::Char((b'1' + tab.index() as u8) as char));
        assert_eq!(app.tab, tab);
        for (w, h) in [(80, 24), (160, 48)] {
            let screen = render(&app, w, h);
            assert_screen(&format!("{}_{w}x{h}", tab.title().to_lowercase()), &screen);
        }
    }
}

#[test]
fn screens_show_what_an_operator_needs() {
    let mut app = fixture_app();
    let overview = render(&app, 80, 24);
    assert!(overview.contains("validator"), "{overview}");
    assert!(overview.contains("#1234 (4s ago)"), "{overview}");
    assert!(overview.contains("2 reachable of 3"), "{overview}");
    // The second daemon went away: its state is in the daemon bar.
    assert!(overview.contains("✗ miner1"), "{overview}");

    key(&mut app, KeyCode::Char('2'));
    let bandwidth = render(&app, 160, 48);
    assert!(
        bandwidth.contains("last 5 min (300 samples)"),
        "{bandwidth}"
    );
    assert!(bandwidth.contains("uid 1"), "{bandwidth}");
    key(&mut app, KeyCode::Char('w'));
    assert!(render(&app, 160, 48).contains("last 15 min (900 samples)"));

    key(&mut app, KeyCode::Char('3'));
    let bots = render(&app, 160, 48);
    assert!(
        bots.contains("running") && bots.contains("backoff 10s"),
        "{bots}"
    );
    assert!(bots.contains("wrong_result: block 3 differs"), "{bots}");

    key(&mut app, KeyCode::Char('4'));
    let weights = render(&app, 160, 48);
    assert!(
        weights.contains("next allowed 1300 (in 66 blocks)"),
        "{weights}"
    );
    assert!(weights.contains("unreachable"), "{weights}");
}

#[test]
fn config_form_shows_problems_inline_and_the_diff() {
    let mut app = fixture_app();
    key(&mut app, KeyCode::Char('6'));
    // Select validator.ema_alpha (6th key) and type a new value.
    for _ in 0..5 {
        key(&mut app, KeyCode::Down);
    }
    key(&mut app, KeyCode::Enter);
    assert!(matches!(&app.mode, Mode::EditConfig { key, .. } if key == "validator.ema_alpha"));
    for _ in 0..3 {
        key(&mut app, KeyCode::Backspace);
    }
    for c in "1.5".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let editing = render(&app, 80, 24);
    assert!(editing.contains("1.5▏"), "{editing}");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        commands,
        vec![(
            0,
            Command::CheckConfig(vec![("validator.ema_alpha".to_string(), "1.5".to_string())])
        )]
    );
    // The daemon answers the dry run with a problem: shown under the key, apply refused.
    update(
        &mut app,
        Action::Daemon(
            0,
            DaemonEvent::ConfigChecked(UpdateConfigResponse {
                applied: false,
                problems: vec![ConfigProblem {
                    key: "validator.ema_alpha".to_string(),
                    message: "must be in (0, 1], got 1.5".to_string(),
                }],
                diff: String::new(),
                changed_keys: vec!["validator.ema_alpha".to_string()],
                restart_required: vec![],
                path: "/etc/mapreduce/validator.toml".to_string(),
                warnings: vec![],
            }),
        ),
    );
    let invalid = render(&app, 80, 24);
    assert!(
        invalid.contains("✗ must be in (0, 1], got 1.5"),
        "{invalid}"
    );
    assert_screen("config_problem_80x24", &invalid);
    assert!(
        key(&mut app, KeyCode::Char('a')).is_empty(),
        "apply with problems must not be sent"
    );

    // A valid value: the diff is previewed, `a` applies.
    key(&mut app, KeyCode::Enter);
    for _ in 0..3 {
        key(&mut app, KeyCode::Backspace);
    }
    for c in "0.2".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    update(
        &mut app,
        Action::Daemon(
            0,
            DaemonEvent::ConfigChecked(UpdateConfigResponse {
                applied: false,
                problems: vec![],
                diff: "--- validator.toml\n+++ validator.toml\n@@ -1 +1 @@\n [validator]\n-ema_alpha = 0.1\n+ema_alpha = 0.2\n".to_string(),
                changed_keys: vec!["validator.ema_alpha".to_string()],
                restart_required: vec![],
                path: "/etc/mapreduce/validator.toml".to_string(),
                warnings: vec![],
            }),
        ),
    );
    let valid = render(&app, 160, 48);
    assert!(
        valid.contains("+ema_alpha = 0.2") && valid.contains("valid: press a to apply"),
        "{valid}"
    );
    assert_screen("config_diff_160x48", &valid);
    let commands = key(&mut app, KeyCode::Char('a'));
    assert_eq!(
        commands,
        vec![(
            0,
            Command::ApplyConfig(vec![("validator.ema_alpha".to_string(), "0.2".to_string())])
        )]
    );
}

#[test]
fn logs_filter_by_level_and_search() {
    let mut app = fixture_app();
    key(&mut app, KeyCode::Char('7'));
    let info = render(&app, 80, 24);
    assert!(!info.contains("DEBUG") && info.contains("INFO"), "{info}");
    key(&mut app, KeyCode::Char('l'));
    assert!(render(&app, 160, 48).contains("DEBUG"));
    key(&mut app, KeyCode::Char('/'));
    for c in "set_weights".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    let found = render(&app, 80, 24);
    assert!(
        found.contains("set_weights failed") && !found.contains("metagraph synced"),
        "{found}"
    );
    assert_screen("logs_search_80x24", &found);
}

#[test]
fn help_small_terminals_and_daemon_switch() {
    let mut app = fixture_app();
    key(&mut app, KeyCode::Char('?'));
    assert_screen("help_80x24", &render(&app, 80, 24));
    key(&mut app, KeyCode::Char('x'));
    assert!(!app.help);
    // Below 80x24 everything still fits without a panic; far below, a clear message.
    for (w, h) in [(60, 20), (40, 8), (79, 23)] {
        for tab in Tab::ALL {
            key(&mut app, KeyCode::Char((b'1' + tab.index() as u8) as char));
            render(&app, w, h);
        }
    }
    let tiny = render(&app, 30, 6);
    assert!(tiny.contains("terminal too small"), "{tiny}");
    // The disconnected miner: a banner with the countdown.
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char(']'));
    let miner = render(&app, 80, 24);
    assert!(miner.contains("disconnected, retrying in 4s"), "{miner}");
    assert_screen("disconnected_80x24", &miner);
    update(&mut app, Action::Tick(NOW_MS + 2_500));
    assert!(render(&app, 80, 24).contains("retrying in 2s"));
}

#[test]
fn quit_keys() {
    let mut app = fixture_app();
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
    let mut app = fixture_app();
    key(&mut app, KeyCode::Char('6'));
    key(&mut app, KeyCode::Enter);
    // While editing, q is text; Ctrl-C still quits.
    key(&mut app, KeyCode::Char('q'));
    assert!(!app.quit);
    update(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(app.quit);
}

#[test]
fn config_filter_finds_a_key() {
    let mut app = fixture_app();
    key(&mut app, KeyCode::Char('6'));
    key(&mut app, KeyCode::Char('/'));
    for c in "miners_per".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("validator.miners_per_job") && !screen.contains("axon.port"),
        "{screen}"
    );
    key(&mut app, KeyCode::Enter);
    assert!(
        matches!(&app.mode, Mode::EditConfig { key, buffer } if key == "validator.miners_per_job" && buffer == "3")
    );
    key(&mut app, KeyCode::Esc);
    // Esc in the filter clears it: every key again.
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Esc);
    assert!(render(&app, 80, 24).contains("axon.port"));
}
