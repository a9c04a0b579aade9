//! `latency.png` (percentiles per run) and `latency-distribution.png` (HDR percentile curves
//! per scenario, from the runs' whole histograms).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{self, Area, font, plot_error};
use super::rows;
use super::units::{self, Digits};
use crate::result::RunResult;
use hdrhistogram::Histogram;

use crate::stats::decode_histogram;

pub const SIZE: (u32, u32) = (1200, 800);
/// Width and per-scenario panel height of the distribution chart.
pub const PANEL: (u32, u32) = (1200, 460);

/// Size of `latency-distribution.png`: one panel per scenario.
pub fn distribution_size(results: &[RunResult]) -> (u32, u32) {
    let panels = charts::scenarios(results).len().max(1) as u32;
    (PANEL.0, PANEL.1 * panels)
}

/// The percentiles the chart shows, in the order of their markers.
const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

/// A run's `PERCENTILES` in µs; `None` where nothing was delivered.
fn percentiles(r: &RunResult) -> [Option<u64>; 5] {
    [
        r.latency_p50_us,
        r.latency_p90_us,
        r.latency_p99_us,
        r.latency_p999_us,
        r.latency_max_us,
    ]
}

/// The percentiles a log axis can show, by index: measured and above 0 µs.
fn drawn(r: &RunResult) -> impl Iterator<Item = (usize, f64)> {
    percentiles(r)
        .into_iter()
        .enumerate()
        .filter_map(|(index, us)| us.filter(|us| *us > 0).map(|us| (index, us as f64)))
}

fn duration(us: f64) -> String {
    units::duration_us(us, Digits::Three)
}

/// Powers of ten around `values`, with room at the right for the notes.
fn decades(values: impl Iterator<Item = f64>, headroom: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 1.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = if lo == f64::MAX { 1.0 } else { lo };
    (
        10f64.powf(lo.log10().floor()),
        10f64.powf((hi * headroom).log10().ceil()),
    )
}

pub fn percentile_chart(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let runs = charts::ordered(results);
    let transports = charts::transports(results);
    let (lo, hi) = decades(runs.iter().flat_map(|r| drawn(r).map(|(_, us)| us)), 40.0);
    charts::render_png(SIZE, |root| {
        let mut chart = rows::build(
            root,
            "End-to-end latency (receive time − intended publish time)",
            runs.len(),
            (lo..hi).log_scale(),
            "latency (log axis)",
            &|v| duration(*v),
        )?;
        for (index, name) in PERCENTILES.iter().enumerate() {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| EmptyElement::at((x + 7, y)) + legend_marker(index, BLACK));
        }
        for (row, r) in runs.iter().enumerate() {
            let colour = charts::colour(&transports, &charts::series(results, r));
            let y = row as f64 + 0.5;
            let points: Vec<(f64, f64)> = drawn(r).map(|(_, us)| (us, y)).collect();
            // The note goes right of the last point, or at the left edge of an empty row.
            let note_x = points.last().map_or(lo, |&(rightmost, _)| rightmost * 1.1);
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(plot_error)?;
            for (index, us) in drawn(r) {
                chart
                    .plotting_area()
                    .draw(&(EmptyElement::at((us, y)) + legend_marker(index, colour)))
                    .map_err(plot_error)?;
            }
            rows::label(root, &chart, row, &charts::run_label(results, r))?;
            let text = match r.latency_max_us {
                Some(_) => format!(
                    "p50 {} · p99 {} · max {}",
                    units::latency(r.latency_p50_us, Digits::Three),
                    units::latency(r.latency_p99_us, Digits::Three),
                    units::latency(r.latency_max_us, Digits::Three)
                ),
                None => "no messages delivered".to_string(),
            };
            rows::note(root, &chart, ((note_x, y), VPos::Center), &text, BLACK)?;
        }
        charts::legend(&mut chart)?;
        Ok(())
    })
}

/// The marker of percentile `index`, in pixels around its point (chart and legend alike).
fn legend_marker<DB: DrawingBackend>(
    index: usize,
    colour: RGBColor,
) -> DynElement<'static, DB, (i32, i32)> {
    match index {
        0 => Circle::new((0, 0), 6, colour.filled()).into_dyn(),
        1 => TriangleMarker::new((0, 0), 7, colour.filled()).into_dyn(),
        2 => Rectangle::new([(-5, -5), (5, 5)], colour.filled()).into_dyn(),
        3 => Cross::new((0, 0), 6, colour.stroke_width(2)).into_dyn(),
        _ => Circle::new((0, 0), 6, colour.stroke_width(2)).into_dyn(),
    }
}

/// Points per decade of the percentile axis.
const CURVE_STEPS: u32 = 40;

/// One curve: (x = 1/(1 − q), latency µs at quantile q) on an even grid of the log axis up
/// to `x_max`.
fn curve(histogram: &Histogram<u64>, x_max: f64) -> Vec<(f64, f64)> {
    let steps = (x_max.log10() * CURVE_STEPS as f64).round() as u32;
    (0..=steps)
        .map(|i| {
            let x = 10f64.powf(i as f64 / CURVE_STEPS as f64);
            let q = 1.0 - 1.0 / x;
            (x, histogram.value_at_quantile(q).max(1) as f64)
        })
        .collect()
}

/// The histogram of each run that has one; a note for each that has none.
fn histograms<'r>(runs: &[&'r RunResult]) -> (Vec<(&'r RunResult, Histogram<u64>)>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for r in runs {
        if r.latency_histogram.is_empty() {
            missing.push(format!("{}: no histogram in the results", r.transport));
            continue;
        }
        match decode_histogram(&r.latency_histogram) {
            Ok(h) if h.is_empty() => missing.push(format!("{}: empty histogram", r.transport)),
            Ok(h) => found.push((*r, h)),
            Err(e) => missing.push(format!("{}: unreadable histogram ({e})", r.transport)),
        }
    }
    (found, missing)
}

/// Percentile axis label: 10 → "90%", 1000 → "99.9%".
fn percentile_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 1.0 / x);
    let digits = (x.log10().round() as usize).saturating_sub(2);
    format!("{q:.digits$}%")
}

pub fn distribution_chart(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let scenarios = charts::scenarios(results);
    charts::render_png(distribution_size(results), |root| {
        let panels = root.split_evenly((scenarios.len().max(1), 1));
        for (scenario, panel) in scenarios.iter().zip(&panels) {
            let runs: Vec<&RunResult> =
                results.iter().filter(|r| &r.scenario == scenario).collect();
            distribution_panel(panel, results, scenario, &runs)?;
        }
        Ok(())
    })
}

fn distribution_panel(
    area: &Area,
    all: &[RunResult],
    scenario: &str,
    runs: &[&RunResult],
) -> anyhow::Result<()> {
    let transports = charts::transports(all);
    let (histograms, missing) = histograms(runs);
    // The axis ends at the finest percentile the largest histogram can tell apart.
    let samples = histograms.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    let x_max = 10f64.powf((samples.max(100) as f64).log10().ceil().min(6.0));
    let curves: Vec<(&RunResult, Vec<(f64, f64)>)> = histograms
        .iter()
        .map(|(r, h)| (*r, curve(h, x_max)))
        .collect();
    let (lo, hi) = decades(curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)), 1.5);
    let caption = format!(
        "{}: latency by percentile (HDR histogram; receive − intended publish time)",
        charts::group_title(scenario)
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(20.0))
        .margin(14)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(90)
        .build_cartesian_2d((1.0..x_max).log_scale(), (lo..hi).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| percentile_label(*v))
        .y_label_formatter(&|v| duration(*v))
        .x_desc("percentile (log scale of 1/(1 − q))")
        .y_desc("latency (log axis)")
        .label_style(font(13.0))
        .axis_desc_style(font(14.0))
        .draw()
        .map_err(plot_error)?;
    for (r, points) in curves {
        let name = charts::series(all, r);
        let colour = charts::colour(&transports, &name);
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    if !missing.is_empty() {
        let style = font(13.0).pos(Pos::new(HPos::Left, VPos::Bottom));
        chart
            .plotting_area()
            .draw(&Text::new(missing.join("; "), (1.1, lo * 1.2), style))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(font(13.0))
        .draw()
        .map_err(plot_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record_latency};

    #[test]
    fn curves_rise_with_the_percentile_and_end_at_the_max() {
        let mut histogram = new_histogram();
        for i in 0..30_000u64 {
            record_latency(&mut histogram, 1_000 + (i * 7_919) % 999_000);
        }
        let points = curve(&histogram, 1e5);
        assert_eq!(points.len(), 201);
        assert!(
            points
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        assert_eq!(points.last().unwrap().1, histogram.max() as f64);
    }

    #[test]
    fn percentile_labels_show_the_nines() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }
}
