//! A shard result: everything one shard counted, raw (counts, bytes, the serialized
//! histogram, its cost and its clock), so that `merge` can add shards up exactly and build the
//! one `RunResult` with the same code as a run on one machine.

use serde::{Deserialize, Serialize};

use super::clock::ClockReport;
use crate::fleet::{Counts, FleetOutcome, MeasuredSeqs, Merged};
use crate::publisher::PublishOutcome;
use crate::runner::Measurement;
use crate::runner::build::{Cost, Stimulus};
use crate::stats;
use crate::targets::hub::HubStats;

/// Bumped when the format changes: `merge` refuses results of another format.
pub const FORMAT: u32 = 1;

/// One shard's part of one transport run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardResult {
    pub format: u32,
    /// Shared by every shard of the run (chosen by the publisher).
    pub run_id: u32,
    pub shard: u32,
    pub shards: u32,
    pub publisher: u32,
    /// The publisher ran no clients.
    pub publisher_only: bool,
    /// The scenario file's text and path: `merge` rebuilds the plan from it, and refuses
    /// shards whose text differs.
    pub scenario: String,
    pub scenario_path: String,
    pub transport: String,
    /// This shard's clients: `first_client..first_client + clients` of the plan's.
    pub first_client: u64,
    pub clients: u32,
    pub target: String,
    pub started_at: String,
    pub seqs: MeasuredSeqs,
    pub due_through: u64,
    pub connect_s: f64,
    pub complete: bool,
    pub endpoints: u64,
    pub outcome: FleetOutcome,
    pub counts: Counts,
    /// HdrHistogram V2 + deflate, base64, on the publisher's clock.
    pub latency_histogram: String,
    pub first_error: Option<String>,
    pub workers: u64,
    pub workers_lost: u64,
    pub workers_cpu_s: f64,
    pub workers_peak_rss_bytes: u64,
    pub workers_rss_added_bytes: u64,
    pub worker_delivered: Vec<u64>,
    pub cost: Cost,
    /// The publisher shard's only: what it published, the target's counters and health.
    pub published: Option<PublishOutcome>,
    pub hub: Option<HubStats>,
    pub exited_target_shards: Vec<String>,
    /// The shards that reached the start barrier, and those whose control connection ended
    /// before publishing did (the publisher's result only).
    pub started_with: Vec<u32>,
    pub gone_before_end: Vec<u32>,
    pub clock: ClockReport,
}

/// Who this shard is, for its result.
pub struct Identity {
    pub run_id: u32,
    pub shard: u32,
    pub shards: u32,
    pub publisher: u32,
    pub publisher_only: bool,
    pub scenario: String,
    pub scenario_path: String,
    pub transport: String,
    pub first_client: u64,
    pub clients: u32,
}

impl ShardResult {
    pub fn new(
        id: Identity,
        m: Measurement,
        started_with: Vec<u32>,
        clock: ClockReport,
    ) -> anyhow::Result<ShardResult> {
        let measured = m.measured;
        let fleet = measured.fleet;
        let published = match measured.stimulus {
            Stimulus::Stream(p) if id.shard == id.publisher => Some(p),
            _ => None,
        };
        let publisher = id.shard == id.publisher;
        Ok(ShardResult {
            format: FORMAT,
            run_id: id.run_id,
            shard: id.shard,
            shards: id.shards,
            publisher: id.publisher,
            publisher_only: id.publisher_only,
            scenario: id.scenario,
            scenario_path: id.scenario_path,
            transport: id.transport,
            first_client: id.first_client,
            clients: id.clients,
            target: m.target,
            started_at: m.started_at,
            seqs: measured.seqs,
            due_through: measured.due_through,
            connect_s: measured.connect_s,
            complete: measured.complete,
            endpoints: measured.endpoints,
            latency_histogram: stats::encode_histogram(&fleet.latency)?,
            outcome: fleet.outcome,
            counts: fleet.counts,
            first_error: fleet.first_error,
            workers: fleet.workers,
            workers_lost: fleet.workers_lost,
            workers_cpu_s: fleet.workers_cpu_s,
            workers_peak_rss_bytes: fleet.workers_peak_rss_bytes,
            workers_rss_added_bytes: fleet.workers_rss_added_bytes,
            worker_delivered: fleet.worker_delivered,
            cost: m.cost,
            published,
            hub: measured.hub.filter(|_| publisher),
            exited_target_shards: if publisher {
                measured.exited_shards
            } else {
                Vec::new()
            },
            started_with,
            gone_before_end: Vec::new(),
            clock,
        })
    }

    /// This shard's fleet, as the run's `Merged` would hold it.
    pub fn fleet(&self) -> anyhow::Result<Merged> {
        Ok(Merged {
            outcome: self.outcome.clone(),
            counts: self.counts,
            first_error: self.first_error.clone(),
            workers: self.workers,
            workers_lost: self.workers_lost,
            workers_cpu_s: self.workers_cpu_s,
            workers_peak_rss_bytes: self.workers_peak_rss_bytes,
            workers_rss_added_bytes: self.workers_rss_added_bytes,
            worker_delivered: self.worker_delivered.clone(),
            ..Merged::new(stats::decode_histogram(&self.latency_histogram)?)
        })
    }
}
