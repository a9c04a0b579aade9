//! Runs over a link (`[network]`): `links.png`, each transport's latency p50 and p99 across
//! the link profiles of a results set (the round trips polling pays beside push's one-way
//! delay); in `comparison.md`, the same runs as a table with loss, retransmissions and the
//! tail, and the per-fault delivery and recovery table (also on the console).

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
        format!("{} ({} RTT)", self.profile, units::duration_ms(self.rtt_ms))
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

/// `links.png`; empty (no file) when no run had a link without a scheduled fault.
pub fn chart(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    // A run with a scheduled fault measures the fault, not the link: the Faults table has it.
    let linked: Vec<RunResult> = results
        .iter()
        .filter(|r| LinkKind::of(r).is_some() && r.link_faults.is_empty())
        .cloned()
        .collect();
    let kinds = links(&linked);
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
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
         silence spans that end. Their bytes: what the reconnects cost before their first \
         exchange (handshakes and subscriptions, TCP payload both ways). Due in it: the \
         measured messages scheduled while the fault lasted, one per subscriber, and what became \
         of them (arrived during it / after it / lost; after: resent by TCP or the broker's \
         session, or fetched from the server's history). Run lost is the whole run's.\n\n",
    );
    out.push_str(
        "| scenario | transport | link | fault | at | lasted | delivered during | publishes \
         refused | reconnects after | their bytes | first delivery after | clients recovered | recovery \
         p50 / p99 / max | due in it | of them during / after / lost | run lost |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        for f in &r.link_faults {
            let [
                what,
                at,
                lasted,
                during,
                refused,
                reconnects,
                reconnect_bytes,
                first,
                recovered,
                recovery,
                due,
                fate,
            ] = fault_cells(f);
            writeln!(
                out,
                "| {} | {} | {} | {what} | {at} | {lasted} | {during} | {refused} | \
                 {reconnects} | {reconnect_bytes} | {first} | {recovered} | {recovery} | {due} | \
                 {fate} | {} |",
                r.scenario,
                charts::series(results, r),
                LinkKind::of(r).map_or_else(|| "-".to_string(), |k| k.label()),
                r.lost
            )?;
        }
    }
    Ok(out)
}

/// The `## Across links` section: each run over a link without a scheduled fault, grouped by
/// transport and ordered by configured round trip, so each transport's tail reads down its
/// rows. Last Will runs are left out: their latency is the wills' after a cut. Empty when no
/// run had a link.
pub fn across_links_section(results: &[RunResult]) -> anyhow::Result<String> {
    let mut out = String::new();
    let steady: Vec<(LinkKind, &RunResult)> = results
        .iter()
        .filter(|r| r.link_faults.is_empty() && r.will_expected_within_us.is_none())
        .filter_map(|r| Some((LinkKind::of(r)?, r)))
        .collect();
    if steady.is_empty() {
        return Ok(out);
    }
    out.push_str(
        "\n## Across links\n\nEach transport over every link it ran on without a scheduled \
         fault or Last Will cut, by configured round trip: loss is the link's configured drop rate up / down, \
         RTT the target's median smoothed TCP round trip, retransmitted the target's share of \
         segments sent again, rate down its configured limit beside the busiest second the \
         fleet's end of the link counted while the run published (Ethernet frames). Latency is from intended publish to receipt, and delivered, \
         lost count the run's measured messages.\n\n",
    );
    out.push_str(
        "| scenario | transport | link | loss up / down | RTT measured | retransmitted | rate \
         down: limit / peak | latency p50 / p99 / max | delivered | lost |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for transport in charts::transports(results) {
        let mut rows: Vec<&(LinkKind, &RunResult)> = steady
            .iter()
            .filter(|(_, r)| charts::series(results, r) == transport)
            .collect();
        rows.sort_by(|(a, _), (b, _)| a.rtt_ms.total_cmp(&b.rtt_ms));
        for (kind, r) in rows {
            writeln!(
                out,
                "| {} | {transport} | {} | {} | {} | {} | {} | {} / {} / {} | {} of {} | {} |",
                r.scenario,
                kind.label(),
                configured_loss(r),
                units::duration_ms(r.link_rtt_measured_ms),
                percent(r.link_retrans_ratio),
                rate_down(r),
                units::latency(r.latency_p50_us, Digits::Three),
                units::latency(r.latency_p99_us, Digits::Three),
                units::latency(r.latency_max_us, Digits::Three),
                r.messages_delivered,
                r.messages_expected,
                r.lost
            )?;
        }
    }
    Ok(out)
}

/// The link's configured loss, up / down; not measured when the run did not record its link.
fn configured_loss(r: &RunResult) -> String {
    r.link.as_ref().map_or_else(
        || units::NOT_MEASURED.to_string(),
        |link| {
            let c = &link.configured.conditions;
            format!("{} / {}", percent(c.up.loss), percent(c.down.loss))
        },
    )
}

/// The link's configured rate down (or `none`) and the busiest second it carried.
fn rate_down(r: &RunResult) -> String {
    let Some(link) = r.link.as_ref() else {
        return units::NOT_MEASURED.to_string();
    };
    let bps = |v: f64| units::bits_per_second(v, Digits::Three);
    let limit = link.configured.conditions.down.rate_bps;
    let peak = link.throughput.as_ref().map(|t| t.down_peak_bps);
    format!(
        "{} / {}",
        limit.map_or_else(|| "none".to_string(), |b| bps(b as f64)),
        units::optional(peak, bps)
    )
}

/// A share (0..=1) as a percentage.
fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{}%", units::figure(share * 100.0, Digits::Three))
    } else {
        units::NOT_MEASURED.to_string()
    }
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
                reconnect_bytes,
                first,
                recovered,
                recovery,
                due,
                fate,
            ] = fault_cells(f);
            format!(
                "note: {} {what} at {at} (lasted {lasted}): {during} delivered during it, \
                 {refused} publishes refused, {reconnects} reconnects ({reconnect_bytes}), \
                 first delivery {first} \
                 after it, recovery p50/p99/max {recovery} over {recovered} clients; \
                 {due} due in it, of them during / after / lost: {fate}\n",
                r.transport
            )
        })
        .collect()
}

/// A fault's figures as text: kind (or why it was not carried out), start, length,
/// deliveries, refused publishes, reconnects and their bytes, first delivery, clients
/// recovered, recovery, the messages due in it and what became of them.
fn fault_cells(f: &FaultResult) -> [String; 12] {
    let ms = |v: Option<f64>| units::optional(v, units::duration_ms);
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
        units::optional(f.reconnect_bytes_after.map(|b| b as f64), |b| {
            units::grouped(b, "B")
        }),
        ms(f.first_delivery_after_ms),
        f.clients_recovered.to_string(),
        format!(
            "{} / {} / {}",
            ms(f.recovery_p50_ms),
            ms(f.recovery_p99_ms),
            ms(f.recovery_max_ms)
        ),
        f.due_messages
            .map_or_else(|| units::NOT_MEASURED.to_string(), |d| d.due.to_string()),
        f.due_messages.map_or_else(
            || units::NOT_MEASURED.to_string(),
            |d| {
                let duplicated = match d.duplicated {
                    0 => String::new(),
                    n => format!(" (+{n} duplicated)"),
                };
                format!(
                    "{} / {} / {}{duplicated}",
                    d.delivered_during, d.delivered_after, d.lost
                )
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkRecord;
    use crate::link::conditions::{Conditions, Direction};
    use crate::result::LinkResult;

    fn linked(transport: &str, profile: &str, rtt_ms: f64, loss: f64, p99_us: u64) -> RunResult {
        let way = Direction {
            loss,
            ..Direction::default()
        };
        RunResult {
            scenario: "mobile".into(),
            transport: transport.into(),
            link_profile: profile.into(),
            link_rtt_configured_ms: rtt_ms,
            link_rtt_measured_ms: rtt_ms + 1.0,
            link_retrans_ratio: loss + 0.011,
            link: Some(LinkResult {
                configured: LinkRecord {
                    conditions: Conditions {
                        profile: Some(profile.into()),
                        up: way,
                        down: way,
                    },
                    ..LinkRecord::default()
                },
                tcp: None,
                throughput: None,
            }),
            latency_p50_us: Some(p99_us / 2),
            latency_p99_us: Some(p99_us),
            latency_max_us: Some(p99_us * 2),
            messages_expected: 1_000,
            messages_delivered: 990,
            lost: 10,
            ..RunResult::not_measured()
        }
    }

    #[test]
    fn each_transport_reads_down_its_links_by_round_trip() {
        let mut faulted = linked("sse", "custom", 100.0, 0.0, 1_000);
        faulted.link_faults.push(FaultResult::default());
        let mut will = linked("mqtt(qos1,tcp,will)", "custom", 20.0, 0.0, 5_000_000);
        will.will_expected_within_us = Some(7_500_000);
        let mut threeg = linked("websocket", "3g", 400.0, 0.0, 420_000);
        if let Some(link) = threeg.link.as_mut() {
            link.configured.conditions.down.rate_bps = Some(400_000);
            link.throughput = Some(crate::link::throughput::Throughput {
                down_peak_bps: 398_700.0,
                ..Default::default()
            });
        }
        let results = [
            threeg,
            linked("http-poll(minimal)", "lossy-wifi", 10.0, 0.02, 1_200_000),
            linked("websocket", "lossy-wifi", 10.0, 0.02, 250_000),
            faulted,
            will,
            RunResult::not_measured(),
        ];
        let md = across_links_section(&results).unwrap();
        let websocket_wifi = md
            .find(
                "| mobile | websocket | lossy-wifi (10 ms RTT) | 2% / 2% | 11 ms | 3.10% | none / - \
                   | 125 ms / 250 ms / 500 ms | 990 of 1000 | 10 |",
            )
            .expect(&md);
        let websocket_3g = md
            .find(
                "| websocket | 3g (400 ms RTT) | 0% / 0% | 401 ms | 1.10% | 400 kbit/s / 399 kbit/s |",
            )
            .expect(&md);
        let poll = md.find("| http-poll(minimal) | lossy-wifi").expect(&md);
        assert!(websocket_wifi < websocket_3g && websocket_3g < poll, "{md}");
        assert!(
            !md.contains("| sse |"),
            "a faulted run belongs to ## Faults: {md}"
        );
        assert!(!md.contains("mqtt"), "wills are no stream's latency: {md}");
        assert_eq!(across_links_section(&results[3..]).unwrap(), "");
    }

    #[test]
    fn a_link_not_recorded_reads_as_not_measured() {
        let mut r = linked("websocket", "4g", 150.0, 0.0, 1_000);
        r.link = None;
        r.link_retrans_ratio = f64::NAN;
        r.latency_p99_us = None;
        let md = across_links_section(&[r]).unwrap();
        assert!(
            md.contains("| 4g (150 ms RTT) | - | 151 ms | - | - | 500 µs / - / 2 ms |"),
            "{md}"
        );
    }
}
