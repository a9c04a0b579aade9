//! One transport run: start the target, ramp the fleet in, then either publish warm-up and
//! measured messages and drain, or (a Last Will run) cut the clients and watch their wills;
//! finally turn what was counted into a `RunResult`. Every transport and mode goes through
//! this one pipeline.

pub mod build;
mod coordination;
mod faults;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fleet::{FleetSpec, MeasuredSeqs, Running};
use crate::last_will::{self, Watchers};
use crate::link::Link;
use crate::observe::{Observer, Phase};
use crate::plan::{FaultKind, Plan, RunPlan, TransportPlan};
use crate::publisher::{self, PublishOutcome, Schedule};
use crate::result::RunResult;
use crate::sys;
use crate::targets::{Endpoint, Launch, Placement, RunningTarget, tls_front};
use build::{Cost, CostMeter, Measured, Stimulus};
pub use coordination::{Alone, Coordination, Share};

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

/// Runs one transport run of `plan` and measures it.
pub async fn run_transport(
    plan: &Plan,
    run: &RunPlan,
    options: &RunOptions,
    observer: &dyn Observer,
) -> anyhow::Result<RunResult> {
    let m = measure(plan, run, options, observer, &mut Alone).await?;
    let mut result = build::build_result(plan, run, m.target, m.started_at, &m.measured, &m.cost)?;
    if let Some(link) = m.link {
        build::link_figures(&mut result, link, &m.measured.fleet.outcome);
    }
    Ok(result)
}

/// What one part of a run counted, before it becomes a `RunResult`.
pub struct Measurement {
    pub measured: Measured,
    pub cost: Cost,
    pub target: String,
    pub started_at: String,
    /// The link the run had (`[network]`), and what happened on it.
    pub link: Option<LinkFigures>,
}

/// A link's conditions, its connections' TCP health, what crossed it and its faults, for
/// the result.
pub struct LinkFigures {
    pub record: crate::link::LinkRecord,
    pub tcp: Option<crate::link::check::TcpHealth>,
    pub throughput: Option<crate::link::throughput::Throughput>,
    pub faults: Vec<crate::result::FaultResult>,
}

/// Runs this process's part of one transport run (`Alone`: all of it) and returns what it
/// counted.
pub async fn measure(
    plan: &Plan,
    run: &RunPlan,
    options: &RunOptions,
    observer: &dyn Observer,
    coordination: &mut impl Coordination,
) -> anyhow::Result<Measurement> {
    let share = coordination.share(plan);
    let (transport, label) = (&run.transport, run.label());
    let per_process = sys::clients_per_process();
    let per_shard = match (transport, &run.tls) {
        // The broker's TLS front holds two sockets per client beside rumqttd's one.
        (TransportPlan::Mqtt(_), Some(_)) => per_process / tls_front::FDS_PER_CLIENT,
        _ => per_process,
    };
    let shards = plan
        .clients
        .div_ceil(plan.scale.clients_per_shard.unwrap_or(per_shard).max(1));
    // Declared before the target, so that it outlives it (locals drop in reverse).
    let link = match &plan.network {
        Some(network) => Some(Link::up(&network.conditions).context("setting up the link")?),
        None => None,
    };
    let placement = link.as_ref().map(|l| Placement {
        netns: l.target_ns(),
        backstage: l.backstage_ip(),
        serve: plan.network.as_ref().and_then(|n| n.serve.clone()),
    });
    let mut target = RunningTarget::start_placed(
        &plan.target,
        transport,
        &options.launch,
        shards as usize,
        placement.as_ref(),
        run.tls.as_ref(),
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
    let mut meter = CostMeter::start(&target);

    let ramp_start = Instant::now();
    let spec = FleetSpec {
        transport: transport.clone(),
        endpoints: fleet_endpoints(&target, link.as_ref()),
        first: share.first,
        clients: share.clients,
        channels: plan.channels,
        // (A share of no clients, a publisher-only shard's, still gets a finite pace.)
        connect_rate_per_s: plan.connect_rate_per_s * f64::from(share.clients.max(1))
            / f64::from(plan.clients.max(1)),
        seqs,
        run_id: share.run_id,
        clock_correction_us: share.clock_correction_us,
        adapter: plan.adapter.clone(),
        faults: plan.network.as_ref().map_or(0, |n| n.faults.len()),
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
    ramp(plan, share.clients, &label, &fleet, interrupt, observer).await;
    let connect_s = ramp_start.elapsed().as_secs_f64();
    meter.connected(&target, &fleet);
    coordination.ramped(fleet.counts().connected).await?;

    let (mut link_faults, mut tcp_health, mut throughput) = (Vec::new(), None, None);
    let (stimulus, due_through) = match (will, watchers) {
        (Some((mqtt, will)), Some(watchers)) => {
            let wills = last_will::cut_and_watch(
                plan,
                &label,
                mqtt,
                will,
                watchers,
                &fleet,
                interrupt,
                observer,
                link.as_ref(),
            )
            .await;
            (Stimulus::Wills(wills), seqs.last)
        }
        _ if !coordination.publishes() => {
            let due = coordination.until_published(interrupt).await;
            drain(plan, share.clients, &label, &fleet, interrupt, observer).await;
            (Stimulus::Stream(PublishOutcome::default()), due)
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
                text: matches!(transport, TransportPlan::Sse { .. })
                    || plan.adapter.encoding == crate::adapter::PayloadEncoding::Text,
                adapter: std::sync::Arc::new(plan.adapter.clone()),
            };
            let faults_stop = interrupt.child_token();
            let progress = Arc::new(publisher::Progress::default());
            let publishing = async {
                let published = publish(
                    plan,
                    &label,
                    &target,
                    &schedule,
                    (&fleet, Arc::clone(&progress)),
                    interrupt,
                    observer,
                )
                .await;
                faults_stop.cancel();
                published
            };
            let scheduled = plan.network.as_ref().map_or(&[][..], |n| &n.faults[..]);
            let scene = faults::Scene {
                link: link.as_ref(),
                target: &target,
                fleet: &fleet,
                progress: &progress,
            };
            let counted = async {
                match link.as_ref() {
                    Some(link) => link.throughput(&faults_stop).await,
                    None => None,
                }
            };
            let (mut published, fault_results, crossed) = tokio::join!(
                publishing,
                faults::run(scene, scheduled, &faults_stop),
                counted
            );
            throughput = crossed;
            let restarts = fault_results
                .iter()
                .filter(|f| f.kind == FaultKind::Restart.name());
            published.scheduled_errors = restarts.clone().map(|f| f.publishes_failed).sum();
            // An MQTT publisher holds one connection per channel and endpoint.
            let connections = u64::from(plan.channels) * target.endpoints.len() as u64;
            published.scheduled_broken = published
                .connections_broken
                .min(restarts.count() as u64 * connections);
            link_faults = fault_results;
            // While the connections are still open: what their kernel saw of the link.
            tcp_health = link.as_ref().and_then(|l| l.tcp_health().ok());
            drain(plan, share.clients, &label, &fleet, interrupt, observer).await;
            // An interrupted run expects only what was due before it stopped publishing.
            let due = if options.interrupt.is_cancelled() {
                published.highest_attempted.unwrap_or(0)
            } else {
                seqs.last
            };
            coordination.published(due).await;
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
    Ok(Measurement {
        measured,
        cost,
        target: target_label,
        started_at,
        link: link.map(|link| LinkFigures {
            record: link.record(),
            tcp: tcp_health,
            throughput,
            faults: link_faults,
        }),
    })
}

/// The endpoints as the fleet reaches them: through the link's addresses when there is one
/// (spread over them, shard by shard), else the target's own.
fn fleet_endpoints(target: &RunningTarget, link: Option<&Link>) -> Vec<Endpoint> {
    target
        .endpoints
        .iter()
        .enumerate()
        .map(|(k, e)| match link {
            Some(link) => {
                let addr = link.through_link(k, e.addr);
                Endpoint {
                    addr,
                    authority: addr.to_string(),
                    ..(**e).clone()
                }
            }
            None => (**e).clone(),
        })
        .collect()
}

/// Waits until every client is connected, the run stops, or connecting stalls: no new
/// connection for `RAMP_GRACE` once the planned ramp time is over (a slow machine connects
/// late; publishing before it is done would make late clients miss measured messages).
async fn ramp(
    plan: &Plan,
    clients: u32,
    label: &str,
    fleet: &Running,
    stop: &CancellationToken,
    observer: &dyn Observer,
) {
    let planned = Duration::from_secs_f64(f64::from(plan.clients) / plan.connect_rate_per_s);
    let clients = u64::from(clients);
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
    (fleet, progress): (&Running, Arc<publisher::Progress>),
    stop: &CancellationToken,
    observer: &dyn Observer,
) -> PublishOutcome {
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
    clients: u32,
    label: &str,
    fleet: &Running,
    stop: &CancellationToken,
    observer: &dyn Observer,
) {
    let clients = u64::from(clients);
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
