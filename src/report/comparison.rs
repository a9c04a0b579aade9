//! `comparison.md`: the measured figures beside the article's, row by row, with the reason for
//! each difference; then the summary table of the runs.

use std::fmt::Write;

use super::bytes::{ARTICLE_POLL_BYTES, ARTICLE_POLL_WIRE_BYTES, ARTICLE_WS_BYTES};
use super::charts::{self, duration_us, si};
use super::cost::cpu_us_per_message;
use super::use_cases::{ARTICLE_POLLING_BPS, ARTICLE_WEBSOCKET_BPS};
use crate::result::RunResult;

/// Clients of the article's use cases A, B and C.
const ARTICLE_CLIENTS: [u64; 3] = [1_000, 10_000, 100_000];
/// The article's own "Mbps" (bit/s ÷ 2^20), as it prints them: polling, then WebSocket.
const ARTICLE_POLLING_MBPS: [&str; 3] = ["6.6", "66", "665"];
const ARTICLE_WEBSOCKET_MBPS: [&str; 3] = ["0.015", "0.153", "1.526"];
/// The header profile that carries the article's own example request and response.
const ARTICLE_PROFILE: &str = "http-poll(websocket-org-2010)";

const PREAMBLE: &str = "# Measured vs the article

The article is websocket.org's \"HTML5 Web Sockets: A Quantum Leap in Scalability for the Web\"
(~2010): polling costs 871 bytes of overhead per message, WebSocket 2, at one message per second
per client. Bandwidth here is bit/s with SI prefixes (1 Mbit/s = 10^6 bit/s); the article's
\"Mbps\" divides by 2^20 (6,968,000 bit/s is its \"6.6 Mbps\"). Ratio = measured ÷ article.
";

/// One row: the article's figure beside a measured one.
struct Row {
    case: String,
    transport: String,
    figure: &'static str,
    article: String,
    measured: String,
    ratio: f64,
    reasons: Vec<String>,
}

pub fn render(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let mut out = String::from(PREAMBLE);
    let rows: Vec<Row> = charts::ordered(results)
        .into_iter()
        .flat_map(rows_of)
        .collect();
    out.push('\n');
    if rows.is_empty() {
        out.push_str(
            "No run is comparable with the article (it covers HTTP polling and WebSocket).\n",
        );
    } else {
        out.push_str(
            "| use case | transport | figure | article | measured | ratio | why they differ |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for row in &rows {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {} |",
                row.case,
                row.transport,
                row.figure,
                row.article,
                row.measured,
                row.ratio,
                row.reasons.join("; ")
            )?;
        }
    }
    out.push_str("\n## Runs\n\n");
    out.push_str(&runs_table(results)?);
    Ok(out.into_bytes())
}

/// The rows one run contributes: overhead per message, and bandwidth for use cases A–C.
fn rows_of(r: &RunResult) -> Vec<Row> {
    let Some(overhead) = overhead_row(r) else {
        return Vec::new();
    };
    let mut rows = vec![overhead];
    rows.extend(bandwidth_row(r));
    rows
}

fn case(r: &RunResult) -> String {
    charts::use_case(&r.scenario).map_or_else(|| r.scenario.clone(), |(_, l)| l.to_string())
}

fn overhead_row(r: &RunResult) -> Option<Row> {
    let measured = r.overhead_bytes_per_message;
    let (article, reasons) = match r.transport_kind.as_str() {
        "http-poll" => (ARTICLE_POLL_BYTES, poll_overhead_reasons(r)),
        "websocket" => (ARTICLE_WS_BYTES, websocket_overhead_reasons(r)),
        _ => return None,
    };
    Some(Row {
        case: case(r),
        transport: r.transport.clone(),
        figure: "overhead B/message",
        article: format!("{article:.0} B"),
        measured: format!("{measured:.2} B"),
        ratio: measured / article,
        reasons,
    })
}

fn poll_overhead_reasons(r: &RunResult) -> Vec<String> {
    let mut reasons = Vec::new();
    if r.transport == ARTICLE_PROFILE {
        reasons.push(
            "871 counts characters without line ends; the wire carries 909 (716 + 193)".into(),
        );
        let extra = r.overhead_bytes_per_message - ARTICLE_POLL_WIRE_BYTES;
        if extra > 0.005 {
            reasons.push(format!(
                "polls that found nothing new (304) add {extra:.2} B per message"
            ));
        }
    } else {
        reasons.push("other headers than the article's example request and response".into());
    }
    reasons
}

fn websocket_overhead_reasons(r: &RunResult) -> Vec<String> {
    let extra = r.overhead_bytes_per_message - ARTICLE_WS_BYTES;
    if extra.abs() <= 0.005 {
        vec!["same: one 2-byte frame header per message (RFC 6455 §5.2)".into()]
    } else {
        vec![format!(
            "{extra:+.2} B beyond the 2-byte frame header: larger frames (> 125 B payload) or control frames"
        )]
    }
}

fn bandwidth_row(r: &RunResult) -> Option<Row> {
    let (index, letter) = charts::use_case(&r.scenario)?;
    let (article, mbps, per_message) = match r.transport_kind.as_str() {
        "http-poll" => (
            ARTICLE_POLLING_BPS[index],
            ARTICLE_POLLING_MBPS[index],
            ARTICLE_POLL_BYTES,
        ),
        "websocket" => (
            ARTICLE_WEBSOCKET_BPS[index],
            ARTICLE_WEBSOCKET_MBPS[index],
            ARTICLE_WS_BYTES,
        ),
        _ => return None,
    };
    let (measured, label) = match r.projected_bandwidth_bps {
        Some(bps) => (bps, " (projected)"),
        None => (r.bandwidth_bps, ""),
    };
    let mut reasons = vec![format!(
        "the article counts only the {per_message:.0} B of overhead, not the {} B payload",
        r.payload_bytes
    )];
    if r.transport_kind == "http-poll" && r.transport == ARTICLE_PROFILE {
        reasons.push("its 871 B leave out the line ends (909 B on the wire)".into());
    }
    reasons.push(format!(
        "{:.2} B measured ÷ {per_message:.0} B counted = {:.2}",
        r.bytes_per_message,
        r.bytes_per_message / per_message
    ));
    if r.clients != ARTICLE_CLIENTS[index] {
        reasons.push(format!(
            "measured with {} clients, use case {letter} has {}",
            r.clients, ARTICLE_CLIENTS[index]
        ));
    }
    if r.projected_bandwidth_bps.is_some() {
        reasons.push("projected: measured bytes per message at the use case's rate of one message per second".into());
    }
    Some(Row {
        case: case(r),
        transport: r.transport.clone(),
        figure: "bandwidth",
        article: format!("{} bit/s (\"{mbps} Mbps\")", grouped(article)),
        measured: format!("{} bit/s{label}", grouped(measured)),
        ratio: measured / article,
        reasons,
    })
}

/// An integer with thousands separators: 6968000 → "6,968,000".
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

fn optional(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "—".to_string(), format)
}

/// The summary table: one row per run.
fn runs_table(results: &[RunResult]) -> anyhow::Result<String> {
    let mut out = String::from(
        "| scenario | transport | clients | delivered | B/msg | overhead B/msg | IP B/msg | bandwidth | projected | p50 | p99 | max | fleet CPU/msg | target CPU/msg |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in charts::ordered(results) {
        let (fleet_cpu, target_cpu) = cpu_us_per_message(r);
        writeln!(
            out,
            "| {} | {} | {} | {}/{} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.transport,
            r.clients,
            r.messages_delivered,
            r.messages_expected,
            r.bytes_per_message,
            r.overhead_bytes_per_message,
            r.ip_bytes_per_message,
            si(r.bandwidth_bps, "bit/s"),
            optional(r.projected_bandwidth_bps, |v| si(v, "bit/s")),
            duration_us(r.latency_p50_us.map_or(f64::NAN, |v| v as f64)),
            duration_us(r.latency_p99_us.map_or(f64::NAN, |v| v as f64)),
            duration_us(r.latency_max_us.map_or(f64::NAN, |v| v as f64)),
            optional(fleet_cpu, duration_us),
            optional(target_cpu, duration_us),
        )?;
    }
    out.push_str("\nB = TCP payload bytes, both directions; IP adds IP and TCP headers; latency = receive time − intended publish time; — = not measured.\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_in_the_article() {
        assert_eq!(grouped(6_968_000.0), "6,968,000");
        assert_eq!(grouped(160.0), "160");
    }
}
