//! The MQTT Last Will and Testament mode of a run: the fleet's clients connect with a will,
//! are cut off at a known moment without DISCONNECT, and one watcher per broker shard
//! counts the wills the brokers publish and how long after the cut they arrive.
//!
//! Everything else (target shards, worker processes, ramp, cost, the result) is the shared
//! run's: this module only subscribes the watchers, cuts, and watches.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fleet::Running;
use crate::link::Link;
use crate::observe::{Observer, Phase};
use crate::plan::{LastWillPlan, MqttPlan, Plan, WillCut};
use crate::stats;
use crate::targets::RunningTarget;
use crate::transport::mqtt::{self, Mqtt};
use crate::transport::{Received, Transport};

/// A broker drops a silent client after 1.5 times its keep-alive (MQTT 3.1.1 §3.1.2.10).
pub fn expiry(keep_alive: Duration) -> Duration {
    keep_alive.mul_f64(1.5)
}

/// What the watchers saw.
pub struct Wills {
    /// Clients connected at the cut: each owes one will.
    pub expected: u64,
    pub delivered: u64,
    pub duplicated: u64,
    /// Will arrival after the cut, µs.
    pub latency: Histogram<u64>,
    /// How soon the broker had to publish them (1.5 × keep-alive for silent clients).
    pub bound: Duration,
    /// How long the watchers waited.
    pub waited: Duration,
}

/// Subscribers of the will topic, one per broker shard, ready before any client connects.
pub struct Watchers(Vec<Mqtt>);

impl Watchers {
    pub async fn subscribe(
        target: &RunningTarget,
        mqtt_plan: &MqttPlan,
        will: &LastWillPlan,
    ) -> anyhow::Result<Watchers> {
        let topic = will.topic.replace("{client}", "+");
        let run_id: u32 = rand::random();
        let mut watchers = Vec::new();
        for (k, endpoint) in target.endpoints.iter().enumerate() {
            let id = format!("pb-will-watch-{run_id:08x}-{k}");
            let options = mqtt::options(&id, endpoint, mqtt_plan, None)?;
            watchers.push(Mqtt::subscribe(options, endpoint.addr, &topic, mqtt_plan.qos).await?);
        }
        Ok(Watchers(watchers))
    }
}

/// Keeps the clients alive through the warm-up, cuts them all at once, and collects wills
/// until every connected client's has arrived, the wait is over, or the run is interrupted.
#[allow(clippy::too_many_arguments)]
pub async fn cut_and_watch(
    plan: &Plan,
    label: &str,
    mqtt_plan: &MqttPlan,
    will: &LastWillPlan,
    watchers: Watchers,
    fleet: &Running,
    interrupt: &CancellationToken,
    observer: &dyn Observer,
    link: Option<&Link>,
) -> Wills {
    tokio::select! {
        _ = interrupt.cancelled() => {}
        _ = tokio::time::sleep(plan.warmup) => {}
    }
    let expected = fleet.counts().connected;
    let cut_at = SystemTime::now();
    // A blackhole silences the clients by the network: they are left to run as they are.
    let blackhole = link.filter(|_| will.cut == WillCut::Blackhole);
    match blackhole {
        Some(link) => {
            if let Err(e) = link.blackhole(true) {
                eprintln!("error: starting the blackhole: {e}");
            }
        }
        None => fleet.cut(),
    }
    let bound = match will.cut {
        WillCut::Silence | WillCut::Blackhole => expiry(mqtt_plan.keep_alive),
        WillCut::Close => Duration::ZERO,
    };
    let waited = plan.duration.max(bound + plan.drain);
    observer.phase(label, Phase::Draining, expected);
    let (arrivals, done) = forward(watchers);
    let _stop_watching = done.drop_guard();
    let mut wills = Wills {
        expected,
        delivered: 0,
        duplicated: 0,
        latency: stats::new_histogram(),
        bound,
        waited,
    };
    collect(&mut wills, arrivals, cut_at, waited, interrupt, observer).await;
    if let Some(Err(e)) = blackhole.map(|link| link.blackhole(false)) {
        eprintln!("error: ending the blackhole: {e}");
    }
    wills
}

/// Runs every watcher in a task of its own (a watcher's `next` is not cut off half-way by
/// another's arrival) and hands what they receive to one channel.
fn forward(watchers: Watchers) -> (mpsc::UnboundedReceiver<Received>, CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let done = CancellationToken::new();
    for mut watcher in watchers.0 {
        let (tx, done) = (tx.clone(), done.clone());
        tokio::spawn(async move {
            let mut received = Vec::new();
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    step = watcher.next(&mut received) => if step.is_err() { return },
                }
                for will in received.drain(..) {
                    if tx.send(will).is_err() {
                        return;
                    }
                }
            }
        });
    }
    (rx, done)
}

async fn collect(
    wills: &mut Wills,
    mut arrivals: mpsc::UnboundedReceiver<Received>,
    cut_at: SystemTime,
    waited: Duration,
    interrupt: &CancellationToken,
    observer: &dyn Observer,
) {
    let deadline = tokio::time::Instant::now() + waited;
    let mut seen = HashSet::new();
    while wills.delivered < wills.expected {
        let will = tokio::select! {
            _ = interrupt.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            will = arrivals.recv() => match will { Some(w) => w, None => break },
        };
        let after = will.at.duration_since(cut_at).unwrap_or_default();
        stats::record_latency(&mut wills.latency, after.as_micros() as u64);
        if seen.insert(will.payload) {
            wills.delivered += 1;
        } else {
            wills.duplicated += 1;
        }
        observer.update(wills.delivered, "wills received");
    }
}
