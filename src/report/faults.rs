//! `faults.png`: per transport and scheduled fault, what became of the messages due while it
//! lasted (arrived during it, after it, or never) and how long the clients took to get their
//! first message after it ended. Written only when
//! some run had a fault; a figure a run could not measure is said so, never drawn as zero.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::VPos;

use super::charts::{self, Area, plot_error};
use super::rows::{self, RowChart};
use super::units;
use crate::result::{FaultResult, RunResult};

pub const SIZE: (u32, u32) = (1200, 900);

const DELIVERED: RGBColor = RGBColor(0, 158, 115);
const DURING: RGBColor = RGBColor(86, 180, 233);
const P50: RGBColor = RGBColor(0, 114, 178);
const MAX: RGBColor = RGBColor(213, 94, 0);
const GREY: RGBColor = RGBColor(90, 90, 90);

/// One row: a run and one of its faults.
struct Row<'a> {
    run: &'a RunResult,
    fault: &'a FaultResult,
}

fn rows(results: &[RunResult]) -> Vec<Row<'_>> {
    charts::ordered(results)
        .into_iter()
        .flat_map(|run| run.link_faults.iter().map(move |fault| Row { run, fault }))
        .collect()
}

fn row_label(results: &[RunResult], row: &Row) -> String {
    format!(
        "{}: {} at {:.0} s",
        charts::run_label(results, row.run),
        row.fault.kind,
        row.fault.at_s
    )
}

/// Share of the run's due messages delivered, in percent; `None` when none were due.
fn delivered_percent(r: &RunResult) -> Option<f64> {
    (r.messages_expected > 0)
        .then(|| 100.0 * r.messages_delivered as f64 / r.messages_expected as f64)
}

/// What became of the messages due during the fault, as percentages of them stacked in
/// drawing order (during, after, lost); `None` when none were due or the result predates
/// the count.
fn fate_percent(f: &FaultResult) -> Option<[(f64, RGBColor); 3]> {
    let d = f.due_messages.filter(|d| d.due > 0)?;
    let share = |n: u64| 100.0 * n as f64 / d.due as f64;
    Some([
        (share(d.delivered_during), DURING),
        (share(d.delivered_after), DELIVERED),
        (share(d.lost), MAX),
    ])
}

pub fn render(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let rows = rows(results);
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    charts::render_png(SIZE, |root| {
        let halves = root.split_evenly((2, 1));
        delivery_panel(&halves[0], results, &rows)?;
        recovery_panel(&halves[1], results, &rows)
    })
}

fn delivery_panel(area: &Area, results: &[RunResult], rows: &[Row]) -> anyhow::Result<()> {
    let mut chart = rows::build(
        area,
        "The messages due while each fault lasted: arrived during it, after it, or never",
        rows.len(),
        0.0..150.0,
        "share of the messages scheduled during the fault, one per subscriber (%)",
        &|v| format!("{v:.0}%"),
    )?;
    for (label, colour) in [
        ("during", DURING),
        ("after (resent or refetched)", DELIVERED),
        ("lost", MAX),
    ] {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    for (i, row) in rows.iter().enumerate() {
        let y = i as f64;
        let at = |x: f64| ((x, y + 0.5), VPos::Center);
        match (fate_percent(row.fault), row.fault.due_messages) {
            (Some(parts), Some(d)) => {
                let mut from = 0.0;
                for (share, colour) in parts {
                    span(&chart, (y + 0.25, y + 0.75), (from, from + share), colour)?;
                    from += share;
                }
                let note = format!(
                    "{}: {} during, {} after, {} lost, {} dup.",
                    units::grouped(d.due as f64, "due"),
                    d.delivered_during,
                    d.delivered_after,
                    d.lost,
                    d.duplicated
                );
                rows::note(area, &chart, at(from), &note, BLACK)?;
            }
            _ => {
                let note = match delivered_percent(row.run) {
                    Some(share) => format!(
                        "none due during it; the whole run delivered {share:.1}% ({} lost)",
                        row.run.lost
                    ),
                    None => "no message was due".to_string(),
                };
                rows::note(area, &chart, at(0.0), &note, GREY)?;
            }
        }
        rows::label(area, &chart, i, &row_label(results, row))?;
    }
    charts::legend(&mut chart)
}

fn recovery_panel(area: &Area, results: &[RunResult], rows: &[Row]) -> anyhow::Result<()> {
    let widest = rows
        .iter()
        .filter_map(|row| row.fault.recovery_max_ms)
        .fold(1.0, f64::max);
    let mut chart = rows::build(
        area,
        "Recovery: from the fault's end to each client's first delivery after it",
        rows.len(),
        0.0..widest * 1.8,
        "time per client (p50 and max over the clients it silenced)",
        &|ms| units::duration_ms(*ms),
    )?;
    for (label, colour) in [("p50", P50), ("max", MAX)] {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    for (i, row) in rows.iter().enumerate() {
        let (f, y) = (row.fault, i as f64);
        if !f.error.is_empty() {
            let note = format!("not carried out: {}", f.error);
            rows::note(area, &chart, ((0.0, y + 0.5), VPos::Center), &note, GREY)?;
        } else if let (Some(p50), Some(max)) = (f.recovery_p50_ms, f.recovery_max_ms) {
            bar(&chart, (y + 0.14, y + 0.48), p50, P50)?;
            bar(&chart, (y + 0.52, y + 0.86), max, MAX)?;
            let note = format!(
                "{} / {} over {} clients, {} reconnects ({})",
                units::duration_ms(p50),
                units::duration_ms(max),
                f.clients_recovered,
                f.reconnects_after,
                units::optional(f.reconnect_bytes_after.map(|b| b as f64), |b| {
                    units::grouped(b, "B")
                })
            );
            rows::note(area, &chart, ((max, y + 0.69), VPos::Center), &note, BLACK)?;
        } else {
            let note = "no client's silence spans the fault's end";
            rows::note(area, &chart, ((0.0, y + 0.5), VPos::Center), note, GREY)?;
        }
        rows::label(area, &chart, i, &row_label(results, row))?;
    }
    charts::legend(&mut chart)
}

fn bar(
    chart: &RowChart<RangedCoordf64>,
    rows: (f64, f64),
    value: f64,
    colour: RGBColor,
) -> anyhow::Result<()> {
    span(chart, rows, (0.0, value), colour)
}

fn span(
    chart: &RowChart<RangedCoordf64>,
    (top, bottom): (f64, f64),
    (from, to): (f64, f64),
    colour: RGBColor,
) -> anyhow::Result<()> {
    chart
        .plotting_area()
        .draw(&Rectangle::new(
            [(from, top), (to, bottom)],
            colour.filled(),
        ))
        .map_err(plot_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::spans::FaultDelivery;

    fn faulted(transport: &str, recovery: Option<f64>) -> RunResult {
        RunResult {
            transport: transport.into(),
            transport_kind: "websocket".into(),
            messages_expected: 4_000,
            messages_delivered: 1_780,
            lost: 2_220,
            link_faults: vec![FaultResult {
                kind: "blackhole".into(),
                at_s: 6.0,
                duration_s: 10.0,
                recovery_p50_ms: recovery,
                recovery_max_ms: recovery,
                clients_recovered: 20,
                due_messages: Some(FaultDelivery {
                    due: 2_000,
                    delivered_during: 20,
                    delivered_after: 0,
                    lost: 1_980,
                    duplicated: 0,
                }),
                ..FaultResult::default()
            }],
            ..RunResult::default()
        }
    }

    #[test]
    fn a_chart_only_when_a_run_had_a_fault() {
        assert!(render(&[RunResult::default()]).unwrap().is_empty());
        let png = render(&[
            faulted("websocket(ping=2s)", Some(1152.7)),
            faulted("websocket", None),
        ])
        .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn a_row_per_fault_named_by_run_and_fault() {
        let results = [faulted("websocket(ping=2s)", Some(1152.7))];
        let rows = rows(&results);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            row_label(&results, &rows[0]),
            "websocket(ping=2s): blackhole at 6 s"
        );
        assert_eq!(delivered_percent(&results[0]), Some(44.5));
        assert_eq!(delivered_percent(&RunResult::default()), None);
    }

    #[test]
    fn the_fate_of_the_due_messages_stacks_to_all_of_them() {
        let run = faulted("websocket(ping=2s)", Some(1152.7));
        let parts = fate_percent(&run.link_faults[0]).unwrap();
        let shares: Vec<f64> = parts.iter().map(|(share, _)| *share).collect();
        assert_eq!(shares, [1.0, 0.0, 99.0]);
        // Older results, and a fault during which nothing was due, draw no bar.
        let mut older = run.link_faults[0].clone();
        older.due_messages = None;
        assert!(fate_percent(&older).is_none());
        older.due_messages = Some(FaultDelivery::default());
        assert!(fate_percent(&older).is_none());
    }
}
