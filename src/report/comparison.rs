//! `comparison.md`: the measured figures beside the article's, row by row, with the reason for
//! each difference; then the summary table of the runs.

use std::fmt::Write;

use super::article::{self, POLL_BYTES, POLL_WIRE_BYTES, WEBSOCKET_BYTES};
use super::charts;
use super::claims;
use super::cost::cpu_us_per_message;
use super::units::{self, Digits, NOT_MEASURED};
use crate::result::RunResult;

/// What the table compares, and the article's unit against the one used here.
fn preamble() -> String {
    let case_a = &article::USE_CASES[0];
    format!(
        "# Measured vs the article

The article is websocket.org's \"HTML5 Web Sockets: A Quantum Leap in Scalability for the Web\"
(~2010): polling costs {POLL_BYTES} bytes of overhead per message, WebSocket {WEBSOCKET_BYTES}, at one message per second
per client. Bandwidth here is bit/s with SI prefixes (1 Mbit/s = 10^6 bit/s); the article's
\"Mbps\" divides by 2^20 ({} is its \"{} Mbps\"). Ratio = measured ÷ article.
",
        units::grouped(case_a.polling.bps, "bit/s"),
        case_a.polling.mbps
    )
}

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
    let mut out = preamble();
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
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.case,
                row.transport,
                row.figure,
                row.article,
                row.measured,
                units::figure(row.ratio, Digits::Fixed(2)),
                row.reasons.join("; ")
            )?;
        }
    }
    out.push_str(&claims::section(results)?);
    out.push_str(&super::link::faults_section(results)?);
    out.push_str(&super::link::across_links_section(results)?);
    out.push_str(&tls_costs(results)?);
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
    rows.extend(header_row(r));
    rows.extend(bandwidth_row(r));
    rows
}

/// The article's 871 header bytes beside the headers measured per poll, for its own header
/// profile: 909 over HTTP/1.1 (the line ends), fewer over HTTP/2 (HPACK).
fn header_row(r: &RunResult) -> Option<Row> {
    let h2 = r.transport == article::PROFILE_LABEL_H2;
    if !(h2 || r.transport == article::PROFILE_LABEL) {
        return None;
    }
    let measured = r.request_header_bytes_per_exchange + r.response_header_bytes_per_exchange;
    if !measured.is_finite() {
        return None;
    }
    let reason = if h2 {
        format!(
            "HTTP/2: {} request + {} response, frame headers included; HPACK indexes what \
             repeats, so the {} B of HTTP/1.1 shrink to what changes or is never indexed",
            units::bytes(r.request_header_bytes_per_exchange, Digits::Fixed(2)),
            units::bytes(r.response_header_bytes_per_exchange, Digits::Fixed(2)),
            POLL_WIRE_BYTES
        )
    } else {
        format!(
            "HTTP/1.1: the same headers with their CRLF line ends and blank lines, {} + {}",
            article::POLL_REQUEST_WIRE_BYTES,
            article::POLL_RESPONSE_WIRE_BYTES
        )
    };
    Some(Row {
        case: case(r),
        transport: r.transport.clone(),
        figure: "header B/poll",
        article: units::bytes(POLL_BYTES, Digits::Fixed(0)),
        measured: units::bytes(measured, Digits::Fixed(2)),
        ratio: measured / POLL_BYTES,
        reasons: vec![reason],
    })
}

/// The article's letter of a run's use case, or its scenario's name.
fn case(r: &RunResult) -> String {
    article::use_case(&r.scenario).map_or_else(|| r.scenario.clone(), |u| u.letter.to_string())
}

fn overhead_row(r: &RunResult) -> Option<Row> {
    let measured = r.overhead_bytes_per_message;
    let (article, reasons) = match r.transport_kind.as_str() {
        "http-poll" => (POLL_BYTES, poll_overhead_reasons(r)),
        "websocket" => (WEBSOCKET_BYTES, websocket_overhead_reasons(r)),
        _ => return None,
    };
    let reasons = if measured.is_finite() {
        reasons.into_iter().chain(tls_reason(r)).collect()
    } else {
        vec!["no message delivered: no overhead per message to compare".into()]
    };
    Some(Row {
        case: case(r),
        transport: r.transport.clone(),
        figure: "overhead B/message",
        article: units::bytes(article, Digits::Fixed(0)),
        measured: units::bytes(measured, Digits::Fixed(2)),
        ratio: measured / article,
        reasons,
    })
}

fn poll_overhead_reasons(r: &RunResult) -> Vec<String> {
    let mut reasons = Vec::new();
    if r.transport == article::PROFILE_LABEL_H2 {
        reasons.push(format!(
            "the article's own headers over HTTP/2: {} + {} of headers a poll (HEADERS frames \
             included) instead of {} + {}, since HPACK sends a header the connection has seen \
             as a table index; what is sent again every poll is what is never indexed or \
             changes: Cookie, :path, If-None-Match/Etag, and Date once a second",
            units::bytes(r.request_header_bytes_per_exchange, Digits::Fixed(2)),
            units::bytes(r.response_header_bytes_per_exchange, Digits::Fixed(2)),
            article::POLL_REQUEST_WIRE_BYTES,
            article::POLL_RESPONSE_WIRE_BYTES
        ));
    } else if r.transport == article::PROFILE_LABEL {
        reasons.push(format!(
            "{POLL_BYTES} counts characters without line ends; the wire carries {POLL_WIRE_BYTES} ({} + {})",
            article::POLL_REQUEST_WIRE_BYTES,
            article::POLL_RESPONSE_WIRE_BYTES
        ));
        let extra = r.overhead_bytes_per_message - POLL_WIRE_BYTES;
        if extra > 0.005 {
            reasons.push(format!(
                "polls that found nothing new (304) add {} per message",
                units::bytes(extra, Digits::Fixed(2))
            ));
        }
    } else {
        reasons.push("other headers than the article's example request and response".into());
    }
    reasons
}

/// What TLS adds to a run's overhead: its records, each with a 5-byte header, and in TLS 1.3
/// a 1-byte inner content type and a 16-byte AEAD tag (RFC 8446 §5.2).
fn tls_reason(r: &RunResult) -> Option<String> {
    let tls = tls_bytes(r);
    (tls > 0.0).then(|| {
        let records = if r.tls_records_per_message.is_finite() {
            format!(" in {:.2} records", r.tls_records_per_message)
        } else {
            String::new()
        };
        format!(
            "TLS {} adds {} per message{records} (TLS 1.3: 5-byte record header + 1 inner \
             content type + 16 AEAD tag = 22 B a record, RFC 8446 §5.2; TLS 1.2 AES-GCM: 5 + \
             8-byte explicit nonce + 16 = 29 B)",
            r.tls,
            units::bytes(tls, Digits::Fixed(2))
        )
    })
}

/// The TLS share of a run's overhead per message; 0 without TLS.
fn tls_bytes(r: &RunResult) -> f64 {
    if r.tls_overhead_bytes_per_message.is_finite() {
        r.tls_overhead_bytes_per_message
    } else {
        0.0
    }
}

fn websocket_overhead_reasons(r: &RunResult) -> Vec<String> {
    let extra = r.overhead_bytes_per_message - WEBSOCKET_BYTES - tls_bytes(r);
    if extra.abs() <= 0.005 {
        vec![format!(
            "same: one {WEBSOCKET_BYTES}-byte frame header per message (RFC 6455 §5.2)"
        )]
    } else {
        vec![format!(
            "{extra:+.2} B beyond the {WEBSOCKET_BYTES}-byte frame header: larger frames (> 125 B payload) or control frames"
        )]
    }
}

fn bandwidth_row(r: &RunResult) -> Option<Row> {
    let case = article::use_case(&r.scenario)?;
    let (article, per_message) = match r.transport_kind.as_str() {
        "http-poll" => (case.polling, POLL_BYTES),
        "websocket" => (case.websocket, WEBSOCKET_BYTES),
        _ => return None,
    };
    let (measured, label) = match r.projected_bandwidth_bps {
        Some(bps) => (bps, " (projected)"),
        None => (r.bandwidth_bps, ""),
    };
    let mut reasons = vec![format!(
        "the article counts only the {per_message} B of overhead, not the {} B payload",
        r.payload_bytes
    )];
    if r.transport_kind == "http-poll" && r.transport == article::PROFILE_LABEL {
        reasons.push(format!(
            "its {POLL_BYTES} B leave out the line ends ({POLL_WIRE_BYTES} B on the wire)"
        ));
    }
    if r.bytes_per_message.is_finite() {
        reasons.push(format!(
            "{} measured ÷ {per_message} B counted = {}",
            units::bytes(r.bytes_per_message, Digits::Fixed(2)),
            units::figure(r.bytes_per_message / per_message, Digits::Fixed(2))
        ));
    }
    if r.clients != case.clients {
        reasons.push(format!(
            "measured with {} clients, use case {} has {}",
            r.clients, case.letter, case.clients
        ));
    }
    if r.projected_bandwidth_bps.is_some() {
        reasons.push("projected: measured bytes per message at the use case's rate of one message per second".into());
    }
    Some(Row {
        case: case.letter.to_string(),
        transport: r.transport.clone(),
        figure: "bandwidth",
        article: format!(
            "{} (\"{} Mbps\")",
            units::grouped(article.bps, "bit/s"),
            article.mbps
        ),
        measured: format!("{}{label}", units::grouped(measured, "bit/s")),
        ratio: measured / article.bps,
        reasons,
    })
}

/// "What TLS costs": each TLS run beside the cleartext run of the same transport, target,
/// clients and payload, figure by figure as cleartext → TLS (difference). Empty when no TLS
/// run has such a twin.
fn tls_costs(results: &[RunResult]) -> anyhow::Result<String> {
    let runs = charts::ordered(results);
    let pairs: Vec<(&RunResult, &RunResult)> = runs
        .iter()
        .filter(|r| !r.tls.is_empty())
        .filter_map(|tls| {
            let (clear_label, _) = tls.transport.split_once("+tls")?;
            runs.iter()
                .find(|c| {
                    c.tls.is_empty()
                        && c.transport == clear_label
                        && c.target_name == tls.target_name
                        && (c.clients, c.payload_bytes) == (tls.clients, tls.payload_bytes)
                })
                .map(|clear| (*clear, *tls))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from(
        "\n## What TLS costs\n\n\
         Each TLS run beside the cleartext run of the same transport, target, clients and \
         payload: cleartext → TLS (difference). Setup bytes hold the handshake, certificate \
         included. Connects/s and CPU per connect are measured over the connect phase (the \
         ramp: connections made ÷ its seconds, at most the scenario's connect rate; CPU \
         seconds of the fleet, and of the target where its CPU is measured, ÷ connections \
         made). RSS: what the clients added to the fleet's peak ÷ clients, and the target's \
         growth ÷ connections.\n\n\
         | transport | overhead B/msg | setup B/client | connects/s | fleet CPU/connect | \
         target CPU/connect | fleet RSS/client | target RSS/connection |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let bytes = |b: f64| units::figure(b, Digits::Fixed(2));
    let whole = |b: f64| units::figure(b, Digits::Fixed(0));
    let rate = |r: f64| units::figure(r, Digits::Three);
    let cpu = |us: f64| units::duration_us(us, Digits::Three);
    let rss = |b: f64| units::si(b, "B", Digits::Three);
    let some = |v: Option<f64>| v.unwrap_or(f64::NAN);
    for (clear, tls) in pairs {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            tls.transport,
            beside(
                clear.overhead_bytes_per_message,
                tls.overhead_bytes_per_message,
                bytes
            ),
            beside(
                clear.setup_bytes_per_client,
                tls.setup_bytes_per_client,
                whole
            ),
            beside(clear.connects_per_s, tls.connects_per_s, rate),
            beside(
                some(clear.fleet_connect_cpu_us_per_connection),
                some(tls.fleet_connect_cpu_us_per_connection),
                cpu
            ),
            beside(
                some(clear.target_connect_cpu_us_per_connection),
                some(tls.target_connect_cpu_us_per_connection),
                cpu
            ),
            beside(
                clear.fleet_rss_bytes_per_client,
                tls.fleet_rss_bytes_per_client,
                rss
            ),
            beside(
                clear.target_rss_bytes_per_connection,
                tls.target_rss_bytes_per_connection,
                rss
            ),
        )?;
    }
    Ok(out)
}

/// `clear → tls (+difference)`, the difference only where both were measured.
fn beside(clear: f64, tls: f64, show: impl Fn(f64) -> String) -> String {
    let difference = tls - clear;
    if !difference.is_finite() {
        return format!("{} → {}", show(clear), show(tls));
    }
    let sign = if difference < 0.0 { "−" } else { "+" };
    format!(
        "{} → {} ({sign}{})",
        show(clear),
        show(tls),
        show(difference.abs())
    )
}

/// The summary table: one row per run.
fn runs_table(results: &[RunResult]) -> anyhow::Result<String> {
    let mut out = String::from(
        "| scenario | transport | clients | delivered | B/msg | overhead B/msg | IP B/msg | bandwidth | projected | p50 | p99 | max | fleet CPU/msg | target CPU/msg |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let bytes = |b: f64| units::figure(b, Digits::Fixed(2));
    let bps = |bps: f64| units::bits_per_second(bps, Digits::Three);
    let cpu = |us: Option<f64>| units::optional(us, |us| units::duration_us(us, Digits::Three));
    let latency = |us: Option<u64>| units::latency(us, Digits::Three);
    for r in charts::ordered(results) {
        let (fleet_cpu, target_cpu) = cpu_us_per_message(r);
        writeln!(
            out,
            "| {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.transport,
            r.clients,
            r.messages_delivered,
            r.messages_expected,
            bytes(r.bytes_per_message),
            bytes(r.overhead_bytes_per_message),
            bytes(r.ip_bytes_per_message),
            bps(r.bandwidth_bps),
            units::optional(r.projected_bandwidth_bps, bps),
            latency(r.latency_p50_us),
            latency(r.latency_p99_us),
            latency(r.latency_max_us),
            cpu(fleet_cpu),
            cpu(target_cpu),
        )?;
    }
    writeln!(
        out,
        "\nB = TCP payload bytes, both directions; IP adds IP and TCP headers; latency = receive time − intended publish time; {NOT_MEASURED} = not measured."
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_articles_headers_are_followed_from_871_to_http2() {
        let h2 = RunResult {
            scenario: "use-case-a".into(),
            transport: article::PROFILE_LABEL_H2.into(),
            transport_kind: "http-poll".into(),
            overhead_bytes_per_message: 291.0,
            request_header_bytes_per_exchange: 240.0,
            response_header_bytes_per_exchange: 42.0,
            ..RunResult::default()
        };
        let md = String::from_utf8(render(&[h2]).unwrap()).unwrap();
        assert!(
            md.contains(
                "| A | http-poll(websocket-org-2010,h2) | header B/poll | 871 B | 282.00 B | 0.32 |"
            ),
            "{md}"
        );
        assert!(md.contains("the article's own headers over HTTP/2"), "{md}");
    }

    #[test]
    fn a_run_that_delivered_nothing_reads_as_not_measured() {
        let silent = RunResult {
            scenario: "use-case-a".into(),
            transport: "websocket".into(),
            transport_kind: "websocket".into(),
            clients: 1_000,
            messages_expected: 30_000,
            bytes_per_message: f64::NAN,
            overhead_bytes_per_message: f64::NAN,
            ip_bytes_per_message: f64::NAN,
            bandwidth_bps: 0.0,
            ..RunResult::default()
        };
        let md = String::from_utf8(render(&[silent]).unwrap()).unwrap();
        assert!(!md.contains("NaN") && !md.contains("- measured"), "{md}");
        assert!(
            md.contains(
                "| A | websocket | overhead B/message | 2 B | - | - | no message delivered"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 0/30000 | - | - | - | 0 bit/s | - | - | - | - | - | - |"),
            "{md}"
        );
    }

    /// A cleartext run and its TLS twin: one row, each figure as both and their difference;
    /// a TLS run without a twin (another payload) and a figure not measured add nothing.
    #[test]
    fn what_tls_costs_sets_each_tls_run_beside_its_cleartext_twin() {
        let clear = RunResult {
            scenario: "side-by-side".into(),
            transport: "websocket".into(),
            transport_kind: "websocket".into(),
            target_name: "embedded".into(),
            clients: 1_000,
            payload_bytes: 16,
            overhead_bytes_per_message: 2.0,
            setup_bytes_per_client: 260.0,
            connects_per_s: 2_000.0,
            fleet_connect_cpu_us_per_connection: Some(40.0),
            target_connect_cpu_us_per_connection: Some(25.0),
            fleet_rss_bytes_per_client: 12_000.0,
            target_rss_bytes_per_connection: 9_000.0,
            ..RunResult::not_measured()
        };
        let tls = RunResult {
            transport: "websocket+tls".into(),
            tls: "1.3".into(),
            overhead_bytes_per_message: 24.0,
            setup_bytes_per_client: 1_750.0,
            connects_per_s: 1_500.0,
            fleet_connect_cpu_us_per_connection: Some(640.0),
            target_connect_cpu_us_per_connection: None,
            fleet_rss_bytes_per_client: 47_500.0,
            target_rss_bytes_per_connection: 30_000.0,
            ..clear.clone()
        };
        let other_payload = RunResult {
            transport: "websocket+tls1.2".into(),
            payload_bytes: 200,
            ..tls.clone()
        };
        let md = String::from_utf8(render(&[clear.clone(), tls, other_payload]).unwrap()).unwrap();
        assert!(md.contains("## What TLS costs"), "{md}");
        let row = "| websocket+tls | 2.00 → 24.00 (+22.00) | 260 → 1750 (+1490) | \
                   2000 → 1500 (−500) | 40 µs → 640 µs (+600 µs) | 25 µs → - | \
                   12 kB → 47.5 kB (+35.5 kB) | 9 kB → 30 kB (+21 kB) |";
        assert!(md.contains(row), "{md}");
        assert!(!md.contains("| websocket+tls1.2 | 2.00"), "{md}");
        let alone = String::from_utf8(render(&[clear]).unwrap()).unwrap();
        assert!(!alone.contains("What TLS costs"), "{alone}");
    }
}
