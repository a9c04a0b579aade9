//! The seed write-up's claims about MQTT and Comet, each beside what the runs measured and
//! why: a section of `comparison.md`. A claim none of the runs can speak to is left out.

use std::fmt::Write;

use super::cost::cpu_us_per_message;
use super::units::{self, Digits};
use crate::result::RunResult;

/// One claim, what was measured, and the reason.
struct Claim {
    claim: &'static str,
    measured: String,
    why: String,
}

/// The section, or nothing when no run bears on any claim.
pub fn section(results: &[RunResult]) -> anyhow::Result<String> {
    let claims: Vec<Claim> = [mqtt_overhead(results), comet_cost(results)]
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
}
