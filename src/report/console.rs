//! The comparison table printed at the end of a run.

use super::charts;
use super::units::{self, Digits};
use crate::result::RunResult;
use crate::thresholds::Outcome;

const HEADERS: [&str; 14] = [
    "transport",
    "clients",
    "delivered",
    "lost",
    "dup",
    "B/msg",
    "overhead B",
    "IP B/msg",
    "setup B/client",
    "connects/s",
    "bandwidth",
    "p50",
    "p99",
    "max",
];

/// A plain-text table, one row per run, columns aligned; notes follow for incomplete runs
/// and connect failures.
pub fn table(results: &[RunResult]) -> String {
    let rows: Vec<[String; 14]> = results
        .iter()
        .map(|r| row(r, &charts::series(results, r)))
        .collect();
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([HEADERS[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&HEADERS.map(String::from));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    for r in results {
        out.push_str(&super::link::console_notes(r));
        if !r.fault.is_empty() {
            out.push_str(&format!("note: {} FAULT: {}\n", r.transport, r.fault));
        }
        if r.saturated {
            out.push_str(&format!(
                "note: {} SATURATED: it could not hold the requested rate (publisher {}/s of {}/s, median latency {}); its figures describe the slower run it was\n",
                r.transport,
                units::figure(r.publish_rate_achieved_per_s, Digits::Fixed(2)),
                units::figure(r.publish_rate_requested_per_s, Digits::Fixed(2)),
                latency(r.latency_p50_us)
            ));
            if r.fleet_saturated {
                out.push_str(&format!(
                    "note: {} the FLEET was the limit: it kept {} of {} cores busy, at least as many as the target; split it over machines or give it more cores\n",
                    r.transport,
                    units::figure(r.fleet_cpu_cores, Digits::Fixed(2)),
                    r.machine_cores
                ));
            }
        }
        if let Some(projected) = r.projected_bandwidth_bps {
            out.push_str(&format!(
                "note: {} is rate-scaled: {} PROJECTED to the use case's rate from the measured bytes per message (measured {})\n",
                r.transport,
                bits_per_second(projected),
                bits_per_second(r.bandwidth_bps)
            ));
        }
        if !r.complete {
            out.push_str(&format!(
                "note: {} was interrupted; its figures cover only what it saw\n",
                r.transport
            ));
        }
        if let Some(bound) = r.will_expected_within_us {
            out.push_str(&format!(
                "note: {}: latency is will arrival after the cut; the broker must publish within {} of a silent client's last packet\n",
                r.transport,
                units::duration_us(bound as f64, Digits::Fixed(2))
            ));
        }
        if r.latency_clock_uncertain {
            out.push_str(&format!(
                "note: {}: its {} shards' clocks are known only within {}: latencies marked ~ are no more exact than that\n",
                r.transport,
                r.shards,
                units::duration_us(r.clock_uncertainty_us, Digits::Fixed(2))
            ));
        }
        if !r.tls.is_empty() {
            out.push_str(&tls_note(r));
        }
        if r.connect_failures > 0 || r.reconnects > 0 {
            out.push_str(&format!(
                "note: {}: {} connect failures, {} reconnects\n",
                r.transport, r.connect_failures, r.reconnects
            ));
        }
    }
    out.push_str("B = TCP payload bytes, both directions; IP adds IP/TCP headers; latency = receive time - intended publish time\n");
    out
}

/// What TLS cost a run: per message, per handshake, per connect.
fn tls_note(r: &RunResult) -> String {
    let cpu = |us: Option<f64>| units::optional(us, |us| units::duration_us(us, Digits::Fixed(2)));
    format!(
        "note: {}: TLS {} adds {} B per message in {} records, {} B of handshake per client; connect phase {}/s, CPU per connect {} fleet, {} target\n",
        r.transport,
        r.tls,
        units::figure(r.tls_overhead_bytes_per_message, Digits::Fixed(2)),
        units::figure(r.tls_records_per_message, Digits::Fixed(2)),
        units::figure(r.tls_setup_bytes_per_client, Digits::Fixed(0)),
        units::figure(r.connects_per_s, Digits::Fixed(1)),
        cpu(r.fleet_connect_cpu_us_per_connection),
        cpu(r.target_connect_cpu_us_per_connection),
    )
}

fn row(r: &RunResult, name: &str) -> [String; 14] {
    let flags = match (r.saturated, r.projected_bandwidth_bps.is_some()) {
        (true, true) if r.fleet_saturated => " [fleet-saturated, rate-scaled]",
        (true, false) if r.fleet_saturated => " [fleet-saturated]",
        (true, true) => " [saturated, rate-scaled]",
        (true, false) => " [saturated]",
        (false, true) => " [rate-scaled]",
        (false, false) => "",
    };
    [
        format!("{name}{flags}"),
        r.clients.to_string(),
        format!("{}/{}", r.messages_delivered, r.messages_expected),
        r.lost.to_string(),
        r.duplicated.to_string(),
        units::figure(r.bytes_per_message, Digits::Fixed(2)),
        units::figure(r.overhead_bytes_per_message, Digits::Fixed(2)),
        units::figure(r.ip_bytes_per_message, Digits::Fixed(2)),
        units::figure(r.setup_bytes_per_client, Digits::Fixed(1)),
        units::figure(r.connects_per_s, Digits::Fixed(1)),
        bits_per_second(r.bandwidth_bps),
        marked(r, r.latency_p50_us),
        marked(r, r.latency_p99_us),
        marked(r, r.latency_max_us),
    ]
}

/// A latency cell, marked `~` when the shards' clock offsets are too uncertain for it.
fn marked(r: &RunResult, us: Option<u64>) -> String {
    let mark = if r.latency_clock_uncertain { "~" } else { "" };
    format!("{mark}{}", latency(us))
}

/// Bandwidth with two decimals, so the column lines up.
fn bits_per_second(bps: f64) -> String {
    units::bits_per_second(bps, Digits::Fixed(2))
}

/// A latency figure with two decimals, or "-" where nothing was delivered.
pub fn latency(us: Option<u64>) -> String {
    units::latency(us, Digits::Fixed(2))
}

/// One line per outcome, broken ones marked, then a count: for the console after a run.
pub fn thresholds(outcomes: &[Outcome]) -> String {
    let broken = outcomes.iter().filter(|o| !o.held).count();
    let mut out = String::new();
    for o in outcomes {
        let measured = o
            .measured
            .map_or_else(|| "not measured".to_string(), |m| format!("measured {m}"));
        let mark = if o.held { "ok    " } else { "BROKEN" };
        out.push_str(&format!(
            "{mark} {}: {} ({measured})\n",
            o.transport, o.expression
        ));
    }
    out.push_str(&format!(
        "thresholds: {} held, {broken} broken\n",
        outcomes.len() - broken
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_of_uncertain_clocks_are_marked() {
        let mut r = RunResult {
            transport: "websocket".into(),
            latency_p50_us: Some(1500),
            shards: 3,
            clock_uncertainty_us: 2500.0,
            ..RunResult::not_measured()
        };
        assert!(!table(std::slice::from_ref(&r)).contains('~'));
        r.latency_clock_uncertain = true;
        let text = table(&[r]);
        assert!(text.contains("~1.50 ms"), "{text}");
        assert!(
            text.contains("3 shards' clocks are known only within 2.50 ms"),
            "{text}"
        );
    }
}
