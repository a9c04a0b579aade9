//! One run spread over several machines: `pushbench run SCENARIO --shard I/N` runs shard I's
//! share of the clients through the one pipeline (`runner::measure`) and writes a shard result;
//! `pushbench merge` adds the shard results up into one `RunResult`.
//!
//! The shards meet over a control connection (`control`): the publisher shard listens, the
//! others reach it by an address the engine gives (a headless Service's stable DNS name, or a
//! list), and it starts the warm-up once every shard's clients are in. Every shard measures
//! its clock's offset to the publisher's (`clock`) and corrects its latencies by it. The
//! target is external: every shard must reach the same server.

pub mod clock;
pub mod control;
pub mod merge;
pub mod result;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::observe::Observer;
use crate::plan::{Plan, RunPlan, TargetPlan, TransportPlan};
use crate::runner::{self, Coordination, RunOptions, Share};
use clock::{Best, ClockReport};
use control::{Hello, Listener, Peer};
use result::{Identity, ShardResult};

/// Clock exchanges made before the clients start; the best one sets the correction.
const EXCHANGES_BEFORE: u32 = 32;
/// How often a shard repeats the exchange while the run goes on.
const EXCHANGE_EVERY: Duration = Duration::from_secs(1);
/// Beyond the plan's warm-up, window and drain, how long a shard waits for the publisher's end.
const END_GRACE: Duration = Duration::from_secs(30);

/// `I/N`: shard I of N, counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardIndex {
    pub shard: u32,
    pub shards: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("--shard {0:?}: expected I/N with 0 <= I < N, e.g. 0/3 (the first of three shards)")]
pub struct BadShardIndex(String);

impl std::str::FromStr for ShardIndex {
    type Err = BadShardIndex;

    fn from_str(s: &str) -> Result<ShardIndex, BadShardIndex> {
        let bad = || BadShardIndex(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (shard, shards) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if shard >= shards {
            return Err(bad());
        }
        Ok(ShardIndex { shard, shards })
    }
}

impl ShardIndex {
    /// This shard's clients of `clients`: contiguous, the same on every machine, and together
    /// exactly all of them. With a publisher-only shard, the others share the clients.
    pub fn share(&self, clients: u32, publisher_only: Option<u32>) -> (usize, u32) {
        let (slot, slots) = match publisher_only {
            Some(p) if p == self.shard => return (0, 0),
            Some(p) => (self.shard - u32::from(self.shard > p), self.shards - 1),
            None => (self.shard, self.shards),
        };
        let at = |k: u32| (u64::from(clients) * u64::from(k) / u64::from(slots)) as usize;
        let first = at(slot);
        (first, (at(slot + 1) - first) as u32)
    }
}

/// The options of `run` that make it one shard of a run on several machines.
#[derive(Debug, Clone, clap::Args)]
pub struct ShardArgs {
    /// Run only shard I of N of the clients (counted from 0) and write a shard result, to be
    /// combined by `pushbench merge`. On Kubernetes, I is the Indexed Job's completion index.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<ShardIndex>,
    /// The shard that publishes the message stream and starts the others.
    #[arg(long, value_name = "K", default_value_t = 0, requires = "shard")]
    pub publisher: u32,
    /// The publisher shard runs no clients: the other shards share them, and publishing
    /// does not compete with clients for the publisher's cores.
    #[arg(long, requires = "shard")]
    pub publisher_only: bool,
    /// Every shard's control address, in shard order (HOST:PORT,…): shards reach the
    /// publisher's.
    #[arg(
        long,
        value_name = "ADDR,…",
        value_delimiter = ',',
        requires = "shard",
        conflicts_with = "peer_pattern"
    )]
    pub peers: Vec<String>,
    /// A shard's control address with `{i}` for its index, e.g. a headless Service's names:
    /// `pushbench-{i}.pushbench:7878`.
    #[arg(long, value_name = "PATTERN", requires = "shard")]
    pub peer_pattern: Option<String>,
    /// Where the publisher shard listens for the others: loopback by default (shards on one
    /// machine); on several machines, the machine's own address (the pod IP on Kubernetes).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:7878",
        requires = "shard"
    )]
    pub listen: String,
    /// How long the publisher waits for every shard's clients (and a shard for the
    /// publisher) before starting without the missing ones.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    pub barrier_timeout: Duration,
}

/// Why a scenario cannot run as shards.
#[derive(Debug, thiserror::Error)]
pub enum Unshardable {
    #[error(
        "a run of {0} shards needs an external target (`[target] kind = \"external\"`): every shard must reach the same server"
    )]
    EmbeddedTarget(u32),
    #[error("a shard runs one transport; the scenario selects {0}: pick one with --only")]
    Transports(usize),
    #[error("a Last Will run cannot be sharded: its cut is not coordinated across machines")]
    LastWill,
    #[error("--publisher {0}: the run has shards 0..{1}")]
    Publisher(u32, u32),
    #[error("--publisher-only needs at least 2 shards: one to publish, one for the clients")]
    PublisherOnly,
    #[error("shard {0} needs the publisher's address: give --peers or --peer-pattern")]
    NoPeers(u32),
    #[error("--peers lists {0} addresses; the publisher is shard {1}")]
    ShortPeers(usize, u32),
}

/// Runs shard `index` of `transports` (exactly one) and writes its result into `out`.
pub async fn run(
    plan: &Plan,
    scenario_path: &Path,
    transports: &[&RunPlan],
    (args, index): (&ShardArgs, ShardIndex),
    out: &Path,
    options: &RunOptions,
    observer: &dyn Observer,
) -> anyhow::Result<PathBuf> {
    let run = check(plan, transports, args, index)?;
    let scenario = std::fs::read_to_string(scenario_path)
        .with_context(|| format!("reading {}", scenario_path.display()))?;
    let hello = Hello {
        shard: index.shard,
        shards: index.shards,
        publisher: args.publisher,
        publisher_only: args.publisher_only,
        scenario: scenario.clone(),
        transport: run.label(),
    };
    let mut sharded = Sharded::join(plan, args, index, hello).await?;
    let m = runner::measure(plan, run, options, observer, &mut sharded).await?;
    let (first, clients) = index.share(plan.clients, sharded.publisher_only);
    let id = Identity {
        run_id: sharded.run_id,
        shard: index.shard,
        shards: index.shards,
        publisher: args.publisher,
        publisher_only: args.publisher_only,
        scenario,
        scenario_path: scenario_path.display().to_string(),
        transport: run.label(),
        first_client: first as u64,
        clients,
    };
    let clock = sharded.clock_report();
    let whole = sharded.publishes() || sharded.ended_by_publisher;
    let mut result = ShardResult::new(id, m, sharded.started_with, clock)?;
    result.complete &= whole;
    result.gone_before_end = sharded.gone_before_end;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("shard-{}-of-{}.json", index.shard, index.shards));
    std::fs::write(&path, serde_json::to_vec_pretty(&result)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn check<'p>(
    plan: &Plan,
    transports: &[&'p RunPlan],
    args: &ShardArgs,
    index: ShardIndex,
) -> Result<&'p RunPlan, Unshardable> {
    let [run] = transports else {
        return Err(Unshardable::Transports(transports.len()));
    };
    if index.shards > 1 && plan.target == TargetPlan::Embedded {
        return Err(Unshardable::EmbeddedTarget(index.shards));
    }
    if matches!(&run.transport, TransportPlan::Mqtt(m) if m.last_will.is_some()) {
        return Err(Unshardable::LastWill);
    }
    if args.publisher >= index.shards {
        return Err(Unshardable::Publisher(args.publisher, index.shards));
    }
    if args.publisher_only && index.shards < 2 {
        return Err(Unshardable::PublisherOnly);
    }
    Ok(run)
}

/// The publisher's control address, from `--peers` or `--peer-pattern`.
fn publisher_addr(args: &ShardArgs, index: ShardIndex) -> Result<String, Unshardable> {
    if let Some(pattern) = &args.peer_pattern {
        return Ok(pattern.replace("{i}", &args.publisher.to_string()));
    }
    if args.peers.is_empty() {
        return Err(Unshardable::NoPeers(index.shard));
    }
    args.peers
        .get(args.publisher as usize)
        .cloned()
        .ok_or(Unshardable::ShortPeers(args.peers.len(), args.publisher))
}

enum Role {
    Publisher(Listener),
    Peer(Peer),
}

/// A shard's side of the run's coordination.
struct Sharded {
    index: ShardIndex,
    /// The publisher's index, if it runs no clients.
    publisher_only: Option<u32>,
    role: Role,
    run_id: u32,
    best: Arc<Mutex<Best>>,
    correction_us: i64,
    barrier_timeout: Duration,
    /// How long after the start a shard waits for the publisher's end.
    run_for: Duration,
    started_with: Vec<u32>,
    /// The publisher's: shards whose control connection ended before publishing did.
    gone_before_end: Vec<u32>,
    /// A shard's: the publisher said `end` (a shard that stopped at its deadline, or when
    /// the publisher went away, saw only part of the run).
    ended_by_publisher: bool,
}

impl Sharded {
    async fn join(
        plan: &Plan,
        args: &ShardArgs,
        index: ShardIndex,
        hello: Hello,
    ) -> anyhow::Result<Sharded> {
        let best = Arc::new(Mutex::new(Best::default()));
        let (role, run_id) = if index.shard == args.publisher {
            let run_id = rand::random();
            (
                Role::Publisher(Listener::start(&args.listen, hello, run_id).await?),
                run_id,
            )
        } else {
            let addr = publisher_addr(args, index)?;
            let deadline = Instant::now() + args.barrier_timeout;
            let mut peer = Peer::join(&addr, hello, deadline).await?;
            peer.exchange(EXCHANGES_BEFORE, &best).await;
            let run_id = peer.run_id;
            (Role::Peer(peer), run_id)
        };
        let (correction_us, exchanges) = {
            let best = best.lock().unwrap_or_else(|e| e.into_inner());
            (best.correction_us(), best.report(0).exchanges)
        };
        if matches!(role, Role::Peer(_)) && exchanges == 0 {
            bail!("no clock exchange with the publisher succeeded");
        }
        Ok(Sharded {
            index,
            publisher_only: args.publisher_only.then_some(args.publisher),
            role,
            run_id,
            best,
            correction_us,
            barrier_timeout: args.barrier_timeout,
            run_for: plan.warmup + plan.duration + plan.drain + END_GRACE,
            started_with: Vec::new(),
            gone_before_end: Vec::new(),
            ended_by_publisher: false,
        })
    }

    fn clock_report(&self) -> ClockReport {
        match self.role {
            Role::Publisher(_) => ClockReport {
                offset_us: 0.0,
                uncertainty_us: 0.0,
                correction_us: 0,
                exchanges: 0,
            },
            Role::Peer(_) => self
                .best
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .report(self.correction_us),
        }
    }
}

impl Coordination for Sharded {
    fn share(&self, plan: &Plan) -> Share {
        let (first, clients) = self.index.share(plan.clients, self.publisher_only);
        Share {
            first,
            clients,
            run_id: self.run_id,
            clock_correction_us: self.correction_us,
        }
    }

    fn publishes(&self) -> bool {
        matches!(self.role, Role::Publisher(_))
    }

    async fn ramped(&mut self, connected: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.barrier_timeout;
        match &mut self.role {
            Role::Publisher(listener) => {
                let others = self.index.shards as usize - 1;
                let mut arrived = listener.barrier(others, deadline).await;
                if arrived.len() < others {
                    eprintln!(
                        "warning: {} of {others} shards did not arrive within {:?}; starting without them",
                        others - arrived.len(),
                        self.barrier_timeout
                    );
                }
                arrived.push(self.index.shard);
                arrived.sort_unstable();
                self.started_with = arrived;
                Ok(())
            }
            Role::Peer(peer) => peer.ready(connected, deadline).await,
        }
    }

    async fn published(&mut self, due_through: u64) {
        if let Role::Publisher(listener) = &mut self.role {
            self.gone_before_end = listener.end(due_through).await;
            if !self.gone_before_end.is_empty() {
                eprintln!(
                    "warning: shard(s) {:?} left before the end of publishing",
                    self.gone_before_end
                );
            }
        }
    }

    async fn until_published(&mut self, stop: &CancellationToken) -> u64 {
        let Role::Peer(peer) = &mut self.role else {
            return u64::MAX;
        };
        let deadline = Instant::now() + self.run_for;
        while !stop.is_cancelled() && peer.is_open() && Instant::now() < deadline {
            let next = (Instant::now() + EXCHANGE_EVERY).min(deadline);
            if let Some(due) = peer.ended(next).await {
                self.ended_by_publisher = true;
                return due;
            }
            peer.exchange(1, &self.best).await;
        }
        eprintln!("warning: no end from the publisher; this shard stops with everything due");
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_client_once_in_order() {
        for publisher_only in [None, Some(0), Some(1)] {
            for (clients, shards) in [(10, 3), (3, 3), (2, 3), (100_000, 7)] {
                let mut next = 0;
                for shard in 0..shards {
                    let (first, count) =
                        ShardIndex { shard, shards }.share(clients, publisher_only);
                    if Some(shard) == publisher_only {
                        assert_eq!(count, 0);
                        continue;
                    }
                    assert_eq!(first, next);
                    next += count as usize;
                }
                assert_eq!(next, clients as usize);
            }
        }
        let (second, third) = (
            ShardIndex {
                shard: 1,
                shards: 3,
            },
            ShardIndex {
                shard: 2,
                shards: 3,
            },
        );
        assert_eq!(second.share(10, None), (3, 3));
        assert_eq!(third.share(10, Some(0)), (5, 5));
        assert_eq!("2/3".parse::<ShardIndex>().unwrap().shard, 2);
        for bad in ["3/3", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<ShardIndex>().is_err(), "{bad}");
        }
    }
}
