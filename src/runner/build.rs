//! What a run counted, and the one place that turns it into a `RunResult`. The result starts
//! with nothing measured (`RunResult::not_measured`), so a figure a mode does not measure
//! stays empty instead of reading as zero.

use crate::fleet::{MeasuredSeqs, Merged, Running};
use crate::last_will::Wills;
use crate::plan::{MqttClient, Plan, RunPlan, TlsPlan, TransportPlan};
use crate::publisher::PublishOutcome;
use crate::result::RunResult;
use crate::stats::{self, Percentiles, per};
use crate::sys;
use crate::targets::RunningTarget;
use crate::targets::hub::HubStats;
use crate::wire::WireCounts;

use std::time::Instant;

/// What made the clients receive something.
pub enum Stimulus {
    /// The publisher's message stream.
    Stream(PublishOutcome),
    /// The clients were cut off; the brokers published their wills.
    Wills(Wills),
}

/// What the fleet, the publisher and the target counted.
pub struct Measured {
    pub seqs: MeasuredSeqs,
    /// The highest sequence number that was due (the last measured one, unless interrupted).
    pub due_through: u64,
    pub fleet: Merged,
    pub stimulus: Stimulus,
    pub connect_s: f64,
    pub hub: Option<HubStats>,
    /// Embedded target shards found dead at the end, described.
    pub exited_shards: Vec<String>,
    pub complete: bool,
    /// Servers published to: each gets every message.
    pub endpoints: u64,
}

/// CPU and memory readings taken when the clients start, to subtract at the end.
pub struct CostMeter {
    fleet_rss_start: u64,
    fleet_cpu_start: f64,
    target_cpu_start: Vec<f64>,
    target_rss_start: Option<u64>,
    started: Instant,
    connect: ConnectCost,
}

/// What the connect phase (the ramp, from the first connect until every client is in)
/// cost: the handshakes, over TLS.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConnectCost {
    /// Connections made in the phase: first connections and reconnects.
    pub connections: u64,
    /// CPU seconds of the coordinator and every worker in the phase.
    pub fleet_cpu_s: f64,
    /// The target's, where its CPU is measured (embedded child shards, an external target's
    /// named processes).
    pub target_cpu_s: Option<f64>,
}

/// What the run cost the fleet and the (embedded) target.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// The coordinator's and every worker's CPU seconds.
    pub fleet_cpu_s: f64,
    /// The coordinator's and every worker's peak RSS, summed.
    pub fleet_peak_rss_bytes: u64,
    /// What the clients added to those peaks (peak − RSS at the start of the run).
    pub fleet_rss_added_bytes: u64,
    pub target_shard_cpu_s: Vec<f64>,
    pub target_shard_peak_rss_bytes: Vec<u64>,
    /// The target's peak RSS less its RSS before the clients connected.
    pub target_rss_added_bytes: Option<u64>,
    /// Wall seconds from the first connect to the end of the drain: what CPU seconds are
    /// divided by to tell how busy the fleet kept the machine.
    pub wall_s: f64,
    /// Cores the fleet's machine offers (summed over the machines of a sharded run).
    #[serde(default)]
    pub machine_cores: u64,
    #[serde(default)]
    pub connect: ConnectCost,
}

impl CostMeter {
    pub fn start(target: &RunningTarget) -> CostMeter {
        CostMeter {
            fleet_rss_start: sys::reset_own_peak_rss(),
            fleet_cpu_start: sys::own_cpu_s(),
            target_cpu_start: target.shard_costs().iter().map(|c| c.0).collect(),
            target_rss_start: target.rss_now(),
            started: Instant::now(),
            connect: ConnectCost::default(),
        }
    }

    /// Takes the readings at the end of the connect phase: what it cost so far.
    pub fn connected(&mut self, target: &RunningTarget, fleet: &Running) {
        let counts = fleet.counts();
        let target_now = target.shard_costs();
        self.connect = ConnectCost {
            connections: counts.connected + counts.reconnects,
            fleet_cpu_s: sys::own_cpu_s() - self.fleet_cpu_start + fleet.workers_cpu_s(),
            target_cpu_s: (!target_now.is_empty()).then(|| {
                let start = self.target_cpu_start.iter().chain(std::iter::repeat(&0.0));
                target_now
                    .iter()
                    .zip(start)
                    .map(|((now, _), start)| now - start)
                    .sum()
            }),
        };
    }

    pub fn finish(&self, target: &RunningTarget, fleet: &Merged) -> Cost {
        let target_end = target.shard_costs();
        let fleet_peak = sys::peak_rss_bytes("self").unwrap_or(0);
        Cost {
            fleet_cpu_s: sys::own_cpu_s() - self.fleet_cpu_start + fleet.workers_cpu_s,
            fleet_peak_rss_bytes: fleet_peak + fleet.workers_peak_rss_bytes,
            fleet_rss_added_bytes: fleet_peak.saturating_sub(self.fleet_rss_start)
                + fleet.workers_rss_added_bytes,
            target_shard_cpu_s: target_end
                .iter()
                .zip(self.target_cpu_start.iter().chain(std::iter::repeat(&0.0)))
                .map(|((end, _), start)| end - start)
                .collect(),
            target_shard_peak_rss_bytes: target_end.iter().map(|c| c.1).collect(),
            target_rss_added_bytes: self
                .target_rss_start
                .filter(|_| !target_end.is_empty())
                .map(|start| {
                    target_end
                        .iter()
                        .map(|c| c.1)
                        .sum::<u64>()
                        .saturating_sub(start)
                }),
            wall_s: self.started.elapsed().as_secs_f64(),
            machine_cores: machine_cores(),
            connect: self.connect.clone(),
        }
    }
}

/// A run that could not hold what was asked: the publisher fell behind (achieved rate under
/// 95% of the requested one, or more than 1% of messages sent over an interval late),
/// pollers polled at under 95% of their rate, or deliveries fell behind the stream (median
/// latency over one message interval). Only judged for a run without a fault: a dead target
/// slows the publisher too, and that is not the rate's doing.
fn saturated(r: &RunResult, message_interval_us: f64) -> bool {
    let deliveries_behind = r
        .latency_p50_us
        .is_some_and(|p50| p50 as f64 > message_interval_us);
    let publisher_behind = r.publish_rate_achieved_per_s < 0.95 * r.publish_rate_requested_per_s
        || r.publish_late as f64 > 0.01 * r.messages_expected as f64 / r.clients.max(1) as f64;
    let pollers_behind = r.exchanges_requested_per_client_per_s.is_some_and(|asked| {
        r.exchanges_per_client_per_s.is_finite() && r.exchanges_per_client_per_s < 0.95 * asked
    });
    r.fault.is_empty() && (publisher_behind || pollers_behind || deliveries_behind)
}

/// A saturated run whose limit was the fleet, not the target: the machine's cores were busy
/// (fleet and target together at 90% or more of them) and the fleet used at least as much
/// CPU as the target. Its figures then describe pushbench more than the server.
fn fleet_saturated(r: &RunResult, target_cpu_cores: f64) -> bool {
    let busy = r.fleet_cpu_cores + target_cpu_cores.max(0.0);
    r.saturated
        && busy >= 0.9 * r.machine_cores as f64
        && r.fleet_cpu_cores >= target_cpu_cores.max(0.0)
}

/// Cores this process may run on (the fleet's and, on one machine, the target's share).
fn machine_cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// What went wrong that was not the rate, in words; empty when nothing did. Publishes that
/// failed, fleet workers or target shards that died are faults; broken connections and
/// failed connects are named as their evidence (on their own they can be a server's
/// ordinary keep-alive limits).
fn fault(m: &Measured, published: Option<&PublishOutcome>) -> String {
    let counts = &m.fleet.counts;
    let mut causes = Vec::new();
    let mut lead = None;
    if let Some(p) = published.filter(|p| p.errors > p.scheduled_errors) {
        let at = |t: Option<std::time::Duration>| t.unwrap_or_default().as_secs_f64();
        if p.ended_failing {
            let since = p
                .last_ok_at
                .map_or(at(p.first_error_at), |ok| ok.as_secs_f64());
            lead = Some(format!(
                "target stopped answering {since:.1} s into publishing"
            ));
        }
        let why = p
            .first_error
            .as_ref()
            .map_or_else(String::new, |e| format!(": {e}"));
        causes.push(format!(
            "{} of {} publishes failed (the first {:.1} s into publishing{why})",
            p.errors,
            p.errors + p.published,
            at(p.first_error_at)
        ));
    }
    if let Some(p) = published.filter(|p| p.connections_broken > p.scheduled_broken) {
        let why = p
            .connection_error
            .as_ref()
            .map_or_else(String::new, |e| format!(" (the first: {e})"));
        causes.push(format!(
            "the broker closed the publisher's connection {} times while it published{why}",
            p.connections_broken
        ));
    }
    causes.extend(m.exited_shards.iter().map(|s| format!("target {s}")));
    if m.fleet.workers_lost > 0 {
        causes.push(format!(
            "{} of {} fleet workers died (their clients count as lost)",
            m.fleet.workers_lost, m.fleet.workers
        ));
    }
    if !m.fleet.shards_lost.is_empty() {
        let lost: Vec<String> = m.fleet.shards_lost.iter().map(u32::to_string).collect();
        causes.push(format!(
            "shard(s) {} of {} lost (their clients count as lost)",
            lost.join(", "),
            m.fleet.shards
        ));
    }
    if let Some(p) =
        published.filter(|p| p.published > 0 && m.fleet.outcome.delivery.delivered == 0)
        && counts.connected > 0
    {
        let why = m
            .fleet
            .first_error
            .as_ref()
            .map_or_else(String::new, |e| format!(" ({e})"));
        causes.push(format!(
            "{} messages were published and none was delivered{why}",
            p.published
        ));
    }
    if causes.is_empty() {
        return String::new();
    }
    if counts.disconnects > 0 {
        causes.push(format!("{} connections broke", counts.disconnects));
    }
    if counts.connect_failures > 0 {
        causes.push(format!("{} connects failed", counts.connect_failures));
    }
    match lead {
        Some(lead) => format!("{lead}: {}", causes.join(", ")),
        None => causes.join(", "),
    }
}

pub fn build_result(
    plan: &Plan,
    run: &RunPlan,
    target: String,
    started_at: String,
    m: &Measured,
    cost: &Cost,
) -> anyhow::Result<RunResult> {
    let transport = &run.transport;
    let clients = u64::from(plan.clients);
    let outcome = &m.fleet.outcome;
    let connected = outcome.clients_connected as f64;
    let connections = cost.connect.connections as f64;
    let per_connection_us = |cpu_s: f64| (connections > 0.0).then(|| per(cpu_s * 1e6, connections));
    let target_cpu_s =
        (!cost.target_shard_cpu_s.is_empty()).then(|| cost.target_shard_cpu_s.iter().sum::<f64>());
    let mut r = RunResult {
        scenario: plan.name.clone(),
        transport: run.label(),
        transport_kind: transport.kind().to_string(),
        target,
        target_name: plan.target.name(),
        started_at,
        complete: m.complete,
        clients,
        channels: u64::from(plan.channels),
        total_bytes_up: outcome.total_wire.sent,
        total_bytes_down: outcome.total_wire.received,
        total_ip_bytes: outcome.total_wire.ip_bytes,
        total_segments: outcome.total_wire.segments,
        total_exchanges: outcome.total_exchanges,
        setup_bytes_per_client: per(outcome.setup.total() as f64, connected),
        setup_ip_bytes_per_client: per(outcome.setup.ip_bytes as f64, connected),
        clients_connected: outcome.clients_connected,
        connect_failures: m.fleet.counts.connect_failures,
        reconnects: m.fleet.counts.reconnects,
        connect_s: m.connect_s,
        connects_per_s: per(connections, m.connect_s),
        hub_dropped_slow: m
            .hub
            .as_ref()
            .map(|s| s.ws_dropped_slow + s.sse_dropped_slow),
        hub_header_timeouts: m.hub.as_ref().map(|s| s.header_timeouts),
        fleet_cpu_s: cost.fleet_cpu_s,
        fleet_cpu_cores: per(cost.fleet_cpu_s, cost.wall_s),
        machine_cores: cost.machine_cores,
        fleet_peak_rss_bytes: cost.fleet_peak_rss_bytes,
        fleet_rss_bytes_per_client: per(cost.fleet_rss_added_bytes as f64, clients as f64),
        fleet_workers: m.fleet.workers,
        fleet_workers_lost: m.fleet.workers_lost,
        fleet_worker_delivered: m.fleet.worker_delivered.clone(),
        target_cpu_s,
        target_peak_rss_bytes: (!cost.target_shard_peak_rss_bytes.is_empty())
            .then(|| cost.target_shard_peak_rss_bytes.iter().sum()),
        target_rss_bytes_per_connection: cost
            .target_rss_added_bytes
            .map_or(f64::NAN, |added| per(added as f64, connected)),
        target_shards: m.endpoints,
        target_shard_cpu_s: cost.target_shard_cpu_s.clone(),
        target_shard_peak_rss_bytes: cost.target_shard_peak_rss_bytes.clone(),
        fleet_connect_cpu_us_per_connection: per_connection_us(cost.connect.fleet_cpu_s),
        target_connect_cpu_us_per_connection: cost.connect.target_cpu_s.and_then(per_connection_us),
        tls: run.tls.as_ref().map_or_else(String::new, tls_name),
        ..RunResult::not_measured()
    };
    let latency = match &m.stimulus {
        Stimulus::Stream(published) => {
            stream(&mut r, plan, run, m, published, target_cpu_s, cost);
            &m.fleet.latency
        }
        Stimulus::Wills(wills) => {
            will_arrivals(&mut r, wills);
            &wills.latency
        }
    };
    set_latency(&mut r, latency)?;
    if let Some(granted) = m.fleet.outcome.lowest_granted_qos() {
        r.qos_granted = Some(u64::from(granted));
        if let TransportPlan::Mqtt(mqtt) = transport
            && granted < mqtt.qos
        {
            r.transport = r.transport.replacen(
                &format!("qos{}", mqtt.qos),
                &format!("qos{}→{granted}", mqtt.qos),
                1,
            );
        }
    }
    r.fault = fault(
        m,
        match &m.stimulus {
            Stimulus::Stream(p) => Some(p),
            Stimulus::Wills(_) => None,
        },
    );
    r.saturated =
        matches!(m.stimulus, Stimulus::Stream(_)) && saturated(&r, 1e6 / plan.message_rate_per_s);
    r.fleet_saturated = fleet_saturated(&r, target_cpu_s.map_or(0.0, |s| per(s, cost.wall_s)));
    Ok(r)
}

/// The figures of a message stream: delivery, bytes over the windows, the publisher.
fn stream(
    r: &mut RunResult,
    plan: &Plan,
    run: &RunPlan,
    m: &Measured,
    published: &PublishOutcome,
    target_cpu_s: Option<f64>,
    cost: &Cost,
) {
    let transport = &run.transport;
    let outcome = &m.fleet.outcome;
    let clients = r.clients;
    let due = m.due_through.min(m.seqs.last);
    let per_client = if due < m.seqs.first {
        0
    } else {
        due - m.seqs.first + 1
    };
    let expected = clients * per_client;
    let delivered = outcome.delivery.delivered;
    let wire = outcome.window_wire;
    let messages = outcome.window_messages as f64;
    let nominal_window = (m.seqs.last - m.seqs.first + 1) as f64 / plan.message_rate_per_s;
    let window_s = published.window.map_or(nominal_window, |w| w.as_secs_f64());
    let connected = outcome.clients_connected as f64;
    let bytes_per_message = per(wire.total() as f64, messages);
    r.payload_bytes = plan.payload_bytes as u64;
    r.messages_expected = expected;
    r.messages_delivered = delivered;
    r.lost = expected.saturating_sub(delivered);
    r.duplicated = outcome.delivery.duplicated;
    r.out_of_order = outcome.delivery.out_of_order;
    r.clients_with_loss = outcome.delivery.clients_with_loss
        + if per_client > 0 {
            clients - outcome.clients_connected.min(clients)
        } else {
            0
        };
    r.delivery_ratio = per(delivered as f64, expected as f64);
    r.window_messages = outcome.window_messages;
    r.window_bytes_up = wire.sent;
    r.window_bytes_down = wire.received;
    r.bytes_per_message = bytes_per_message;
    r.overhead_bytes_per_message = bytes_per_message - plan.payload_bytes as f64;
    r.ip_bytes_per_message = per(wire.ip_bytes as f64, messages);
    r.kernel_bytes_per_message = per((wire.kernel_sent + wire.kernel_received) as f64, messages);
    r.bandwidth_bps = per(wire.total() as f64 * 8.0, window_s);
    r.projected_bandwidth_bps = plan
        .project_rate_per_s
        .map(|rate| bytes_per_message * 8.0 * clients as f64 * rate);
    r.ip_bandwidth_bps = per(wire.ip_bytes as f64 * 8.0, window_s);
    r.exchanges_per_client_per_s = per(outcome.window_exchanges as f64, connected * window_s);
    r.exchanges_requested_per_client_per_s = match transport {
        TransportPlan::HttpPoll { interval, .. } => Some(1.0 / interval.as_secs_f64()),
        _ => None,
    };
    if let TransportPlan::HttpPoll { .. } | TransportPlan::HttpLongpoll { .. } = transport {
        let exchanges = outcome.window_exchanges as f64;
        r.request_header_bytes_per_exchange = per(wire.request_header_bytes as f64, exchanges);
        r.response_header_bytes_per_exchange = per(wire.response_header_bytes as f64, exchanges);
    }
    // An interval poller's connect makes its first poll (it learns its position), so the
    // setup's header bytes are the first poll's: over HTTP/2, before HPACK has seen anything.
    if let TransportPlan::HttpPoll { .. } = transport {
        let setup = outcome.setup;
        r.first_request_header_bytes = per(setup.request_header_bytes as f64, connected);
        r.first_response_header_bytes = per(setup.response_header_bytes as f64, connected);
    }
    if run.tls.is_some() {
        set_tls(r, &wire, &outcome.setup, messages, connected);
        r.total_tls_records = Some(outcome.total_wire.tls_records);
        if let TransportPlan::Mqtt(m) = transport
            && m.client == MqttClient::Rumqttc
        {
            // rumqttc owns the socket and its TLS: no records are seen, and of the setup's
            // packets (CONNECT, SUBSCRIBE) rumqttc's events give no sizes.
            r.tls_records_per_message = f64::NAN;
            r.tls_setup_bytes_per_client = f64::NAN;
            r.total_tls_records = None;
        }
    }
    r.publish_rate_requested_per_s =
        plan.message_rate_per_s * f64::from(plan.channels) * m.endpoints as f64;
    r.publish_rate_achieved_per_s = published.achieved_rate_per_s;
    r.publish_late = published.late;
    r.publish_errors = published.errors;
    r.window_s = window_s;
    r.fleet_cpu_us_per_message = per(cost.fleet_cpu_s * 1e6, delivered as f64);
    r.target_cpu_us_per_message =
        target_cpu_s.map_or(f64::NAN, |cpu| per(cpu * 1e6, delivered as f64));
    // Once connected, every message delivered (warm-up and drain too) is what the CPU paid for.
    let connect = &cost.connect;
    let deliveries = m.fleet.counts.delivered as f64;
    r.fleet_delivery_cpu_us_per_message =
        per((cost.fleet_cpu_s - connect.fleet_cpu_s) * 1e6, deliveries);
    r.target_delivery_cpu_us_per_message = target_cpu_s
        .zip(connect.target_cpu_s)
        .map_or(f64::NAN, |(cpu, connecting)| {
            per((cpu - connecting) * 1e6, deliveries)
        });
}

/// The figures of a Last Will run: one will owed per client connected at the cut; latency
/// is will arrival after the cut. No message stream, so no bytes or publisher figures.
fn will_arrivals(r: &mut RunResult, wills: &Wills) {
    r.messages_expected = wills.expected;
    r.messages_delivered = wills.delivered;
    r.lost = wills.expected.saturating_sub(wills.delivered);
    r.duplicated = wills.duplicated;
    r.clients_with_loss = r.lost;
    r.delivery_ratio = per(wills.delivered as f64, wills.expected as f64);
    r.will_expected_within_us = Some(wills.bound.as_micros() as u64);
    r.window_s = wills.waited.as_secs_f64();
}

fn set_latency(r: &mut RunResult, histogram: &hdrhistogram::Histogram<u64>) -> anyhow::Result<()> {
    let p = Percentiles::of(histogram);
    r.latency_p50_us = p.map(|p| p.p50);
    r.latency_p90_us = p.map(|p| p.p90);
    r.latency_p99_us = p.map(|p| p.p99);
    r.latency_p999_us = p.map(|p| p.p999);
    r.latency_max_us = p.map(|p| p.max);
    r.latency_mean_us = p.map_or(f64::NAN, |p| p.mean);
    r.latency_histogram = stats::encode_histogram(histogram)?;
    Ok(())
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;

/// The link's columns: its configuration, what its TCP connections measured, its faults.
pub fn link_figures(
    result: &mut RunResult,
    link: super::LinkFigures,
    fleet: &crate::fleet::FleetOutcome,
) {
    let super::LinkFigures {
        record,
        tcp,
        throughput,
        mut faults,
    } = link;
    let carried_out = faults.iter_mut().enumerate();
    for (k, fault) in carried_out.filter(|(_, f)| f.ended_unix_us > 0) {
        fault.due_messages = fleet.faults.0.get(k).copied();
        let ms = fleet.silences.recoveries_ms(fault.ended_unix_us);
        let at = |q: f64| {
            ms.get(((q * ms.len() as f64).ceil() as usize).saturating_sub(1))
                .copied()
        };
        fault.clients_recovered = ms.len() as u64;
        fault.recovery_p50_ms = at(0.5);
        fault.recovery_p99_ms = at(0.99);
        fault.recovery_max_ms = ms.last().copied();
    }
    let c = &record.conditions;
    result.link_profile = c.profile.clone().unwrap_or_else(|| "custom".to_string());
    result.link_rtt_configured_ms = (c.up.delay + c.down.delay).as_secs_f64() * 1e3;
    if let Some(tcp) = &tcp {
        result.link_rtt_measured_ms = tcp.rtt_p50_ms.unwrap_or(f64::NAN);
        result.link_retrans_ratio = tcp.retrans_ratio().unwrap_or(f64::NAN);
    }
    result.link = Some(crate::result::LinkResult {
        configured: record,
        tcp,
        throughput,
    });
    result.link_faults = faults;
}

/// The `tls` column: the version, and `insecure` when the certificate was not checked.
fn tls_name(tls: &TlsPlan) -> String {
    let insecure = if tls.insecure { " insecure" } else { "" };
    format!("{}{insecure}", tls.version.name())
}

/// The TLS figures: what the wire carried beyond the plaintext, in the window and at setup.
fn set_tls(
    r: &mut RunResult,
    wire: &WireCounts,
    setup: &WireCounts,
    messages: f64,
    connected: f64,
) {
    let over = |counts: &WireCounts| counts.total().saturating_sub(counts.plaintext_total()) as f64;
    r.tls_overhead_bytes_per_message = per(over(wire), messages);
    r.tls_records_per_message = per(wire.tls_records as f64, messages);
    r.tls_setup_bytes_per_client = per(over(setup), connected);
}
