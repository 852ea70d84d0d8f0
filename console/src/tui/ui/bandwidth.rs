//! Bandwidth: total bytes in/out per second as a chart over the window, current/average/peak, and
//! one row per flow (peer or miner) with its own sparkline, busiest first.

use super::{Theme, block, fmt};
use crate::tui::state::{App, Daemon, FlowSeries, Point, rate_stats, since};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Sparkline};
use std::collections::VecDeque;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, d: &Daemon, theme: Theme) {
    let window_ms = app.window.secs() * 1000;
    // The window ends at the newest sample, so a paused stream keeps its picture.
    let end_ms = d.metrics.latest_ms();
    // Exactly `window` seconds of samples: the oldest one shown is window - 1 s old.
    let start_ms = end_ms.saturating_sub(window_ms) + 1;
    let flows_height = (d.metrics.flows.len() as u16 + 3).min(area.height / 2);
    let [chart_area, stats_area, flows_area] = Layout::vertical([
        Constraint::Min(6),
        Constraint::Length(2),
        Constraint::Length(flows_height),
    ])
    .areas(area);

    draw_chart(frame, chart_area, app, d, start_ms, end_ms, theme);

    let (rin, rout) = rate_stats(&d.metrics.totals, start_ms);
    let stats = vec![
        Line::from(vec![
            Span::styled("in  ", theme.incoming()),
            Span::raw(format!(
                "now {:>11}  avg {:>11}  peak {:>11}",
                fmt::rate(rin.current),
                fmt::rate(rin.average),
                fmt::rate(rin.peak)
            )),
        ]),
        Line::from(vec![
            Span::styled("out ", theme.outgoing()),
            Span::raw(format!(
                "now {:>11}  avg {:>11}  peak {:>11}",
                fmt::rate(rout.current),
                fmt::rate(rout.average),
                fmt::rate(rout.peak)
            )),
        ]),
    ];
    frame.render_widget(Paragraph::new(stats), stats_area);
    draw_flows(frame, flows_area, d, start_ms, theme);
}

fn draw_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    d: &Daemon,
    start_ms: u64,
    end_ms: u64,
    theme: Theme,
) {
    let window_s = app.window.secs() as f64;
    // x: seconds relative to the newest sample (-window..0).
    let to_xy = |p: &Point, v: u64| ((p.at_ms as f64 - end_ms as f64) / 1000.0, v as f64);
    let mut input: Vec<(f64, f64)> = Vec::new();
    let mut output: Vec<(f64, f64)> = Vec::new();
    let mut peak = 0u64;
    for p in since(&d.metrics.totals, start_ms) {
        input.push(to_xy(p, p.bytes_in));
        output.push(to_xy(p, p.bytes_out));
        peak = peak.max(p.bytes_in).max(p.bytes_out);
    }
    let top = nice_ceiling(peak as f64);
    // A braille cell holds 2 points across: more points than that only cost drawing time.
    let samples = input.len();
    let columns = usize::from(area.width).max(1) * 2;
    let input = downsample_max(&input, columns);
    let output = downsample_max(&output, columns);
    let title = format!("bytes/s, last {} ({} samples)", app.window.label(), samples);
    let datasets = vec![
        Dataset::default()
            .name("in")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.incoming())
            .data(&input),
        Dataset::default()
            .name("out")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.outgoing())
            .data(&output),
    ];
    let window_label = format!("-{}", app.window.label());
    let chart = Chart::new(datasets)
        .block(block(&title, theme))
        .x_axis(
            Axis::default()
                .bounds([-window_s, 0.0])
                .labels([window_label.as_str(), "now"])
                .style(theme.label()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels([String::from("0"), fmt::rate(top / 2.0), fmt::rate(top)])
                .style(theme.label()),
        );
    frame.render_widget(chart, area);
}

/// At most `max` points: consecutive runs of points become one, at the run's last x with its
/// highest y, so peaks stay visible however many samples the window holds.
fn downsample_max(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let run = points.len().div_ceil(max);
    points
        .chunks(run)
        .map(|c| {
            let y = c.iter().map(|p| p.1).fold(f64::MIN, f64::max);
            (c[c.len() - 1].0, y)
        })
        .collect()
}

/// A round number at or above `v` for the y axis (1, 2, 5 times a power of ten; at least 1).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Per-flow bytes in+out per second, bucketed to `width` columns (max per bucket) over the window.
fn buckets(points: &VecDeque<Point>, start_ms: u64, window_ms: u64, width: usize) -> Vec<u64> {
    let mut out = vec![0u64; width];
    if width == 0 || window_ms == 0 {
        return out;
    }
    for p in since(points, start_ms) {
        let offset = p.at_ms.saturating_sub(start_ms);
        let i = ((offset as u128 * width as u128) / (window_ms as u128 + 1)) as usize;
        let i = i.min(width - 1);
        out[i] = out[i].max(p.bytes_in + p.bytes_out);
    }
    out
}

fn draw_flows(frame: &mut Frame, area: Rect, d: &Daemon, start_ms: u64, theme: Theme) {
    if area.height < 3 {
        return;
    }
    let kind = d
        .metrics
        .flows
        .first()
        .map_or("flows".to_string(), |f| format!("{}s", f.kind));
    let outer = block(
        &format!(
            "per {} ({})",
            kind.trim_end_matches('s'),
            d.metrics.flows.len()
        ),
        theme,
    );
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    if d.metrics.flows.is_empty() {
        frame.render_widget(Paragraph::new(format!("no {kind} yet")), inner);
        return;
    }
    // Busiest first by the window's average.
    let mut ranked: Vec<(&FlowSeries, f64, f64, f64)> = d
        .metrics
        .flows
        .iter()
        .map(|f| {
            let (i, o) = rate_stats(&f.points, start_ms);
            (
                f,
                i.current + o.current,
                i.average + o.average,
                i.peak + o.peak,
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.label.cmp(&b.0.label)));
    let end_ms = d.metrics.latest_ms();
    let window_ms = end_ms.saturating_sub(start_ms);
    let label_w = 16usize;
    let figures_w = 36u16;
    let rows = inner.height as usize;
    let header = Line::styled(
        format!(
            "{:<label_w$} {:>11} {:>11} {:>11}  history",
            "in+out", "now", "avg", "peak"
        ),
        theme.header(),
    );
    frame.render_widget(Paragraph::new(header), Rect { height: 1, ..inner });
    let shown = rows.saturating_sub(1);
    for (n, (flow, now, avg, peak)) in ranked.iter().take(shown).enumerate() {
        let y = inner.y + 1 + n as u16;
        let line_area = Rect {
            y,
            height: 1,
            ..inner
        };
        let text_w = (label_w as u16 + figures_w + 2).min(line_area.width);
        let [text, spark] =
            Layout::horizontal([Constraint::Length(text_w), Constraint::Min(0)]).areas(line_area);
        let label = fmt::clip(
            if flow.label.is_empty() {
                &flow.id
            } else {
                &flow.label
            },
            label_w,
        );
        frame.render_widget(
            Paragraph::new(format!(
                "{label:<label_w$} {:>11} {:>11} {:>11}",
                fmt::rate(*now),
                fmt::rate(*avg),
                fmt::rate(*peak)
            )),
            text,
        );
        if spark.width > 0 {
            let data = buckets(&flow.points, start_ms, window_ms, spark.width as usize);
            frame.render_widget(
                Sparkline::default().data(data).style(theme.incoming()),
                spark,
            );
        }
    }
    if ranked.len() > shown && shown > 0 {
        let more = format!(" {} more ", ranked.len() - shown);
        let w = more.chars().count() as u16;
        if area.width > w + 2 {
            frame.render_widget(
                Paragraph::new(more).style(theme.label()),
                Rect {
                    x: area.x + area.width - w - 1,
                    y: area.y + area.height - 1,
                    width: w,
                    height: 1,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ceiling_and_buckets() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        let points: VecDeque<Point> = (0..10)
            .map(|i| Point {
                at_ms: 1000 * i,
                bytes_in: i,
                bytes_out: 1,
            })
            .collect();
        let b = buckets(&points, 0, 9000, 3);
        assert_eq!(b, vec![4, 7, 10]);
        assert_eq!(buckets(&points, 0, 9000, 0), Vec::<u64>::new());
    }

    #[test]
    fn downsampling_keeps_peaks_and_the_newest_x() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64, if i == 3 { 99.0 } else { 1.0 }))
            .collect();
        let d = downsample_max(&pts, 4);
        assert_eq!(d.len(), 4);
        assert_eq!(d[1], (5.0, 99.0));
        assert_eq!(d.last(), Some(&(9.0, 1.0)));
        assert_eq!(downsample_max(&pts, 20), pts);
    }
}
