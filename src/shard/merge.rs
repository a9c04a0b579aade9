//! `pushbench merge`: shard results added up into the one `RunResult` a single machine would
//! have produced (sums of counts and bytes, merged histograms), built by the same code as any
//! run (`runner::build::build_result`). Shards of different runs or plans are refused; a
//! missing shard is named, and its clients' messages count as lost.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::result::{FORMAT, ShardResult};
use crate::fleet::Merged;
use crate::plan::Plan;
use crate::result::RunResult;
use crate::runner::build::{ConnectCost, Cost, Measured, Stimulus, build_result};
use crate::scenario;
use crate::stats::new_histogram;

/// Why shard results do not make one run.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    #[error("{0}: format {1}, this pushbench reads format {FORMAT}")]
    Format(PathBuf, u32),
    #[error("{0} is from run {1:08x}, {2} from run {3:08x}: shards of different runs")]
    Run(PathBuf, u32, PathBuf, u32),
    #[error("{0} and {1} ran different scenarios, transports or shard counts")]
    Plan(PathBuf, PathBuf),
    #[error("{0} and {1} are both shard {2}")]
    Duplicate(PathBuf, PathBuf, u32),
    #[error(
        "the publisher's result (shard {0}) is missing: without it nothing says what was published"
    )]
    NoPublisher(u32),
    #[error("the scenario in the shard results has no transport {0:?}")]
    Transport(String),
}

/// The merged run, with the plan its thresholds are judged by, and the shards that are
/// missing.
pub struct MergedRun {
    pub plan: Plan,
    pub result: RunResult,
    pub missing: Vec<u32>,
    /// Shards the publisher saw leave before the end of publishing.
    pub left_mid_run: Vec<u32>,
}

/// Reads and merges the shard results at `paths`; `max_clock_uncertainty_us` marks the
/// latency as uncertain beyond it.
pub fn merge_files(paths: &[PathBuf], max_clock_uncertainty_us: f64) -> anyhow::Result<MergedRun> {
    let shards = paths
        .iter()
        .map(|p| read(p).map(|s| (p.clone(), s)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    check(&shards)?;
    let (first_path, first) = &shards[0];
    let n = first.shards;
    let publisher = shards
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.shard == s.publisher)
        .ok_or(Mismatch::NoPublisher(first.publisher))?;
    let plan = scenario::parse(&first.scenario, &first.scenario_path)
        .with_context(|| format!("reading the scenario inside {}", first_path.display()))?;
    // By the run label: `websocket` and `websocket+tls` are two runs of one kind.
    let run = plan
        .transports
        .iter()
        .find(|run| run.label() == first.transport)
        .ok_or_else(|| Mismatch::Transport(first.transport.clone()))?;
    let mut by_shard: Vec<Option<&ShardResult>> = vec![None; n as usize];
    for (_, s) in &shards {
        by_shard[s.shard as usize] = Some(s);
    }
    let missing: Vec<u32> = (0..n).filter(|&k| by_shard[k as usize].is_none()).collect();
    let present: Vec<&ShardResult> = by_shard.iter().flatten().copied().collect();
    let mut fleet = Merged {
        shards: u64::from(n),
        shards_lost: missing.clone(),
        ..Merged::new(new_histogram())
    };
    for s in &present {
        add(&mut fleet, s.fleet()?)?;
    }
    let measured = Measured {
        seqs: publisher.seqs,
        due_through: publisher.due_through,
        fleet,
        stimulus: Stimulus::Stream(publisher.published.clone().unwrap_or_default()),
        connect_s: present.iter().map(|s| s.connect_s).fold(0.0, f64::max),
        hub: publisher.hub.clone(),
        exited_shards: publisher.exited_target_shards.clone(),
        complete: missing.is_empty() && present.iter().all(|s| s.complete),
        endpoints: publisher.endpoints,
    };
    let cost = Cost {
        fleet_cpu_s: present.iter().map(|s| s.cost.fleet_cpu_s).sum(),
        fleet_peak_rss_bytes: present.iter().map(|s| s.cost.fleet_peak_rss_bytes).sum(),
        fleet_rss_added_bytes: present.iter().map(|s| s.cost.fleet_rss_added_bytes).sum(),
        // Every shard's fleet against every shard's cores: one machine's share alone would
        // call a fleet of three machines saturated on one machine's cores.
        machine_cores: present.iter().map(|s| s.cost.machine_cores).sum(),
        connect: ConnectCost {
            connections: present.iter().map(|s| s.cost.connect.connections).sum(),
            fleet_cpu_s: present.iter().map(|s| s.cost.connect.fleet_cpu_s).sum(),
            target_cpu_s: publisher.cost.connect.target_cpu_s,
        },
        // The target is one server for all shards: the publisher's reading of it.
        ..publisher.cost.clone()
    };
    let mut result = build_result(
        &plan,
        run,
        publisher.target.clone(),
        publisher.started_at.clone(),
        &measured,
        &cost,
    )?;
    per_shard(&mut result, &by_shard, max_clock_uncertainty_us);
    Ok(MergedRun {
        plan,
        result,
        missing,
        left_mid_run: publisher.gone_before_end.clone(),
    })
}

fn read(path: &Path) -> anyhow::Result<ShardResult> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let shard: ShardResult = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a shard result", path.display()))?;
    if shard.format != FORMAT {
        return Err(Mismatch::Format(path.to_path_buf(), shard.format).into());
    }
    Ok(shard)
}

/// Every result must come from the same run of the same plan, each shard once.
fn check(shards: &[(PathBuf, ShardResult)]) -> Result<(), Mismatch> {
    let Some((p0, s0)) = shards.first() else {
        return Ok(());
    };
    for (i, (p, s)) in shards.iter().enumerate() {
        if s.run_id != s0.run_id {
            return Err(Mismatch::Run(p0.clone(), s0.run_id, p.clone(), s.run_id));
        }
        let plan = |s: &ShardResult| {
            (
                s.scenario.clone(),
                s.transport.clone(),
                s.shards,
                s.publisher,
                s.publisher_only,
            )
        };
        if plan(s) != plan(s0) {
            return Err(Mismatch::Plan(p0.clone(), p.clone()));
        }
        if let Some((q, _)) = shards[..i].iter().find(|(_, t)| t.shard == s.shard) {
            return Err(Mismatch::Duplicate(q.clone(), p.clone(), s.shard));
        }
    }
    Ok(())
}

/// Adds one shard's fleet to the run's, as the coordinator adds a worker's.
fn add(into: &mut Merged, shard: Merged) -> anyhow::Result<()> {
    into.outcome += shard.outcome;
    into.latency
        .add(&shard.latency)
        .map_err(|e| anyhow::anyhow!("merging a shard's histogram: {e:?}"))?;
    into.counts += shard.counts;
    into.first_error = into.first_error.take().or(shard.first_error);
    into.workers += shard.workers;
    into.workers_lost += shard.workers_lost;
    into.workers_cpu_s += shard.workers_cpu_s;
    into.workers_peak_rss_bytes += shard.workers_peak_rss_bytes;
    into.workers_rss_added_bytes += shard.workers_rss_added_bytes;
    into.worker_delivered.extend(shard.worker_delivered);
    Ok(())
}

/// The per-shard columns: cost, deliveries and clock of each shard, in shard order.
fn per_shard(r: &mut RunResult, by_shard: &[Option<&ShardResult>], max_uncertainty_us: f64) {
    fn each<T>(by_shard: &[Option<&ShardResult>], f: impl Fn(&ShardResult) -> T) -> Vec<Option<T>> {
        by_shard.iter().map(|s| s.map(&f)).collect()
    }
    r.shards = by_shard.len() as u64;
    r.shards_lost = by_shard
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(k, _)| k as u64)
        .collect();
    r.shard_fleet_cpu_s = each(by_shard, |s| s.cost.fleet_cpu_s);
    r.shard_fleet_peak_rss_bytes = each(by_shard, |s| s.cost.fleet_peak_rss_bytes);
    r.shard_delivered = each(by_shard, |s| s.outcome.delivery.delivered);
    r.shard_clock_offset_us = each(by_shard, |s| s.clock.offset_us);
    r.shard_clock_uncertainty_us = each(by_shard, |s| s.clock.uncertainty_us);
    r.clock_uncertainty_us = by_shard
        .iter()
        .flatten()
        .map(|s| s.clock.latency_uncertainty_us())
        .fold(0.0, f64::max);
    r.latency_clock_uncertain = r.clock_uncertainty_us > max_uncertainty_us;
}
