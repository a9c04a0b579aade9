//! The simulated clients: ramped in at the scenario's connect rate, each running the shared
//! client loop, their outcomes summed when the run ends.

mod client;
pub mod silence;
pub mod spans;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::adapter::Adapter;
use crate::plan::{MqttClient, TransportPlan};
use crate::stats::{DeliveryCounts, new_histogram, record_latency};
use crate::targets::Endpoint;
use crate::transport::{
    ClientSpec, HttpLongpoll, HttpPoll, Mqtt, MqttLean, Sse, Transport, WebSocket,
};
use crate::wire::WireCounts;

/// Latency histograms are sharded so that clients rarely wait for each other's lock.
const HISTOGRAM_SHARDS: usize = 16;

/// The sequence numbers every client measures: `first..=last` of its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasuredSeqs {
    pub first: u64,
    pub last: u64,
}

/// State the clients of one run share with the coordinator.
pub struct Shared {
    pub window: MeasuredSeqs,
    /// Cancelled when the run ends (drain over, or interrupted).
    pub stop: CancellationToken,
    /// Cancelled at the moment every client is cut off (a Last Will run): each then closes
    /// its connection or falls silent, as its plan says, and stays down.
    pub cut: CancellationToken,
    /// The highest sequence number that was due when publishing ended (every measured one,
    /// unless the run was interrupted): set before `stop`, read as each client ends.
    due_through: AtomicU64,
    pub connected: AtomicU64,
    pub connect_failures: AtomicU64,
    pub reconnects: AtomicU64,
    /// Bytes (TCP payload, both ways) of the reconnects' handshakes and subscriptions.
    pub reconnect_bytes: AtomicU64,
    /// Connections that broke (the server closed them, or the network failed) mid-run.
    pub disconnects: AtomicU64,
    pub delivered: AtomicU64,
    /// Clients that closed their byte window (received the last measured message).
    pub finished: AtomicU64,
    first_error: Mutex<Option<String>>,
    histograms: Vec<Mutex<Histogram<u64>>>,
    /// The scheduled faults' spans, as the run learns them.
    pub spans: spans::Spans,
}

impl Shared {
    pub fn new(window: MeasuredSeqs, stop: CancellationToken) -> Shared {
        Shared {
            window,
            stop,
            cut: CancellationToken::new(),
            due_through: AtomicU64::new(u64::MAX),
            connected: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            reconnect_bytes: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            first_error: Mutex::new(None),
            histograms: (0..HISTOGRAM_SHARDS)
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
            spans: spans::Spans::default(),
        }
    }

    /// The shared state of `spec`'s clients, following its scheduled faults.
    pub fn for_spec(spec: &FleetSpec, stop: CancellationToken) -> Shared {
        Shared {
            spans: spans::Spans::new(spec.faults),
            ..Shared::new(spec.seqs, stop)
        }
    }

    fn record_latency(&self, client: usize, latency_us: u64) {
        let mut h = self.histograms[client % HISTOGRAM_SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        record_latency(&mut h, latency_us);
    }

    /// Ends the run: the clients expect the measured messages up to `due_through`.
    pub fn end(&self, due_through: u64) {
        self.due_through.store(due_through, Ordering::Relaxed);
        self.stop.cancel();
    }

    pub fn due_through(&self) -> u64 {
        self.due_through.load(Ordering::Relaxed)
    }

    /// Keeps the first connect error, so that a run where nothing connects can say why.
    fn note_error(&self, error: &anyhow::Error) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| format!("{error:#}"));
    }

    /// The live counters, for progress and for the coordinator of a worker.
    pub fn counts(&self) -> Counts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            connected: load(&self.connected),
            connect_failures: load(&self.connect_failures),
            reconnects: load(&self.reconnects),
            reconnect_bytes: load(&self.reconnect_bytes),
            disconnects: load(&self.disconnects),
            delivered: load(&self.delivered),
            finished: load(&self.finished),
        }
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

/// Live counters of a fleet (summed over workers by the coordinator).
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, derive_more::AddAssign,
)]
pub struct Counts {
    pub connected: u64,
    pub connect_failures: u64,
    pub reconnects: u64,
    /// What the reconnects cost before their first exchange: handshakes and subscriptions.
    #[serde(default)]
    pub reconnect_bytes: u64,
    pub disconnects: u64,
    pub delivered: u64,
    /// Clients that ended (received the last measured message, or were stopped).
    pub finished: u64,
}

/// What one client measured, and every client's outcome summed: a client that connected
/// counts one in `clients_connected` and its first connection's bytes in `setup`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, derive_more::AddAssign)]
pub struct FleetOutcome {
    pub delivery: DeliveryCounts,
    /// Bytes of the first connection's connect and subscribe.
    pub setup: WireCounts,
    pub clients_connected: u64,
    pub window_wire: WireCounts,
    /// Everything the connections carried, from connect to the end of the run.
    pub total_wire: WireCounts,
    pub window_messages: u64,
    pub window_exchanges: u64,
    /// Exchanges (polls, frames, events) of the whole run, from connect to the end.
    pub total_exchanges: u64,
    /// Clients whose subscription the server granted QoS 0, 1 or 2 (MQTT).
    pub granted_qos0: u64,
    pub granted_qos1: u64,
    pub granted_qos2: u64,
    /// Each client's longest time without a delivery (start, end; Unix µs): recovery from
    /// faults, per client.
    pub silences: silence::Silences,
    /// What became of the messages due during each scheduled fault.
    #[serde(default)]
    pub faults: spans::FaultDeliveries,
    /// A client's arrivals inside fault spans, sorted into `faults` when the run is over.
    #[serde(skip)]
    pub arrivals: spans::Arrivals,
}

impl FleetOutcome {
    /// The lowest QoS the server granted any client; `None` without a QoS.
    pub fn lowest_granted_qos(&self) -> Option<u8> {
        [self.granted_qos0, self.granted_qos1, self.granted_qos2]
            .iter()
            .position(|&clients| clients > 0)
            .map(|level| level as u8)
    }

    /// Notes one client's granted QoS.
    pub fn granted(&mut self, qos: u8) {
        match qos {
            0 => self.granted_qos0 += 1,
            1 => self.granted_qos1 += 1,
            _ => self.granted_qos2 += 1,
        }
    }
}

/// What one fleet (in this process or in a worker) runs: clients `first..first + clients` of
/// the run. Client `i` subscribes to channel `i % channels` on endpoint `i % endpoints`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetSpec {
    pub transport: TransportPlan,
    pub endpoints: Vec<Endpoint>,
    pub first: usize,
    pub clients: u32,
    pub channels: u32,
    /// This fleet's share of the scenario's connect rate.
    pub connect_rate_per_s: f64,
    pub seqs: MeasuredSeqs,
    /// Distinguishes this run's client ids from an earlier run's on the same broker.
    pub run_id: u32,
    /// µs added to every receive time: a shard's offset to the publisher's clock (0 unsharded).
    #[serde(default)]
    pub clock_correction_us: i64,
    pub adapter: Adapter,
    /// How many faults the run schedules: the clients follow their spans.
    #[serde(default)]
    pub faults: usize,
}

/// The running clients of one fleet.
pub struct Fleet {
    tasks: JoinSet<FleetOutcome>,
    spawner: tokio::task::JoinHandle<JoinSet<FleetOutcome>>,
}

impl Fleet {
    /// Starts the spec's clients at its connect rate.
    pub fn start(spec: &FleetSpec, shared: Arc<Shared>) -> Fleet {
        crate::clock::set_correction_us(spec.clock_correction_us);
        let plan = Arc::new(spec.transport.clone());
        let adapter = Arc::new(spec.adapter.clone());
        let endpoints: Vec<Arc<Endpoint>> = spec.endpoints.iter().cloned().map(Arc::new).collect();
        let pace = Duration::from_secs_f64(1.0 / spec.connect_rate_per_s);
        let (first, clients, channels, run_id) =
            (spec.first, spec.clients, spec.channels, spec.run_id);
        let spawner = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            let mut ticks = tokio::time::interval(pace);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in first..first + clients as usize {
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
                    last_event_id: Default::default(),
                    validators: Default::default(),
                    adapter: Arc::clone(&adapter),
                    tls_sessions: Default::default(),
                    qos2_session: Default::default(),
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

    /// Waits for every client to end (they end by themselves or when `stop` is cancelled)
    /// and sums their outcomes, each client's fault arrivals sorted against `shared`'s spans
    /// (all known by now: faults end before the run does).
    pub async fn join(mut self, shared: &Shared) -> FleetOutcome {
        if let Ok(tasks) = self.spawner.await {
            self.tasks = tasks;
        }
        let mut outcome = FleetOutcome::default();
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok(mut client) = joined {
                let arrivals = std::mem::take(&mut client.arrivals);
                client.faults = shared
                    .spans
                    .sort(&arrivals, shared.window, shared.due_through());
                outcome += client;
            }
        }
        outcome
    }
}

fn spawn_client(
    tasks: &mut JoinSet<FleetOutcome>,
    spec: ClientSpec,
    shared: Arc<Shared>,
    i: usize,
) {
    fn go<T: Transport>(
        tasks: &mut JoinSet<FleetOutcome>,
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
        TransportPlan::Sse { .. } => go::<Sse>(tasks, spec, shared, i),
        TransportPlan::Websocket { .. } => go::<WebSocket>(tasks, spec, shared, i),
        TransportPlan::Mqtt(m) => match m.client {
            MqttClient::Rumqttc => go::<Mqtt>(tasks, spec, shared, i),
            MqttClient::Lean => go::<MqttLean>(tasks, spec, shared, i),
        },
    }
}

/// The clients of one transport run: in this process, or spread over worker processes.
pub enum Running {
    Local { fleet: Fleet, shared: Arc<Shared> },
    Workers(worker::Workers),
}

/// Everything the fleet measured, merged over workers.
pub struct Merged {
    pub outcome: FleetOutcome,
    pub latency: Histogram<u64>,
    pub counts: Counts,
    pub first_error: Option<String>,
    /// Worker processes used (0: the clients ran in this process).
    pub workers: u64,
    /// Workers that died or never reported: their clients' messages count as lost.
    pub workers_lost: u64,
    /// CPU seconds of the worker processes.
    pub workers_cpu_s: f64,
    /// Sum of the workers' peak RSS, and of what their clients added to it.
    pub workers_peak_rss_bytes: u64,
    pub workers_rss_added_bytes: u64,
    /// Measured messages each worker delivered, in worker order (0 for a lost worker).
    pub worker_delivered: Vec<u64>,
    /// Shards (machines) the run was split over (0: one machine), and the ones whose result
    /// is missing: their clients' messages count as lost.
    pub shards: u64,
    pub shards_lost: Vec<u32>,
}

impl Merged {
    pub fn new(latency: Histogram<u64>) -> Merged {
        Merged {
            outcome: FleetOutcome::default(),
            latency,
            counts: Counts::default(),
            first_error: None,
            workers: 0,
            workers_lost: 0,
            workers_cpu_s: 0.0,
            workers_peak_rss_bytes: 0,
            workers_rss_added_bytes: 0,
            worker_delivered: Vec::new(),
            shards: 0,
            shards_lost: Vec::new(),
        }
    }
}

impl Running {
    /// Runs `spec` here when it fits `per_worker`, or in `ceil(clients / per_worker)` worker
    /// processes of `exe` (each with an equal share of the clients and of the connect rate).
    pub fn start(
        spec: FleetSpec,
        per_worker: u32,
        exe: Option<&std::path::Path>,
        stop: CancellationToken,
    ) -> anyhow::Result<Running> {
        let Some(exe) = exe.filter(|_| spec.clients > per_worker) else {
            let shared = Arc::new(Shared::for_spec(&spec, stop));
            let fleet = Fleet::start(&spec, Arc::clone(&shared));
            return Ok(Running::Local { fleet, shared });
        };
        let workers = spec.clients.div_ceil(per_worker.max(1));
        let (base, extra) = (spec.clients / workers, spec.clients % workers);
        let mut first = spec.first;
        let specs = (0..workers)
            .map(|k| {
                let clients = base + u32::from(k < extra);
                let share = FleetSpec {
                    first,
                    clients,
                    connect_rate_per_s: spec.connect_rate_per_s * f64::from(clients)
                        / f64::from(spec.clients),
                    ..spec.clone()
                };
                first += clients as usize;
                share
            })
            .collect();
        Ok(Running::Workers(worker::Workers::start(exe, specs, stop)?))
    }

    pub fn counts(&self) -> Counts {
        match self {
            Running::Local { shared, .. } => shared.counts(),
            Running::Workers(workers) => workers.counts(),
        }
    }

    /// CPU seconds the worker processes have used so far; 0 for clients in this process
    /// (its own CPU is read by the caller).
    pub fn workers_cpu_s(&self) -> f64 {
        match self {
            Running::Local { .. } => 0.0,
            Running::Workers(workers) => workers.cpu_s(),
        }
    }

    /// Cuts every client off at once (see `Shared::cut`).
    pub fn cut(&self) {
        match self {
            Running::Local { shared, .. } => shared.cut.cancel(),
            Running::Workers(workers) => workers.cut(),
        }
    }

    /// Fault `k` began: the messages from `first` on are due while it lasts.
    pub fn fault_began(&self, k: usize, first: u64) {
        match self {
            Running::Local { shared, .. } => shared.spans.began(k, first),
            Running::Workers(workers) => workers.fault_began(k, first),
        }
    }

    /// Fault `k` ended at `ended_us`: the messages from `end` on are due after it.
    pub fn fault_ended(&self, k: usize, end: u64, ended_us: u64) {
        match self {
            Running::Local { shared, .. } => shared.spans.ended(k, end, ended_us),
            Running::Workers(workers) => workers.fault_ended(k, end, ended_us),
        }
    }

    /// Ends the run (the clients expect the measured messages up to `due_through`), waits
    /// for every client (or worker) to end, and merges what they measured.
    pub async fn finish(self, due_through: u64) -> anyhow::Result<Merged> {
        match self {
            Running::Local { fleet, shared } => {
                shared.end(due_through);
                Ok(Merged {
                    outcome: fleet.join(&shared).await,
                    counts: shared.counts(),
                    first_error: shared.first_error(),
                    ..Merged::new(shared.latency())
                })
            }
            Running::Workers(workers) => {
                let count = workers.shares.len() as u64;
                let reports = workers.finish(due_through).await;
                let mut merged = Merged {
                    workers: count,
                    ..Merged::new(new_histogram())
                };
                for report in reports {
                    let Some(r) = report else {
                        merged.workers_lost += 1;
                        merged.worker_delivered.push(0);
                        continue;
                    };
                    merged.worker_delivered.push(r.outcome.delivery.delivered);
                    merged.outcome += r.outcome;
                    merged
                        .latency
                        .add(crate::stats::decode_histogram(&r.latency_histogram)?)
                        .map_err(|e| anyhow::anyhow!("merging a worker's histogram: {e:?}"))?;
                    merged.counts += r.counts;
                    merged.first_error = merged.first_error.or(r.first_error);
                    merged.workers_cpu_s += r.cpu_s;
                    merged.workers_peak_rss_bytes += r.peak_rss_bytes;
                    merged.workers_rss_added_bytes +=
                        r.peak_rss_bytes.saturating_sub(r.rss_start_bytes);
                }
                Ok(merged)
            }
        }
    }
}
