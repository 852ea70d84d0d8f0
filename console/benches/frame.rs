//! Frame benchmark: the time to draw the Bandwidth tab with 15 minutes of per-second samples for
//! 64 miners (issue 9's target: under 5 ms), and the other tabs for comparison. Plain harness:
//! `cargo bench -p mrctl --bench frame` prints median, p95 and max per screen.

use mrctl::tui::action::Action;
use mrctl::tui::app::update;
use mrctl::tui::fixture;
use mrctl::tui::state::{App, Tab, Window};
use mrctl::tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::{Duration, Instant};

const TARGET: Duration = Duration::from_millis(5);

fn measure(app: &App, width: u16, height: u16, rounds: usize) -> Vec<Duration> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    // Warm-up: caches (layout cache, allocations) as in a running console.
    for _ in 0..5 {
        terminal.draw(|f| ui::draw(f, app)).expect("draw");
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            // A fresh buffer each round, so every cell is written and diffed like a changing screen.
            terminal.clear().expect("clear");
            let start = Instant::now();
            terminal.draw(|f| ui::draw(f, app)).expect("draw");
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::var("FRAME_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let built = Instant::now();
    let mut app = fixture::app(64, 900, true);
    println!(
        "fixture: 64 miners x 900 s of samples ({} flows, {} totals) built in {:.0} ms",
        app.daemons[0].metrics.flows.len(),
        app.daemons[0].metrics.totals.len(),
        ms(built.elapsed())
    );
    app.window = Window::Fifteen;
    let mut worst_bandwidth = Duration::ZERO;
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9}",
        "screen", "size", "median", "p95", "max"
    );
    for tab in Tab::ALL {
        update(
            &mut app,
            Action::Key(KeyEvent::new(
                KeyCode::Char((b'1' + tab.index() as u8) as char),
                KeyModifiers::NONE,
            )),
        );
        for (w, h) in [(80u16, 24u16), (160, 48), (240, 70)] {
            let times = measure(&app, w, h, rounds);
            let median = times[times.len() / 2];
            let p95 = times[times.len() * 95 / 100];
            let max = times[times.len() - 1];
            if tab == Tab::Bandwidth {
                worst_bandwidth = worst_bandwidth.max(p95);
            }
            println!(
                "{:<10} {:>8} {:>7.3}ms {:>7.3}ms {:>7.3}ms",
                tab.title(),
                format!("{w}x{h}"),
                ms(median),
                ms(p95),
                ms(max)
            );
        }
    }
    println!(
        "Bandwidth tab, 15 min x 64 miners: worst p95 {:.3} ms, target < {} ms: {}",
        ms(worst_bandwidth),
        TARGET.as_millis(),
        if worst_bandwidth < TARGET {
            "met"
        } else {
            "NOT MET"
        }
    );
}
