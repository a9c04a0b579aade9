//! One transport run: start the target, ramp the fleet in, publish warm-up and measured
//! messages, drain, and turn what was counted into a `RunResult`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fleet::{Fleet, FleetOutcome, MeasuredSeqs, Shared};
use crate::last_will;
use crate::plan::{Plan, TransportPlan};
use crate::publisher::{self, PublishOutcome, Schedule};
use crate::result::RunResult;
use crate::stats::{self, Percentiles};
use crate::sys;
use crate::target::{Launch, RunningTarget};

/// How often the coordinator looks at the counters while it waits.
const TICK: Duration = Duration::from_millis(100);

/// Extra time a ramp may take beyond `clients / connect_rate` before publishing starts anyway.
const RAMP_GRACE: Duration = Duration::from_secs(10);

/// How runs are carried out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub launch: Launch,
    /// Cancelled on Ctrl-C: the current run ends early and reports what it has.
    pub interrupt: CancellationToken,
}

/// Phases a run goes through, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Publishing,
    Draining,
}

/// Watches a run. Every method has a no-op default; `()` watches nothing.
pub trait Observer: Sync {
    /// A phase starts; `len` is how many units it counts towards.
    fn phase(&self, _transport: &str, _phase: Phase, _len: u64) {}
    /// Progress within the phase, with a short status text.
    fn update(&self, _position: u64, _status: &str) {}
    /// The run is over.
    fn done(&self) {}
}

impl Observer for () {}

/// Runs one transport of `plan` and measures it.
pub async fn run_transport(
    plan: &Plan,
    transport: &TransportPlan,
    options: &RunOptions,
    observer: &dyn Observer,
) -> anyhow::Result<RunResult> {
    let label = transport.label();
    let target = RunningTarget::start(&plan.target, transport, &options.launch)
        .await
        .with_context(|| format!("starting the target for {label}"))?;
    let stop = options.interrupt.child_token();
    if let TransportPlan::Mqtt(mqtt) = transport
        && let Some(will) = &mqtt.last_will
    {
        return last_will::run(plan, transport, mqtt, will, target, stop, observer).await;
    }
    let seqs = MeasuredSeqs {
        first: plan.warmup_messages(),
        last: plan.warmup_messages() + plan.window_messages() - 1,
    };
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sys::reset_own_peak_rss();
    let fleet_rss_start = sys::rss_bytes("self").unwrap_or(0);
    let (fleet_cpu_start, target_cpu_start) = (sys::own_cpu_s(), target.cost().map(|c| c.0));
    let shared = Arc::new(Shared::new(seqs, stop.clone()));

    let ramp_start = Instant::now();
    let fleet = Fleet::start(
        transport,
        &target.endpoints,
        plan.clients,
        plan.channels,
        plan.connect_rate_per_s,
        Arc::clone(&shared),
    );
    ramp(plan, &label, &shared, observer).await;
    let connect_s = ramp_start.elapsed().as_secs_f64();

    let schedule = Schedule {
        channels: plan.channels,
        rate_per_s: plan.message_rate_per_s,
        payload_bytes: plan.payload_bytes,
        messages: seqs.last + 1,
        window_opens_after: seqs.first - 1,
        mqtt: match transport {
            TransportPlan::Mqtt(m) => Some(m.clone()),
            _ => None,
        },
    };
    let published = publish(plan, &label, &target, &schedule, &shared, observer).await;
    drain(plan, &label, &shared, observer).await;
    stop.cancel();
    let fleet_outcome = fleet.join().await;
    observer.done();

    let hub_stats = target.hub_stats().await;
    let target_cost = target.cost();

    let cost = Cost {
        fleet_cpu_s: sys::own_cpu_s() - fleet_cpu_start,
        fleet_peak_rss_bytes: sys::peak_rss_bytes("self").unwrap_or(0),
        fleet_rss_start_bytes: fleet_rss_start,
        target_cpu_s: target_cost
            .zip(target_cpu_start)
            .map(|((end, _), start)| end - start),
        target_peak_rss_bytes: target_cost.map(|c| c.1),
    };
    let measured = Measured {
        seqs,
        fleet: fleet_outcome,
        published,
        latency: Percentiles::of(&shared.latency()),
        latency_histogram: stats::encode_histogram(&shared.latency())?,
        connect_failures: shared
            .connect_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        reconnects: shared.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        connect_s,
        hub_dropped_slow: hub_stats.map(|s| s.ws_dropped_slow),
        complete: !options.interrupt.is_cancelled(),
        endpoints: target.endpoints.len() as u64,
    };
    let target_label = target.label.clone();
    target.stop().await;
    if measured.fleet.clients_connected == 0
        && let Some(error) = shared.first_error()
    {
        anyhow::bail!("no client of {label} could connect: {error}");
    }
    Ok(build_result(
        plan,
        transport,
        target_label,
        started_at,
        &measured,
        &cost,
    ))
}

/// Waits until every client is connected, the ramp's grace time is over, or the run stops.
async fn ramp(plan: &Plan, label: &str, shared: &Shared, observer: &dyn Observer) {
    let clients = u64::from(plan.clients);
    let deadline = Instant::now()
        + Duration::from_secs_f64(f64::from(plan.clients) / plan.connect_rate_per_s)
        + RAMP_GRACE;
    observer.phase(label, Phase::Connecting, clients);
    while Instant::now() < deadline && !shared.stop.is_cancelled() {
        let connected = shared.connected.load(std::sync::atomic::Ordering::Relaxed);
        let failures = shared
            .connect_failures
            .load(std::sync::atomic::Ordering::Relaxed);
        observer.update(connected, &format!("{failures} connect failures"));
        if connected >= clients {
            break;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Publishes the schedule while showing delivery progress.
async fn publish(
    plan: &Plan,
    label: &str,
    target: &RunningTarget,
    schedule: &Schedule,
    shared: &Shared,
    observer: &dyn Observer,
) -> PublishOutcome {
    let progress = Arc::new(publisher::Progress::default());
    let total = schedule.messages * u64::from(schedule.channels) * target.endpoints.len() as u64;
    observer.phase(label, Phase::Publishing, total);
    let endpoints = target.endpoints.clone();
    let (task_schedule, task_progress, stop) =
        (schedule.clone(), Arc::clone(&progress), shared.stop.clone());
    let mut task = tokio::spawn(async move {
        publisher::publish(&endpoints, &task_schedule, task_progress, stop).await
    });
    let expected_per_client = schedule.messages;
    loop {
        tokio::select! {
            done = &mut task => return done.unwrap_or_default(),
            _ = tokio::time::sleep(TICK) => {}
        }
        let delivered = shared.delivered.load(std::sync::atomic::Ordering::Relaxed);
        observer.update(
            progress
                .published
                .load(std::sync::atomic::Ordering::Relaxed),
            &format!(
                "{delivered} of {} deliveries",
                expected_per_client * u64::from(plan.clients)
            ),
        );
    }
}

/// Waits for the last deliveries: until every client ended or the drain time is over.
async fn drain(plan: &Plan, label: &str, shared: &Shared, observer: &dyn Observer) {
    let clients = u64::from(plan.clients);
    observer.phase(label, Phase::Draining, clients);
    let deadline = Instant::now() + plan.drain;
    while Instant::now() < deadline && !shared.stop.is_cancelled() {
        let finished = shared.finished.load(std::sync::atomic::Ordering::Relaxed);
        observer.update(finished, "clients done");
        if finished >= clients {
            break;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// What the fleet and the publisher counted.
struct Measured {
    seqs: MeasuredSeqs,
    fleet: FleetOutcome,
    published: PublishOutcome,
    latency: Percentiles,
    latency_histogram: String,
    connect_failures: u64,
    reconnects: u64,
    connect_s: f64,
    hub_dropped_slow: Option<u64>,
    complete: bool,
    /// Servers published to: each gets every message.
    endpoints: u64,
}

struct Cost {
    fleet_cpu_s: f64,
    fleet_peak_rss_bytes: u64,
    /// Resident memory when the run started: the part of the peak the clients did not add.
    fleet_rss_start_bytes: u64,
    target_cpu_s: Option<f64>,
    target_peak_rss_bytes: Option<u64>,
}

/// `numerator / denominator`, or NaN (empty in CSV, null in JSON) when nothing was counted.
fn per(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        f64::NAN
    }
}

fn build_result(
    plan: &Plan,
    transport: &TransportPlan,
    target: String,
    started_at: String,
    m: &Measured,
    cost: &Cost,
) -> RunResult {
    let clients = u64::from(plan.clients);
    let expected = clients * (m.seqs.last - m.seqs.first + 1);
    let delivered = m.fleet.delivery.delivered;
    let wire = m.fleet.window_wire;
    let messages = m.fleet.window_messages as f64;
    let nominal_window = (m.seqs.last - m.seqs.first + 1) as f64 / plan.message_rate_per_s;
    let window_s = m
        .published
        .window
        .map_or(nominal_window, |w| w.as_secs_f64());
    let connected = m.fleet.clients_connected as f64;
    let bytes_per_message = per(wire.total() as f64, messages);
    RunResult {
        scenario: plan.name.clone(),
        transport: transport.label(),
        transport_kind: transport.kind().to_string(),
        target,
        started_at,
        complete: m.complete,
        clients,
        channels: u64::from(plan.channels),
        payload_bytes: plan.payload_bytes as u64,
        messages_expected: expected,
        messages_delivered: delivered,
        lost: expected.saturating_sub(delivered),
        duplicated: m.fleet.delivery.duplicated,
        out_of_order: m.fleet.delivery.out_of_order,
        clients_with_loss: m.fleet.delivery.clients_with_loss
            + (clients - m.fleet.clients_connected.min(clients)),
        delivery_ratio: per(delivered as f64, expected as f64),
        window_messages: m.fleet.window_messages,
        window_bytes_up: wire.sent,
        window_bytes_down: wire.received,
        bytes_per_message,
        overhead_bytes_per_message: bytes_per_message - plan.payload_bytes as f64,
        ip_bytes_per_message: per(wire.ip_bytes as f64, messages),
        kernel_bytes_per_message: per((wire.kernel_sent + wire.kernel_received) as f64, messages),
        total_bytes_up: m.fleet.total_wire.sent,
        total_bytes_down: m.fleet.total_wire.received,
        total_ip_bytes: m.fleet.total_wire.ip_bytes,
        total_segments: m.fleet.total_wire.segments,
        setup_bytes_per_client: per(m.fleet.setup.total() as f64, connected),
        setup_ip_bytes_per_client: per(m.fleet.setup.ip_bytes as f64, connected),
        bandwidth_bps: per(wire.total() as f64 * 8.0, window_s),
        projected_bandwidth_bps: None,
        ip_bandwidth_bps: per(wire.ip_bytes as f64 * 8.0, window_s),
        exchanges_per_client_per_s: per(m.fleet.window_exchanges as f64, connected * window_s),
        latency_p50_us: m.latency.p50,
        latency_p90_us: m.latency.p90,
        latency_p99_us: m.latency.p99,
        latency_p999_us: m.latency.p999,
        latency_max_us: m.latency.max,
        latency_mean_us: m.latency.mean,
        latency_histogram: m.latency_histogram.clone(),
        publish_rate_requested_per_s: plan.message_rate_per_s
            * f64::from(plan.channels)
            * m.endpoints as f64,
        publish_rate_achieved_per_s: m.published.achieved_rate_per_s,
        publish_late: m.published.late,
        publish_errors: m.published.errors,
        window_s,
        clients_connected: m.fleet.clients_connected,
        connect_failures: m.connect_failures,
        reconnects: m.reconnects,
        connect_s: m.connect_s,
        will_expected_within_us: None,
        hub_dropped_slow: m.hub_dropped_slow,
        fleet_cpu_s: cost.fleet_cpu_s,
        fleet_peak_rss_bytes: cost.fleet_peak_rss_bytes,
        fleet_rss_bytes_per_client: per(
            cost.fleet_peak_rss_bytes
                .saturating_sub(cost.fleet_rss_start_bytes) as f64,
            clients as f64,
        ),
        target_cpu_s: cost.target_cpu_s,
        target_peak_rss_bytes: cost.target_peak_rss_bytes,
    }
}
