//! The simulated clients: ramped in at the scenario's connect rate, each running the shared
//! client loop, their outcomes summed when the run ends.

mod client;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::plan::TransportPlan;
use crate::stats::{DeliveryCounts, new_histogram, record_latency};
use crate::transport::{ClientSpec, Endpoint, HttpLongpoll, HttpPoll, Mqtt, Transport, WebSocket};
use crate::wire::WireCounts;

/// Latency histograms are sharded so that clients rarely wait for each other's lock.
const HISTOGRAM_SHARDS: usize = 16;

/// The sequence numbers every client measures: `first..=last` of its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredSeqs {
    pub first: u64,
    pub last: u64,
}

/// State the clients of one run share with the coordinator.
pub struct Shared {
    pub window: MeasuredSeqs,
    /// Cancelled when the run ends (drain over, or interrupted).
    pub stop: CancellationToken,
    pub connected: AtomicU64,
    pub connect_failures: AtomicU64,
    pub reconnects: AtomicU64,
    pub delivered: AtomicU64,
    /// Clients that closed their byte window (received the last measured message).
    pub finished: AtomicU64,
    first_error: Mutex<Option<String>>,
    histograms: Vec<Mutex<Histogram<u64>>>,
}

impl Shared {
    pub fn new(window: MeasuredSeqs, stop: CancellationToken) -> Shared {
        Shared {
            window,
            stop,
            connected: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            first_error: Mutex::new(None),
            histograms: (0..HISTOGRAM_SHARDS)
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
        }
    }

    fn record_latency(&self, client: usize, latency_us: u64) {
        let mut h = self.histograms[client % HISTOGRAM_SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        record_latency(&mut h, latency_us);
    }

    /// Keeps the first connect error, so that a run where nothing connects can say why.
    fn note_error(&self, error: &anyhow::Error) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| format!("{error:#}"));
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// All clients' latencies merged.
    pub fn latency(&self) -> Histogram<u64> {
        let mut merged = new_histogram();
        for shard in &self.histograms {
            let h = shard.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds on every shard: adding cannot fail.
            let _ = merged.add(&*h);
        }
        merged
    }
}

/// What one client measured.
#[derive(Debug, Default, Clone)]
pub struct ClientOutcome {
    pub delivery: DeliveryCounts,
    /// Bytes of the first connection's connect and subscribe; `None` if it never connected.
    pub setup: Option<WireCounts>,
    pub window_wire: WireCounts,
    /// Everything the client's connections carried, from connect to the end of the run.
    pub total_wire: WireCounts,
    pub window_messages: u64,
    pub window_exchanges: u64,
}

/// Every client's outcome, summed.
#[derive(Debug, Default, Clone)]
pub struct FleetOutcome {
    pub delivery: DeliveryCounts,
    pub setup: WireCounts,
    pub clients_connected: u64,
    pub window_wire: WireCounts,
    pub total_wire: WireCounts,
    pub window_messages: u64,
    pub window_exchanges: u64,
}

impl FleetOutcome {
    fn add(&mut self, c: ClientOutcome) {
        self.delivery += c.delivery;
        if let Some(setup) = c.setup {
            self.setup = self.setup + setup;
            self.clients_connected += 1;
        }
        self.window_wire = self.window_wire + c.window_wire;
        self.total_wire = self.total_wire + c.total_wire;
        self.window_messages += c.window_messages;
        self.window_exchanges += c.window_exchanges;
    }
}

/// The running clients of one transport run.
pub struct Fleet {
    tasks: JoinSet<ClientOutcome>,
    spawner: tokio::task::JoinHandle<JoinSet<ClientOutcome>>,
}

impl Fleet {
    /// Starts `clients` clients, `connect_rate_per_s` per second, spread over `channels`
    /// channels and over `endpoints` (round robin).
    pub fn start(
        transport: &TransportPlan,
        endpoints: &[Arc<Endpoint>],
        clients: u32,
        channels: u32,
        connect_rate_per_s: f64,
        shared: Arc<Shared>,
    ) -> Fleet {
        let plan = Arc::new(transport.clone());
        let endpoints = endpoints.to_vec();
        let pace = Duration::from_secs_f64(1.0 / connect_rate_per_s);
        // Distinguishes this run's client ids from an earlier run's on the same broker.
        let run_id: u32 = rand::random();
        let spawner = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            let mut ticks = tokio::time::interval(pace);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..clients as usize {
                tokio::select! {
                    _ = shared.stop.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let spec = ClientSpec {
                    endpoint: Arc::clone(&endpoints[i % endpoints.len()]),
                    channel: (i % channels as usize).to_string(),
                    plan: Arc::clone(&plan),
                    index: i,
                    client_id: format!("pb-{run_id:08x}-{i}"),
                };
                spawn_client(&mut tasks, spec, Arc::clone(&shared), i);
            }
            tasks
        });
        Fleet {
            tasks: JoinSet::new(),
            spawner,
        }
    }

    /// Waits for every client to end (they end by themselves or when `stop` is cancelled).
    pub async fn join(mut self) -> FleetOutcome {
        if let Ok(tasks) = self.spawner.await {
            self.tasks = tasks;
        }
        let mut outcome = FleetOutcome::default();
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok(client) = joined {
                outcome.add(client);
            }
        }
        outcome
    }
}

fn spawn_client(
    tasks: &mut JoinSet<ClientOutcome>,
    spec: ClientSpec,
    shared: Arc<Shared>,
    i: usize,
) {
    fn go<T: Transport>(
        tasks: &mut JoinSet<ClientOutcome>,
        spec: ClientSpec,
        shared: Arc<Shared>,
        i: usize,
    ) {
        tasks.spawn(async move {
            let outcome = client::run_client::<T>(spec, Arc::clone(&shared), i).await;
            shared.finished.fetch_add(1, Ordering::Relaxed);
            outcome
        });
    }
    match spec.plan.as_ref() {
        TransportPlan::HttpPoll { .. } => go::<HttpPoll>(tasks, spec, shared, i),
        TransportPlan::HttpLongpoll { .. } => go::<HttpLongpoll>(tasks, spec, shared, i),
        TransportPlan::Websocket { .. } => go::<WebSocket>(tasks, spec, shared, i),
        TransportPlan::Mqtt(_) => go::<Mqtt>(tasks, spec, shared, i),
    }
}
