//! The summary `pushbench validate` prints: what will run, and roughly for how long.

use std::time::Duration;

use super::to_u32;
use crate::plan::{MqttClient, Plan, TargetPlan, TargetProcesses, TransportPlan};
use crate::profile::HeaderProfile;
use crate::thresholds::Threshold;

/// A short human summary of a plan for `pushbench validate`: what will run, and roughly
/// how long all transport runs take (each ramps, warms up, measures and drains in turn).
pub fn describe(plan: &Plan) -> String {
    // Saturating: absurd but valid values (a rate of 1e-9/s, durations of years) must not panic.
    let ramp = Duration::try_from_secs_f64(f64::from(plan.clients) / plan.connect_rate_per_s)
        .unwrap_or(Duration::MAX);
    let per_run = [plan.warmup, plan.duration, plan.drain]
        .into_iter()
        .fold(ramp, Duration::saturating_add);
    let runs = plan.transports.len();
    let total = per_run.saturating_mul(to_u32(runs as u64));
    let title = if plan.description.is_empty() {
        plan.name.clone()
    } else {
        format!("{}: {}", plan.name, plan.description)
    };
    let mut lines = vec![
        title,
        format!(
            "  clients:    {} over {} channel{}, connecting at {}/s (ramp ≈ {})",
            plan.clients,
            plan.channels,
            plural(plan.channels as usize),
            per_second(plan.connect_rate_per_s),
            seconds(ramp),
        ),
        format!(
            "  messages:   {}/s per channel, {}-byte payload \
             ({} warm-up + {} measured per channel)",
            per_second(plan.message_rate_per_s),
            plan.payload_bytes,
            plan.warmup_messages(),
            plan.window_messages(),
        ),
        format!(
            "  window:     warmup {}, duration {}, drain {}",
            seconds(plan.warmup),
            seconds(plan.duration),
            seconds(plan.drain),
        ),
        format!("  target:     {}", describe_target(&plan.target)),
    ];
    if let Some(network) = &plan.network {
        lines.push(format!(
            "  network:    {}",
            super::network::describe(network)
        ));
    }
    if plan.target != TargetPlan::Embedded {
        lines.push(format!("  adapter:    {}", plan.adapter.summary()));
    }
    if let Some(rate) = plan.project_rate_per_s {
        lines.push(format!(
            "  projected:  rate-scaled run; bandwidth also projected to {}/s per client",
            per_second(rate)
        ));
    }
    let (workers, shards) = (plan.scale.clients_per_worker, plan.scale.clients_per_shard);
    if workers.is_some() || shards.is_some() {
        let size =
            |n: Option<u32>| n.map_or("from the open-files limit".to_string(), |n| n.to_string());
        lines.push(format!(
            "  scale:      {} clients per worker, {} per target shard",
            size(workers),
            size(shards)
        ));
    }
    // One TLS for every run is said once; otherwise each run says its own.
    let shared_tls = match plan.transports.split_first() {
        Some((first, rest)) if rest.iter().all(|run| run.tls == first.tls) => Some(&first.tls),
        _ => None,
    };
    if let Some(Some(tls)) = shared_tls {
        lines.push(format!(
            "  tls:        every transport over {}",
            describe_tls(tls)
        ));
    }
    lines.push("  transports:".to_string());
    lines.extend(plan.transports.iter().enumerate().map(|(i, run)| {
        let own = match (&run.tls, shared_tls) {
            (_, Some(_)) => String::new(),
            (Some(tls), None) => format!(" (over {})", describe_tls(tls)),
            (None, None) => " (in clear)".to_string(),
        };
        let options = describe_transport(&run.transport);
        format!("    {}. {}: {options}{own}", i + 1, run.label())
    }));
    lines.extend(describe_thresholds(&plan.thresholds));
    lines.push(format!(
        "  run time:   about {} ({runs} run{} × {} each: ramp + warmup + duration + drain)",
        seconds(total),
        plural(runs),
        seconds(per_run),
    ));
    lines.join("\n") + "\n"
}

fn describe_target(target: &TargetPlan) -> String {
    match target {
        TargetPlan::Embedded => "embedded hub (started by pushbench for each run)".to_string(),
        TargetPlan::External {
            urls,
            processes,
            name,
        } => {
            let cost = match processes {
                None => "; its CPU and memory are not measured (name its processes with \
                         target.pid, target.pidfile or target.process)"
                    .to_string(),
                Some(TargetProcesses::Pid(pid)) => format!("; cost of process {pid}"),
                Some(TargetProcesses::Pidfile(path)) => {
                    format!("; cost of the process in {}", path.display())
                }
                Some(TargetProcesses::Name(name)) => {
                    format!("; cost of every process named {name}")
                }
            };
            let name = name.as_ref().map_or_else(String::new, |n| format!(" {n}"));
            format!("external{name}: {}{cost}", urls.join(", "))
        }
    }
}

/// A transport's options in words (its run's label goes before them).
fn describe_transport(transport: &TransportPlan) -> String {
    match transport {
        TransportPlan::HttpPoll {
            interval,
            headers,
            http,
        } => format!(
            "interval {}, HTTP/{}{}",
            seconds(*interval),
            http.name(),
            custom_names(headers)
        ),
        TransportPlan::HttpLongpoll {
            headers,
            timeout,
            http,
        } => format!(
            "timeout {}, HTTP/{}{}",
            seconds(*timeout),
            http.name(),
            custom_names(headers)
        ),
        TransportPlan::Sse {
            headers,
            http,
            keepalive,
        } => {
            let keepalive = match keepalive {
                Some(every) => format!("comment keep-alive every {}", seconds(*every)),
                None => "no keep-alive".to_string(),
            };
            format!("{keepalive}, HTTP/{}{}", http.name(), custom_names(headers))
        }
        TransportPlan::Websocket {
            read_buffer_bytes,
            ping,
        } => {
            let ping = match ping {
                Some(every) => format!(
                    ", ping after {} of silence, dead after {} more",
                    seconds(*every),
                    seconds(*every)
                ),
                None => String::new(),
            };
            format!("read buffer {read_buffer_bytes} bytes{ping}")
        }
        TransportPlan::Mqtt(m) => {
            let will = match &m.last_will {
                Some(w) => format!(", last will on {:?} ({:?} cut)", w.topic, w.cut),
                None => String::new(),
            };
            let client = match m.client {
                MqttClient::Rumqttc => "",
                MqttClient::Lean => ", lean client (pushbench's stream, rumqttc's codec)",
            };
            format!(
                "topic {:?}, keep-alive {}, clean session {}, retain {}, inflight {}{will}{client}",
                m.topic,
                seconds(m.keep_alive),
                m.clean_session,
                m.retain,
                m.inflight
            )
        }
    }
}

/// One line per threshold, under a heading; nothing when the plan has none.
fn describe_thresholds(list: &[Threshold]) -> Vec<String> {
    if list.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["  thresholds: (a run that breaks one exits with code 99)".to_string()];
    lines.extend(list.iter().map(|t| format!("    {}: {t}", t.scope)));
    lines
}

/// The names of custom headers, so a summary shows what a `custom` profile sends.
fn custom_names(headers: &HeaderProfile) -> String {
    match headers {
        HeaderProfile::Custom(list) if !list.is_empty() => {
            let names: Vec<&str> = list.iter().map(|(name, _)| name.as_str()).collect();
            format!(", headers {}", names.join(", "))
        }
        _ => String::new(),
    }
}

/// A per-second rate with at most three decimals: "1/min" is 0.017/s, not 0.016666666666666666.
pub(super) fn per_second(rate: f64) -> String {
    let rounded = format!("{rate:.3}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "0" {
        format!("{rate:.3e}")
    } else {
        trimmed.to_string()
    }
}

/// A duration rounded to milliseconds: finer digits are noise in a summary.
fn seconds(duration: Duration) -> String {
    let millis = Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(millis).to_string()
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// A run's TLS in one line: version, resumption, whose certificate is trusted.
fn describe_tls(tls: &crate::plan::TlsPlan) -> String {
    let resumption = if tls.resumption {
        "sessions resumed on reconnect"
    } else {
        "no resumption"
    };
    let trust = match (&tls.ca, tls.insecure) {
        (_, true) => "INSECURE: the server's certificate is not checked".to_string(),
        (Some(ca), false) => format!("trusting only {}", ca.display()),
        (None, false) => "trusting only the embedded target's own certificate".to_string(),
    };
    let cipher = tls
        .cipher
        .map_or_else(String::new, |c| format!(" offering {} only", c.name()));
    format!("TLS {}{cipher}, {resumption}, {trust}", tls.version.name())
}
