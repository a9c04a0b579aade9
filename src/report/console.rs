//! The comparison table printed at the end of a run.

use crate::result::RunResult;
use crate::thresholds::Outcome;

const HEADERS: [&str; 13] = [
    "transport",
    "clients",
    "delivered",
    "lost",
    "dup",
    "B/msg",
    "overhead B",
    "IP B/msg",
    "setup B/client",
    "bandwidth",
    "p50",
    "p99",
    "max",
];

/// A plain-text table, one row per run, columns aligned; notes follow for incomplete runs
/// and connect failures.
pub fn table(results: &[RunResult]) -> String {
    let rows: Vec<[String; 13]> = results.iter().map(row).collect();
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
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
        if !r.fault.is_empty() {
            out.push_str(&format!("note: {} FAULT: {}\n", r.transport, r.fault));
        }
        if r.saturated {
            out.push_str(&format!(
                "note: {} SATURATED: it could not hold the requested rate (publisher {:.2}/s of {:.2}/s, median latency {}); its figures describe the slower run it was\n",
                r.transport,
                r.publish_rate_achieved_per_s,
                r.publish_rate_requested_per_s,
                latency(r.latency_p50_us)
            ));
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
                micros(bound)
            ));
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

fn row(r: &RunResult) -> [String; 13] {
    let flags = match (r.saturated, r.projected_bandwidth_bps.is_some()) {
        (true, true) => " [saturated, rate-scaled]",
        (true, false) => " [saturated]",
        (false, true) => " [rate-scaled]",
        (false, false) => "",
    };
    [
        format!("{}{flags}", r.transport),
        r.clients.to_string(),
        format!("{}/{}", r.messages_delivered, r.messages_expected),
        r.lost.to_string(),
        r.duplicated.to_string(),
        number(r.bytes_per_message, 2),
        number(r.overhead_bytes_per_message, 2),
        number(r.ip_bytes_per_message, 2),
        number(r.setup_bytes_per_client, 1),
        bits_per_second(r.bandwidth_bps),
        latency(r.latency_p50_us),
        latency(r.latency_p99_us),
        latency(r.latency_max_us),
    ]
}

/// A figure with `decimals` places, or "-" where nothing was measured.
fn number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "-".to_string()
    }
}

/// Bits per second with SI prefixes (10^3, not 2^10).
pub fn bits_per_second(bps: f64) -> String {
    if !bps.is_finite() {
        return "-".to_string();
    }
    let (value, unit) = match bps {
        b if b >= 1e9 => (b / 1e9, "Gbit/s"),
        b if b >= 1e6 => (b / 1e6, "Mbit/s"),
        b if b >= 1e3 => (b / 1e3, "kbit/s"),
        b => (b, "bit/s"),
    };
    format!("{value:.2} {unit}")
}

/// A latency in µs, shown in the unit that keeps it readable.
pub fn micros(us: u64) -> String {
    match us {
        u if u >= 1_000_000 => format!("{:.2} s", u as f64 / 1e6),
        u if u >= 1_000 => format!("{:.2} ms", u as f64 / 1e3),
        u => format!("{u} µs"),
    }
}

/// A latency figure, or "-" where nothing was measured.
pub fn latency(us: Option<u64>) -> String {
    us.map_or_else(|| "-".to_string(), micros)
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
    fn units_read_naturally() {
        assert_eq!(bits_per_second(6_968_000.0), "6.97 Mbit/s");
        assert_eq!(bits_per_second(16_000.0), "16.00 kbit/s");
        assert_eq!(micros(1_500), "1.50 ms");
        assert_eq!(micros(999), "999 µs");
    }
}
