//! The seed write-up's claims about MQTT and Comet, each beside what the runs measured and
//! why: a section of `comparison.md`. A claim none of the runs can speak to is left out.

use std::fmt::Write;

use super::charts;
use super::cost::cpu_us_per_message;
use super::units::{self, Digits};
use crate::result::{FaultResult, RunResult};

/// One claim, what was measured, and the reason.
struct Claim {
    claim: &'static str,
    measured: String,
    why: String,
}

/// The section, or nothing when no run bears on any claim.
pub fn section(results: &[RunResult]) -> anyhow::Result<String> {
    let claims: Vec<Claim> = [
        mqtt_overhead(results),
        comet_cost(results),
        mqtt_under_faults(results),
        last_will(results),
    ]
    .into_iter()
    .flatten()
    .collect();
    if claims.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from(
        "\n## The seed's claims\n\nThe seed write-up (\"MQTT和WebSocket 对比\") adds claims of its own \
         about MQTT and Comet; here each is set beside what these runs measured.\n\n\
         | claim | measured | why |\n|---|---|---|\n",
    );
    for c in claims {
        writeln!(out, "| {} | {} | {} |", c.claim, c.measured, c.why)?;
    }
    Ok(out)
}

/// "The smallest MQTT message is 2 bytes; the fixed header is 2 bytes."
fn mqtt_overhead(results: &[RunResult]) -> Option<Claim> {
    let mqtt: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.transport_kind == "mqtt" && r.overhead_bytes_per_message.is_finite())
        .collect();
    if mqtt.is_empty() {
        return None;
    }
    let measured = mqtt
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r.transport,
                units::bytes(r.overhead_bytes_per_message, Digits::Fixed(2))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(Claim {
        claim: "the smallest MQTT message is 2 bytes, its fixed header 2 bytes",
        measured: format!("overhead per delivered message: {measured}"),
        why: "2 bytes is a PINGREQ or PINGRESP (no topic, no payload); a message is a PUBLISH: \
              fixed header 1 + remaining length 1–4 + topic length 2 + the topic itself, \
              + a packet id 2 and a PUBACK 4 at QoS 1, or a packet id 2 and PUBREC + PUBREL + \
              PUBCOMP 12 at QoS 2 (MQTT 3.1.1 §2.2, §3.3–3.7); MQTT 5 adds a property length; \
              over WebSocket each frame adds 2 B from the broker"
            .to_string(),
    })
}

/// "Comet (long polling) costs the server more than a persistent connection."
fn comet_cost(results: &[RunResult]) -> Option<Claim> {
    let server = |kind: &str| {
        results.iter().find_map(|r| {
            let cpu = cpu_us_per_message(r).1?;
            (r.transport_kind == kind).then(|| {
                format!(
                    "{} {} CPU/message, {} RSS/connection",
                    r.transport,
                    units::duration_us(cpu, Digits::Three),
                    units::bytes(r.target_rss_bytes_per_connection, Digits::Fixed(0))
                )
            })
        })
    };
    let longpoll = server("http-longpoll")?;
    let others: Vec<String> = ["websocket", "sse", "mqtt"]
        .into_iter()
        .filter_map(server)
        .collect();
    if others.is_empty() {
        return None;
    }
    Some(Claim {
        claim: "Comet (long polling) costs the server more than a persistent connection",
        measured: format!("server: {longpoll}; {}", others.join("; ")),
        why: "a long poll is a whole HTTP request per message: the server parses it, routes it, \
              holds it, then writes a response head and re-registers the next one; a WebSocket, \
              SSE or MQTT server writes one frame on a connection it already holds"
            .to_string(),
    })
}

/// "MQTT's QoS levels make it fit for unreliable networks", from MQTT runs through a blackhole
/// or a cut.
fn mqtt_under_faults(results: &[RunResult]) -> Option<Claim> {
    let measured: Vec<String> = results
        .iter()
        .filter(|r| r.transport_kind == "mqtt")
        .filter_map(|r| {
            let recoveries: Vec<String> = r
                .link_faults
                .iter()
                .filter(|f| silences(f))
                .map(|f| {
                    let fate = f.due_messages.map_or_else(String::new, |d| {
                        format!(
                            " (of {} due in it: {} after it, {} lost)",
                            d.due, d.delivered_after, d.lost
                        )
                    });
                    format!(
                        "{} {} / {}{fate}",
                        f.kind,
                        units::optional(f.recovery_p50_ms, units::duration_ms),
                        units::optional(f.recovery_max_ms, units::duration_ms)
                    )
                })
                .collect();
            (!recoveries.is_empty()).then(|| {
                format!(
                    "{}: QoS granted {}, session {}, lost {} of {}, {} duplicated, recovery \
                     p50 / max after {}",
                    charts::series(results, r),
                    r.qos_granted
                        .map_or_else(|| units::NOT_MEASURED.to_string(), |q| q.to_string()),
                    session(&r.transport),
                    r.lost,
                    r.messages_expected,
                    r.duplicated,
                    recoveries.join(", ")
                )
            })
        })
        .collect();
    if measured.is_empty() {
        return None;
    }
    Some(Claim {
        claim: "MQTT's QoS levels make it fit for unreliable networks",
        measured: measured.join("; "),
        why: "at QoS 1 and 2 the broker keeps a persistent session's messages while its client \
              is away and resends the unacknowledged ones when it returns (MQTT 3.1.1 §3.1.2.4, \
              §4.4); a clean session's are dropped with the connection, and QoS 0 is fire and \
              forget; a blackhole shorter than 1.5 × keep-alive leaves the connection up, and \
              TCP alone resends what was in flight, at any QoS"
            .to_string(),
    })
}

/// A fault that silenced the link and was carried out: what the QoS claim is about.
fn silences(f: &FaultResult) -> bool {
    f.error.is_empty() && matches!(f.kind.as_str(), "blackhole" | "cut")
}

/// Whether an MQTT run kept its session, as its label says; not measured when the label does
/// not say.
fn session(label: &str) -> &'static str {
    let persistent = label
        .split(['(', ')', ','])
        .any(|part| part == "persistent");
    if persistent {
        "persistent"
    } else {
        units::NOT_MEASURED
    }
}

/// "Last Will tells the others when a client drops off", from Last Will runs.
fn last_will(results: &[RunResult]) -> Option<Claim> {
    let measured: Vec<String> = results
        .iter()
        .filter_map(|r| {
            let bound = r.will_expected_within_us?;
            Some(format!(
                "{}: {} of {} wills, p50 {} / max {} after the cut, bound {}",
                charts::series(results, r),
                r.messages_delivered,
                r.messages_expected,
                units::latency(r.latency_p50_us, Digits::Three),
                units::latency(r.latency_max_us, Digits::Three),
                units::duration_us(bound as f64, Digits::Three)
            ))
        })
        .collect();
    if measured.is_empty() {
        return None;
    }
    Some(Claim {
        claim: "Last Will tells the others when a client drops off",
        measured: measured.join("; "),
        why: "the broker publishes a will once it knows the client is gone: at once for a \
              closed connection or a failed write, but for a client that just fell silent only \
              after 1.5 × keep-alive without a packet (MQTT 3.1.1 §3.1.2.10), so the delay is \
              the keep-alive's, not the network's"
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: &str, transport: &str, overhead: f64, target_cpu_s: f64) -> RunResult {
        RunResult {
            transport: transport.into(),
            transport_kind: kind.into(),
            overhead_bytes_per_message: overhead,
            messages_delivered: 1_000,
            target_cpu_s: Some(target_cpu_s),
            target_rss_bytes_per_connection: 4_000.0,
            ..RunResult::default()
        }
    }

    #[test]
    fn each_claim_is_set_beside_the_runs_that_measure_it() {
        let results = [
            run("mqtt", "mqtt(qos0,tcp)", 11.0, 0.05),
            run("http-longpoll", "http-longpoll(minimal)", 255.7, 0.06),
            run("websocket", "websocket", 2.0, 0.02),
        ];
        let md = section(&results).unwrap();
        assert!(md.contains("mqtt(qos0,tcp): 11.00 B"), "{md}");
        assert!(
            md.contains("http-longpoll(minimal) 60 µs CPU/message, 4000 B RSS/connection"),
            "{md}"
        );
        assert!(md.contains("websocket 20 µs CPU/message"), "{md}");
        assert_eq!(section(&results[2..]).unwrap(), "");
    }

    fn through(transport: &str, kind: &str, qos: u64) -> RunResult {
        RunResult {
            transport: transport.into(),
            transport_kind: "mqtt".into(),
            qos_granted: Some(qos),
            messages_expected: 9_000,
            lost: 450,
            duplicated: 3,
            link_faults: vec![FaultResult {
                kind: kind.into(),
                recovery_p50_ms: Some(120.0),
                recovery_max_ms: Some(2_400.0),
                due_messages: Some(crate::fleet::spans::FaultDelivery {
                    due: 400,
                    lost: 400,
                    ..Default::default()
                }),
                ..FaultResult::default()
            }],
            ..RunResult::not_measured()
        }
    }

    #[test]
    fn qos_is_judged_by_mqtt_runs_that_went_through_a_silence() {
        let mut websocket = through("websocket", "blackhole", 0);
        websocket.transport_kind = "websocket".into();
        let mut failed = through("mqtt(qos2,tcp)", "blackhole", 2);
        failed.link_faults[0].error = "no link".into();
        let results = [
            through("mqtt(qos0,tcp)", "blackhole", 0),
            through("mqtt(qos1,tcp,persistent)", "cut", 1),
            through("mqtt(qos1,ws)", "restart", 1),
            websocket,
            failed,
        ];
        let md = section(&results).unwrap();
        assert!(
            md.contains(
                "mqtt(qos0,tcp): QoS granted 0, session -, lost 450 of 9000, 3 duplicated, \
                 recovery p50 / max after blackhole 120 ms / 2.40 s (of 400 due in it: 0 after \
                 it, 400 lost)"
            ),
            "{md}"
        );
        assert!(
            md.contains("mqtt(qos1,tcp,persistent): QoS granted 1, session persistent"),
            "{md}"
        );
        for absent in ["mqtt(qos1,ws)", "websocket", "mqtt(qos2,tcp)"] {
            assert!(!md.contains(absent), "{absent} in {md}");
        }
        assert_eq!(section(&results[2..]).unwrap(), "");
    }

    #[test]
    fn wills_are_set_beside_their_bound() {
        let will = RunResult {
            transport: "mqtt(qos1,tcp,will)".into(),
            transport_kind: "mqtt".into(),
            will_expected_within_us: Some(7_500_000),
            messages_expected: 30,
            messages_delivered: 29,
            latency_p50_us: Some(6_200_000),
            latency_max_us: Some(7_400_000),
            ..RunResult::not_measured()
        };
        let md = section(std::slice::from_ref(&will)).unwrap();
        assert!(
            md.contains(
                "| Last Will tells the others when a client drops off | mqtt(qos1,tcp,will): 29 \
                 of 30 wills, p50 6.20 s / max 7.40 s after the cut, bound 7.50 s |"
            ),
            "{md}"
        );
        let stream = RunResult {
            will_expected_within_us: None,
            ..will
        };
        assert_eq!(section(&[stream]).unwrap(), "");
    }
}
