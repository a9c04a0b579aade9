//! One transport run: start the target, ramp the fleet in, then either publish warm-up and
//! measured messages and drain, or (a Last Will run) cut the clients and watch their wills;
//! finally turn what was counted into a `RunResult`. Every transport and mode goes through
//! this one pipeline.

mod build;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fleet::{FleetSpec, MeasuredSeqs, Running};
use crate::last_will::{self, Watchers};
use crate::observe::{Observer, Phase};
use crate::plan::{Plan, TransportPlan};
use crate::publisher::{self, PublishOutcome, Schedule};
use crate::result::RunResult;
use crate::sys;
use crate::targets::{Launch, RunningTarget, tls_front};
use build::{CostMeter, Measured, Stimulus};

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
    let label = transport.run_label(plan.tls.as_ref());
    let per_process = sys::clients_per_process();
    let per_shard = match (transport, &plan.tls) {
        // The broker's TLS front holds two sockets per client beside rumqttd's one.
        (TransportPlan::Mqtt(_), Some(_)) => per_process / tls_front::FDS_PER_CLIENT,
        _ => per_process,
    };
    let shards = plan
        .clients
        .div_ceil(plan.scale.clients_per_shard.unwrap_or(per_shard).max(1));
    let mut target = RunningTarget::start(
        &plan.target,
        transport,
        &options.launch,
        shards as usize,
        plan.tls.as_ref(),
    )
    .await
    .with_context(|| format!("starting the target for {label}"))?;
    // Cancelled by an interrupt, or when the stimulus phase is over: it ends the publisher's
    // connections and everything else that only lives for this run's publishing.
    let phases = options.interrupt.child_token();
    let _phases_guard = phases.clone().drop_guard();
    let interrupt = &phases;
    let will = match transport {
        TransportPlan::Mqtt(mqtt) => mqtt.last_will.as_ref().map(|will| (mqtt, will)),
        _ => None,
    };
    let watchers = match will {
        Some((mqtt, will)) => Some(
            Watchers::subscribe(&target, mqtt, will)
                .await
                .context("subscribing to the wills")?,
        ),
        None => None,
    };
    let seqs = MeasuredSeqs {
        first: plan.warmup_messages(),
        last: plan.warmup_messages() + plan.window_messages() - 1,
    };
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let meter = CostMeter::start(&target);

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
    // The fleet stops when the run has said what was due (`finish`), not at the interrupt
    // itself; the guard stops it if this function leaves early.
    let fleet_stop = CancellationToken::new();
    let _fleet_guard = fleet_stop.clone().drop_guard();
    let fleet = Running::start(spec, per_worker, exe, fleet_stop)?;
    ramp(plan, &label, &fleet, interrupt, observer).await;
    let connect_s = ramp_start.elapsed().as_secs_f64();

    let (stimulus, due_through) = match (will, watchers) {
        (Some((mqtt, will)), Some(watchers)) => {
            let wills = last_will::cut_and_watch(
                plan, &label, mqtt, will, watchers, &fleet, interrupt, observer,
            )
            .await;
            (Stimulus::Wills(wills), seqs.last)
        }
        _ => {
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
                text: matches!(transport, TransportPlan::Sse { .. }),
            };
            let published = publish(
                plan, &label, &target, &schedule, &fleet, interrupt, observer,
            )
            .await;
            drain(plan, &label, &fleet, interrupt, observer).await;
            // An interrupted run expects only what was due before it stopped publishing.
            let due = if options.interrupt.is_cancelled() {
                published.highest_attempted.unwrap_or(0)
            } else {
                seqs.last
            };
            (Stimulus::Stream(published), due)
        }
    };
    phases.cancel();
    let fleet = fleet.finish(due_through).await?;
    observer.done();

    let hub_stats = target.hub_stats().await;
    let exited_shards = target.exited_shards();
    let cost = meter.finish(&target, &fleet);
    let target_label = target.label.clone();
    let endpoints = target.endpoints.len() as u64;
    target.stop().await;
    if fleet.counts.connected == 0
        && let Some(error) = &fleet.first_error
    {
        anyhow::bail!("no client of {label} could connect: {error}");
    }
    let measured = Measured {
        seqs,
        due_through,
        fleet,
        stimulus,
        connect_s,
        hub: hub_stats,
        exited_shards,
        complete: !options.interrupt.is_cancelled(),
        endpoints,
    };
    build::build_result(plan, transport, target_label, started_at, &measured, &cost)
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
