//! One transport run: start the target, ramp the fleet in, publish warm-up and measured
//! messages, drain, and turn what was counted into a `RunResult`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fleet::{FleetOutcome, FleetSpec, MeasuredSeqs, Running};
use crate::last_will;
use crate::observe::{Observer, Phase};
use crate::plan::{Plan, TransportPlan};
use crate::publisher::{self, PublishOutcome, Schedule};
use crate::result::RunResult;
use crate::stats::{self, Percentiles, per};
use crate::sys;
use crate::targets::{Launch, RunningTarget};

/// How often the coordinator looks at the counters while it waits.
const TICK: Duration = Duration::from_millis(100);

/// How long a ramp may go without a new connection before publishing starts anyway.
const RAMP_GRACE: Duration = Duration::from_secs(10);

/// How runs are carried out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub launch: Launch,
    /// Cancelled on Ctrl-C: the current run ends early and reports what it has.
    pub interrupt: CancellationToken,
}

/// Runs one transport of `plan` and measures it.
pub async fn run_transport(
    plan: &Plan,
    transport: &TransportPlan,
    options: &RunOptions,
    observer: &dyn Observer,
) -> anyhow::Result<RunResult> {
    let label = transport.label();
    let per_process = sys::clients_per_process();
    let shards = plan
        .clients
        .div_ceil(plan.scale.clients_per_shard.unwrap_or(per_process).max(1));
    let target = RunningTarget::start(&plan.target, transport, &options.launch, shards as usize)
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
    let fleet_rss_start = sys::reset_own_peak_rss();
    let fleet_cpu_start = sys::own_cpu_s();
    let target_start = target.shard_costs();

    let ramp_start = Instant::now();
    let spec = FleetSpec {
        transport: transport.clone(),
        endpoints: target.endpoints.iter().map(|e| (**e).clone()).collect(),
        first: 0,
        clients: plan.clients,
        channels: plan.channels,
        connect_rate_per_s: plan.connect_rate_per_s,
        seqs,
        run_id: rand::random(),
    };
    let exe = match &options.launch {
        Launch::ChildProcess { exe } => Some(exe.as_path()),
        Launch::InProcess => None,
    };
    let per_worker = plan.scale.clients_per_worker.unwrap_or(per_process);
    let fleet = Running::start(spec, per_worker, exe, stop.clone())?;
    ramp(plan, &label, &fleet, &stop, observer).await;
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
    let published = publish(plan, &label, &target, &schedule, &fleet, &stop, observer).await;
    drain(plan, &label, &fleet, &stop, observer).await;
    stop.cancel();
    let merged = fleet.finish().await?;
    observer.done();

    let hub_stats = target.hub_stats().await;
    let target_end = target.shard_costs();
    let shard_cpu_s: Vec<f64> = target_end
        .iter()
        .zip(
            target_start
                .iter()
                .map(|c| c.0)
                .chain(std::iter::repeat(0.0)),
        )
        .map(|((end, _), start)| end - start)
        .collect();
    let fleet_peak = sys::peak_rss_bytes("self").unwrap_or(0);
    let cost = Cost {
        fleet_cpu_s: sys::own_cpu_s() - fleet_cpu_start + merged.workers_cpu_s,
        fleet_peak_rss_bytes: fleet_peak + merged.workers_peak_rss_bytes,
        fleet_rss_added_bytes: fleet_peak.saturating_sub(fleet_rss_start)
            + merged.workers_rss_added_bytes,
        target_cpu_s: (!shard_cpu_s.is_empty()).then(|| shard_cpu_s.iter().sum()),
        target_peak_rss_bytes: (!target_end.is_empty())
            .then(|| target_end.iter().map(|c| c.1).sum()),
        target_shard_cpu_s: shard_cpu_s,
        target_shard_peak_rss_bytes: target_end.iter().map(|c| c.1).collect(),
    };
    let measured = Measured {
        seqs,
        latency: Percentiles::of(&merged.latency),
        latency_histogram: stats::encode_histogram(&merged.latency)?,
        fleet: merged.outcome,
        published,
        connect_failures: merged.counts.connect_failures,
        reconnects: merged.counts.reconnects,
        connect_s,
        hub_dropped_slow: hub_stats.map(|s| s.ws_dropped_slow),
        complete: !options.interrupt.is_cancelled(),
        endpoints: target.endpoints.len() as u64,
        workers: merged.workers,
        workers_lost: merged.workers_lost,
        worker_delivered: merged.worker_delivered,
    };
    let target_label = target.label.clone();
    target.stop().await;
    if measured.fleet.clients_connected == 0
        && let Some(error) = merged.first_error
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

/// Waits until every client is connected, the run stops, or connecting stalls: no new
/// connection for `RAMP_GRACE` once the planned ramp time is over (a slow machine connects
/// late; publishing before it is done would make late clients miss measured messages).
async fn ramp(
    plan: &Plan,
    label: &str,
    fleet: &Running,
    stop: &CancellationToken,
    observer: &dyn Observer,
) {
    let clients = u64::from(plan.clients);
    let planned = Duration::from_secs_f64(f64::from(plan.clients) / plan.connect_rate_per_s);
    let start = Instant::now();
    let mut progress = (0, start);
    observer.phase(label, Phase::Connecting, clients);
    while !stop.is_cancelled() {
        let counts = fleet.counts();
        observer.update(
            counts.connected,
            &format!("{} connect failures", counts.connect_failures),
        );
        if counts.connected >= clients {
            break;
        }
        let now = Instant::now();
        if counts.connected > progress.0 {
            progress = (counts.connected, now);
        }
        if now > start + planned && now > progress.1 + RAMP_GRACE {
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
    fleet: &Running,
    stop: &CancellationToken,
    observer: &dyn Observer,
) -> PublishOutcome {
    let progress = Arc::new(publisher::Progress::default());
    let total = schedule.messages * u64::from(schedule.channels) * target.endpoints.len() as u64;
    observer.phase(label, Phase::Publishing, total);
    let endpoints = target.endpoints.clone();
    let (task_schedule, task_progress, stop) =
        (schedule.clone(), Arc::clone(&progress), stop.clone());
    let mut task = tokio::spawn(async move {
        publisher::publish(&endpoints, &task_schedule, task_progress, stop).await
    });
    let expected = schedule.messages * u64::from(plan.clients);
    loop {
        tokio::select! {
            done = &mut task => return done.unwrap_or_default(),
            _ = tokio::time::sleep(TICK) => {}
        }
        observer.update(
            progress
                .published
                .load(std::sync::atomic::Ordering::Relaxed),
            &format!("{} of {expected} deliveries", fleet.counts().delivered),
        );
    }
}

/// Waits for the last deliveries: until every client ended or the drain time is over.
async fn drain(
    plan: &Plan,
    label: &str,
    fleet: &Running,
    stop: &CancellationToken,
    observer: &dyn Observer,
) {
    let clients = u64::from(plan.clients);
    observer.phase(label, Phase::Draining, clients);
    let deadline = Instant::now() + plan.drain;
    while Instant::now() < deadline && !stop.is_cancelled() {
        let finished = fleet.counts().finished;
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
    latency: Option<Percentiles>,
    latency_histogram: String,
    connect_failures: u64,
    reconnects: u64,
    connect_s: f64,
    hub_dropped_slow: Option<u64>,
    complete: bool,
    /// Servers published to: each gets every message.
    endpoints: u64,
    workers: u64,
    workers_lost: u64,
    worker_delivered: Vec<u64>,
}

struct Cost {
    /// The coordinator's and every worker's CPU seconds.
    fleet_cpu_s: f64,
    /// The coordinator's and every worker's peak RSS, summed.
    fleet_peak_rss_bytes: u64,
    /// What the clients added to those peaks (peak − RSS at the start of the run).
    fleet_rss_added_bytes: u64,
    target_cpu_s: Option<f64>,
    target_peak_rss_bytes: Option<u64>,
    target_shard_cpu_s: Vec<f64>,
    target_shard_peak_rss_bytes: Vec<u64>,
}

/// A run that could not hold what was asked: the publisher fell behind (achieved rate under
/// 95% of the requested one, or more than 1% of messages sent over an interval late),
/// pollers polled at under 95% of their rate, or deliveries fell behind the stream (median
/// latency over one message interval).
fn saturated(r: &RunResult, message_interval_us: f64) -> bool {
    let deliveries_behind = r
        .latency_p50_us
        .is_some_and(|p50| p50 as f64 > message_interval_us);
    let publisher_behind = r.publish_rate_achieved_per_s < 0.95 * r.publish_rate_requested_per_s
        || r.publish_late as f64 > 0.01 * r.messages_expected as f64 / r.clients.max(1) as f64;
    let pollers_behind = r.exchanges_requested_per_client_per_s.is_some_and(|asked| {
        r.exchanges_per_client_per_s.is_finite() && r.exchanges_per_client_per_s < 0.95 * asked
    });
    publisher_behind || pollers_behind || deliveries_behind
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
    let mut result = RunResult {
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
        projected_bandwidth_bps: plan
            .project_rate_per_s
            .map(|rate| bytes_per_message * 8.0 * clients as f64 * rate),
        ip_bandwidth_bps: per(wire.ip_bytes as f64 * 8.0, window_s),
        exchanges_per_client_per_s: per(m.fleet.window_exchanges as f64, connected * window_s),
        exchanges_requested_per_client_per_s: match transport {
            TransportPlan::HttpPoll { interval, .. } => Some(1.0 / interval.as_secs_f64()),
            _ => None,
        },
        latency_p50_us: m.latency.map(|p| p.p50),
        latency_p90_us: m.latency.map(|p| p.p90),
        latency_p99_us: m.latency.map(|p| p.p99),
        latency_p999_us: m.latency.map(|p| p.p999),
        latency_max_us: m.latency.map(|p| p.max),
        latency_mean_us: m.latency.map_or(f64::NAN, |p| p.mean),
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
        fleet_rss_bytes_per_client: per(cost.fleet_rss_added_bytes as f64, clients as f64),
        fleet_cpu_us_per_message: per(cost.fleet_cpu_s * 1e6, delivered as f64),
        fleet_workers: m.workers,
        fleet_workers_lost: m.workers_lost,
        fleet_worker_delivered: m.worker_delivered.clone(),
        target_cpu_s: cost.target_cpu_s,
        target_peak_rss_bytes: cost.target_peak_rss_bytes,
        target_cpu_us_per_message: cost
            .target_cpu_s
            .map_or(f64::NAN, |cpu| per(cpu * 1e6, delivered as f64)),
        target_shards: m.endpoints,
        target_shard_cpu_s: cost.target_shard_cpu_s.clone(),
        target_shard_peak_rss_bytes: cost.target_shard_peak_rss_bytes.clone(),
        ..RunResult::default()
    };
    result.saturated = saturated(&result, 1e6 / plan.message_rate_per_s);
    result
}
