//! Runs over a link (`[network]`): `links.png`, each transport's latency p50 and p99 across
//! the link profiles of a results set (the round trips polling pays beside push's one-way
//! delay), and the per-fault delivery and recovery table of `comparison.md` and the console.

use std::fmt::Write;

use plotters::prelude::*;

use super::charts::{self, font, plot_error};
use super::units::{self, Digits};
use crate::result::{FaultResult, RunResult};

pub const SIZE: (u32, u32) = (1200, 700);

/// One x position: a link as the results name it (profile, configured round trip).
#[derive(Debug, Clone, PartialEq)]
struct LinkKind {
    profile: String,
    rtt_ms: f64,
}

impl LinkKind {
    fn of(r: &RunResult) -> Option<LinkKind> {
        (!r.link_profile.is_empty()).then(|| LinkKind {
            profile: r.link_profile.clone(),
            rtt_ms: r.link_rtt_configured_ms,
        })
    }

    fn label(&self) -> String {
        format!(
            "{} ({} RTT)",
            self.profile,
            units::duration_us(self.rtt_ms * 1e3, Digits::Three)
        )
    }
}

/// The links of `results`, shortest configured round trip first.
fn links(results: &[RunResult]) -> Vec<LinkKind> {
    let mut kinds: Vec<LinkKind> = Vec::new();
    for kind in results.iter().filter_map(LinkKind::of) {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.sort_by(|a, b| a.rtt_ms.total_cmp(&b.rtt_ms));
    kinds
}

/// A transport's latency at one link: (x, p50 µs, p99 µs).
type Point = (f64, u64, u64);

/// A transport's points over the links, from the first run of each link that delivered
/// something.
fn points(results: &[RunResult], kinds: &[LinkKind], series: &str) -> Vec<Point> {
    kinds
        .iter()
        .enumerate()
        .filter_map(|(x, kind)| {
            let r = results.iter().find(|r| {
                LinkKind::of(r).as_ref() == Some(kind) && charts::series(results, r) == series
            })?;
            Some((x as f64, r.latency_p50_us?.max(1), r.latency_p99_us?.max(1)))
        })
        .collect()
}

/// `links.png`; empty (no file) when no run had a link.
pub fn chart(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let kinds = links(results);
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let linked: Vec<RunResult> = results
        .iter()
        .filter(|r| LinkKind::of(r).is_some())
        .cloned()
        .collect();
    let transports = charts::transports(&linked);
    let all: Vec<(String, Vec<Point>)> = transports
        .iter()
        .map(|t| (t.clone(), points(&linked, &kinds, t)))
        .collect();
    let values = all
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|&(_, a, b)| [a as f64, b as f64]));
    let (lo, hi) = decades(values);
    charts::render_png(SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Latency across link profiles: p50 (filled) and p99 (open) per transport",
                font(22.0),
            )
            .margin(14)
            .margin_right(36)
            .x_label_area_size(48)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.5..kinds.len() as f64 - 0.5, (lo..hi).log_scale())
            .map_err(plot_error)?;
        let label = |x: &f64| {
            let index = x.round();
            match kinds.get(index as usize) {
                Some(kind) if (x - index).abs() < 1e-6 => kind.label(),
                _ => String::new(),
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(kinds.len() * 2 + 1)
            .x_label_formatter(&label)
            .y_label_formatter(&|us| units::duration_us(*us, Digits::Three))
            .x_desc("link profile")
            .y_desc("latency (log axis)")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .draw()
            .map_err(plot_error)?;
        for (name, points) in &all {
            let colour = charts::colour(&transports, name);
            let p50: Vec<(f64, f64)> = points.iter().map(|&(x, p, _)| (x, p as f64)).collect();
            let p99: Vec<(f64, f64)> = points.iter().map(|&(x, _, p)| (x, p as f64)).collect();
            chart
                .draw_series(LineSeries::new(p50.clone(), colour.stroke_width(3)))
                .map_err(plot_error)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3))
                });
            chart
                .draw_series(LineSeries::new(p99.clone(), colour.stroke_width(1)))
                .map_err(plot_error)?;
            chart
                .draw_series(p50.iter().map(|&at| Circle::new(at, 6, colour.filled())))
                .map_err(plot_error)?;
            chart
                .draw_series(
                    p99.iter()
                        .map(|&at| Circle::new(at, 6, colour.stroke_width(2))),
                )
                .map_err(plot_error)?;
        }
        charts::legend(&mut chart)?;
        Ok(())
    })
}

/// The latency axis around `values` (µs), with room for the markers at both ends.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, 1.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = if lo == f64::MAX { 1.0 } else { lo };
    ((lo / 1.5).max(1.0), hi * 1.5)
}

/// The `## Faults` section: one row per scheduled fault of each run; empty without faults.
pub fn faults_section(results: &[RunResult]) -> anyhow::Result<String> {
    let mut out = String::new();
    if results.iter().all(|r| r.link_faults.is_empty()) {
        return Ok(out);
    }
    out.push_str(
        "\n## Faults\n\nWhat the fleet counted around each scheduled fault. Recovery: from the \
         fault's end to each client's first delivery after it, over the clients whose longest \
         silence spans that end. Lost is the run's (every fault of it together).\n\n",
    );
    out.push_str(
        "| scenario | transport | link | fault | at | lasted | delivered during | publishes \
         refused | reconnects after | first delivery after | clients recovered | recovery \
         p50 / p99 / max | run lost |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        for f in &r.link_faults {
            let [
                what,
                at,
                lasted,
                during,
                refused,
                reconnects,
                first,
                recovered,
                recovery,
            ] = fault_cells(f);
            writeln!(
                out,
                "| {} | {} | {} | {what} | {at} | {lasted} | {during} | {refused} | \
                 {reconnects} | {first} | {recovered} | {recovery} | {} |",
                r.scenario,
                charts::series(results, r),
                LinkKind::of(r).map_or_else(|| "-".to_string(), |k| k.label()),
                r.lost
            )?;
        }
    }
    Ok(out)
}

/// One console line per fault of `r`, for the notes under the run table.
pub fn console_notes(r: &RunResult) -> String {
    r.link_faults
        .iter()
        .map(|f| {
            let [
                what,
                at,
                lasted,
                during,
                refused,
                reconnects,
                first,
                recovered,
                recovery,
            ] = fault_cells(f);
            format!(
                "note: {} {what} at {at} (lasted {lasted}): {during} delivered during it, \
                 {refused} publishes refused, {reconnects} reconnects, first delivery {first} \
                 after it, recovery p50/p99/max {recovery} over {recovered} clients\n",
                r.transport
            )
        })
        .collect()
}

/// A fault's figures as text: kind (or why it was not carried out), start, length,
/// deliveries, refused publishes, reconnects, first delivery, clients recovered, recovery.
fn fault_cells(f: &FaultResult) -> [String; 9] {
    let ms = |v: Option<f64>| units::optional(v, |ms| units::duration_us(ms * 1e3, Digits::Three));
    let what = if f.error.is_empty() {
        f.kind.clone()
    } else {
        format!("{} (failed: {})", f.kind, f.error)
    };
    [
        what,
        format!("{:.1} s", f.at_s),
        units::duration_us(f.duration_s * 1e6, Digits::Three),
        f.delivered_during.to_string(),
        f.publishes_failed.to_string(),
        f.reconnects_after.to_string(),
        ms(f.first_delivery_after_ms),
        f.clients_recovered.to_string(),
        format!(
            "{} / {} / {}",
            ms(f.recovery_p50_ms),
            ms(f.recovery_p99_ms),
            ms(f.recovery_max_ms)
        ),
    ]
}
