//! Frame benchmark: the time to draw the Bandwidth tab with 15 minutes of per-second samples for
//! 64 miners (issue 9's target: under 5 ms), and the other tabs for comparison. Plain harness:
//! `cargo bench -p mrctl --bench frame` prints median, p95 and max per screen, in wall time and in
//! the drawing thread's CPU time (the cost of a frame itself, unaffected by other load on a shared
//! machine; wall time adds whatever the scheduler took away).

use cpu_time::ThreadTime;
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

/// Sorted wall times and sorted thread CPU times of `rounds` frames.
fn measure(app: &App, width: u16, height: u16, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    // Warm-up: caches (layout cache, allocations) as in a running console.
    for _ in 0..5 {
        terminal.draw(|f| ui::draw(f, app)).expect("draw");
    }
    let (mut wall, mut cpu): (Vec<Duration>, Vec<Duration>) = (0..rounds)
        .map(|_| {
            // A fresh buffer each round, so every cell is written and diffed like a changing screen.
            terminal.clear().expect("clear");
            let cpu = ThreadTime::now();
            let start = Instant::now();
            terminal.draw(|f| ui::draw(f, app)).expect("draw");
            (start.elapsed(), cpu.elapsed())
        })
        .unzip();
    wall.sort();
    cpu.sort();
    (wall, cpu)
}

/// Median, p95 and max of sorted durations.
fn spread(sorted: &[Duration]) -> (Duration, Duration, Duration) {
    (
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 95 / 100],
        sorted[sorted.len() - 1],
    )
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
    let mut worst_bandwidth_wall = Duration::ZERO;
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}",
        "screen", "size", "cpu med", "cpu p95", "cpu max", "wall med", "wall p95", "wall max"
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
            let (wall, cpu) = measure(&app, w, h, rounds);
            let (cmed, cp95, cmax) = spread(&cpu);
            let (wmed, wp95, wmax) = spread(&wall);
            if tab == Tab::Bandwidth {
                worst_bandwidth = worst_bandwidth.max(cp95);
                worst_bandwidth_wall = worst_bandwidth_wall.max(wp95);
            }
            println!(
                "{:<10} {:>8} {:>7.3}ms {:>7.3}ms {:>7.3}ms   {:>7.3}ms {:>7.3}ms {:>7.3}ms",
                tab.title(),
                format!("{w}x{h}"),
                ms(cmed),
                ms(cp95),
                ms(cmax),
                ms(wmed),
                ms(wp95),
                ms(wmax)
            );
        }
    }
    println!(
        "Bandwidth tab, 15 min x 64 miners: worst p95 {:.3} ms of CPU ({:.3} ms wall, load: {}), target < {} ms: {}",
        ms(worst_bandwidth),
        ms(worst_bandwidth_wall),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into()),
        TARGET.as_millis(),
        if worst_bandwidth < TARGET {
            "met"
        } else {
            "NOT MET"
        }
    );
}
