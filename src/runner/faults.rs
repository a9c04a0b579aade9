//! Scheduled faults (`[[faults]]`), carried out on the run's link (or, a `restart`, on its
//! embedded target) while the publisher runs, and what the live counters did around each:
//! deliveries and failed publishes during it, reconnects after it, and how soon after its
//! end the first message arrived.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use std::sync::atomic::Ordering;

use crate::fleet::{Counts, Running};
use crate::link::Link;
use crate::plan::{FaultKind, FaultPlan};
use crate::publisher::Progress;
use crate::result::FaultResult;
use crate::targets::RunningTarget;

/// How often the counters are looked at while waiting for the first delivery after a fault.
const SAMPLE: Duration = Duration::from_millis(10);

/// What the faults act on and watch.
pub struct Scene<'a> {
    pub link: Option<&'a Link>,
    pub target: &'a RunningTarget,
    pub fleet: &'a Running,
    /// The publisher's live counts (failed publishes).
    pub progress: &'a Progress,
}

/// Carries out `faults` (sorted by time, counted from now: the first publish) until `stop`,
/// which ends when publishing does. A fault not reached by then is reported as such.
pub async fn run(
    scene: Scene<'_>,
    faults: &[FaultPlan],
    stop: &CancellationToken,
) -> Vec<FaultResult> {
    let (Some(link), false) = (scene.link, faults.is_empty()) else {
        return Vec::new();
    };
    let fleet = scene.fleet;
    let failed = || scene.progress.failed.load(Ordering::Relaxed);
    // Faults start with the publisher: it has its timetable before the first can begin.
    let due_from = |at| scene.progress.first_due_from(at).unwrap_or(0);
    let start = Instant::now();
    let mut results: Vec<FaultResult> = Vec::new();
    let mut at_start = Counts::default();
    for (i, fault) in faults.iter().enumerate() {
        let stopped = sleep_or_stop(start + fault.at, stop).await;
        if let Some(last) = results.last_mut() {
            count_reconnects(last, &at_start, &fleet.counts());
        }
        if stopped {
            results.extend(faults[i..].iter().map(|f| FaultResult {
                kind: f.kind.name().to_string(),
                at_s: f.at.as_secs_f64(),
                error: "not carried out: publishing ended first".to_string(),
                ..FaultResult::default()
            }));
            return results;
        }
        let before = fleet.counts();
        let failed_before = failed();
        at_start = before;
        let began = Instant::now();
        fleet.fault_began(i, due_from(began));
        let applied = apply(link, scene.target, fault.kind, stop).await;
        let ended = Instant::now();
        let ended_unix_us = crate::payload::unix_us(std::time::SystemTime::now());
        // Before the link comes back: an arrival after this is one after the fault.
        fleet.fault_ended(i, due_from(ended), ended_unix_us);
        let error = match applied.and_then(|()| lift(link, fault.kind)) {
            Ok(()) => String::new(),
            Err(e) => format!("{e:#}"),
        };
        let after = fleet.counts().delivered;
        let next = faults.get(i + 1).map(|f| start + f.at);
        results.push(FaultResult {
            kind: fault.kind.name().to_string(),
            at_s: (began - start).as_secs_f64(),
            duration_s: (ended - began).as_secs_f64(),
            error,
            delivered_during: after - before.delivered,
            reconnects_after: 0,
            first_delivery_after_ms: first_delivery(fleet, after, ended, next, stop).await,
            ended_unix_us,
            publishes_failed: failed() - failed_before,
            ..FaultResult::default()
        });
    }
    stop.cancelled().await;
    if let Some(last) = results.last_mut() {
        count_reconnects(last, &at_start, &fleet.counts());
    }
    results
}

/// The reconnects from a fault's start (`start`) until the next fault or the end of
/// publishing (`now`), and what they cost.
fn count_reconnects(fault: &mut FaultResult, start: &Counts, now: &Counts) {
    fault.reconnects_after = now.reconnects - start.reconnects;
    fault.reconnect_bytes_after = Some(now.reconnect_bytes - start.reconnect_bytes);
}

/// Sleeps until `at`; true if `stop` came first.
async fn sleep_or_stop(at: Instant, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep_until(at) => false,
    }
}

/// Applies the fault and returns when it is over: a blackhole after its duration (or at
/// once when the run stops: a blackhole never outlives publishing), a restart when the
/// target listens again. `lift` then undoes what needs undoing.
async fn apply(
    link: &Link,
    target: &RunningTarget,
    kind: FaultKind,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    match kind {
        FaultKind::Cut => Ok(link.cut()?),
        FaultKind::Blackhole { duration } => {
            link.blackhole(true)?;
            sleep_or_stop(Instant::now() + duration, stop).await;
            Ok(())
        }
        FaultKind::Restart => target.restart().await,
    }
}

/// Ends an applied fault: a blackhole lets packets through again.
fn lift(link: &Link, kind: FaultKind) -> anyhow::Result<()> {
    match kind {
        FaultKind::Blackhole { .. } => Ok(link.blackhole(false)?),
        FaultKind::Cut | FaultKind::Restart => Ok(()),
    }
}

/// Milliseconds from `ended` until the fleet's delivered count first rises above `base`;
/// `None` if it does not before the next fault or the end of publishing.
async fn first_delivery(
    fleet: &Running,
    base: u64,
    ended: Instant,
    next: Option<Instant>,
    stop: &CancellationToken,
) -> Option<f64> {
    loop {
        if fleet.counts().delivered > base {
            return Some(ended.elapsed().as_secs_f64() * 1e3);
        }
        let wake = Instant::now() + SAMPLE;
        if next.is_some_and(|n| wake >= n) || sleep_or_stop(wake, stop).await {
            return None;
        }
    }
}
