//! `cost.png`: CPU time per delivered message and memory per client, of the fleet (clients
//! and publisher) and of the target, per run. A value the run could not measure is left out
//! and said so, never drawn as zero.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::VPos;

use super::charts::{self, Area, plot_error};
use super::rows::{self, RowChart};
use super::units::{self, Digits};
use crate::result::RunResult;

pub const SIZE: (u32, u32) = (1200, 900);

const FLEET: RGBColor = RGBColor(0, 114, 178);
const TARGET: RGBColor = RGBColor(230, 159, 0);

/// CPU µs per delivered message: (fleet, target); `None` where it was not measured.
pub fn cpu_us_per_message(r: &RunResult) -> (Option<f64>, Option<f64>) {
    let per_message = |cpu_s: f64| {
        (r.messages_delivered > 0 && cpu_s.is_finite())
            .then(|| cpu_s * 1e6 / r.messages_delivered as f64)
    };
    (
        per_message(r.fleet_cpu_s),
        r.target_cpu_s.and_then(per_message),
    )
}

/// Bytes of memory per client: (fleet growth ÷ clients, target peak ÷ clients); `None` where
/// it was not measured.
pub fn rss_bytes_per_client(r: &RunResult) -> (Option<f64>, Option<f64>) {
    let target = r
        .target_peak_rss_bytes
        .filter(|_| r.clients > 0)
        .map(|rss| rss as f64 / r.clients as f64);
    let fleet = Some(r.fleet_rss_bytes_per_client).filter(|b| b.is_finite());
    (fleet, target)
}

fn cpu_time(us: f64) -> String {
    units::duration_us(us, Digits::Three)
}

fn memory(bytes: f64) -> String {
    units::si(bytes, "B", Digits::Three)
}

struct Panel<'a> {
    caption: &'a str,
    x_desc: &'a str,
    format: fn(f64) -> String,
    values: fn(&RunResult) -> (Option<f64>, Option<f64>),
    legend: [&'a str; 2],
}

const PANELS: [Panel<'static>; 2] = [
    Panel {
        caption: "CPU time per delivered message",
        x_desc: "CPU time (user + system) of the whole run ÷ measured messages delivered",
        format: cpu_time,
        values: cpu_us_per_message,
        legend: ["fleet: clients + publisher", "target: embedded hub"],
    },
    Panel {
        caption: "Memory per client",
        x_desc: "bytes per client (SI: k = 10³); the target's figure includes its baseline",
        format: memory,
        values: rss_bytes_per_client,
        legend: [
            "fleet: RSS growth ÷ clients",
            "target: hub's peak RSS ÷ clients",
        ],
    },
];

pub fn render(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    charts::render_png(SIZE, |root| {
        let halves = root.split_evenly((2, 1));
        for (panel, area) in PANELS.iter().zip(&halves) {
            draw_panel(area, results, panel)?;
        }
        Ok(())
    })
}

fn draw_panel(area: &Area, results: &[RunResult], panel: &Panel) -> anyhow::Result<()> {
    let runs = charts::ordered(results);
    let values: Vec<(Option<f64>, Option<f64>)> = runs.iter().map(|r| (panel.values)(r)).collect();
    let widest = values
        .iter()
        .flat_map(|(f, t)| [*f, *t])
        .flatten()
        .fold(1e-9, f64::max);
    let format = panel.format;
    let mut chart = rows::build(
        area,
        panel.caption,
        runs.len(),
        0.0..widest * 1.5,
        panel.x_desc,
        &|v| format(*v),
    )?;
    for (label, colour) in panel.legend.iter().zip([FLEET, TARGET]) {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(plot_error)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    for (row, (r, (fleet, target))) in runs.iter().zip(values).enumerate() {
        let y = row as f64;
        draw_bar(
            area,
            &chart,
            (y + 0.14, y + 0.48),
            ("fleet", fleet),
            FLEET,
            format,
        )?;
        draw_bar(
            area,
            &chart,
            (y + 0.52, y + 0.86),
            ("target", target),
            TARGET,
            format,
        )?;
        rows::label(area, &chart, row, &charts::run_label(results, r))?;
    }
    charts::legend(&mut chart)
}

fn draw_bar(
    area: &Area,
    chart: &RowChart<RangedCoordf64>,
    (top, bottom): (f64, f64),
    (who, value): (&str, Option<f64>),
    colour: RGBColor,
    format: fn(f64) -> String,
) -> anyhow::Result<()> {
    let middle = (top + bottom) / 2.0;
    let Some(value) = value else {
        let note = format!("{who}: not measured");
        return rows::note(
            area,
            chart,
            ((0.0, middle), VPos::Center),
            &note,
            RGBColor(90, 90, 90),
        );
    };
    chart
        .plotting_area()
        .draw(&Rectangle::new(
            [(0.0, top), (value, bottom)],
            colour.filled(),
        ))
        .map_err(plot_error)?;
    rows::note(
        area,
        chart,
        ((value, middle), VPos::Center),
        &format(value),
        BLACK,
    )
}
