//! The link between the fleet and the target when a scenario has `[network]`: namespaces,
//! conditions (netem where the kernel has it, else rate by tbf, loss by iptables and delay by
//! pushbench's own NFQUEUE delay line), and the faults a run schedules.
//!
//! `Link` owns it all: created by `Link::up`, torn down when dropped. Everything is named
//! `pb-<pid>-<slot>-…`, and `up` first deletes what a crashed earlier run left (namespaces
//! whose process is gone), so an interrupted run never leaves a link behind for long.

pub mod check;
pub mod command;
pub mod conditions;
mod delay;
pub mod hold;
pub mod netem;
pub mod netns;
pub mod shaping;
pub mod throughput;

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use command::LinkError;
use command::{Cmd, run_all};
pub use conditions::{Conditions, Direction};
use delay::DelayLine;
use netns::Names;

/// How many links may exist at once on one machine (one per slot, each its own subnets).
const SLOTS: u16 = 256;

/// How many of the target's addresses `link up` prints.
const TARGET_ADDRESSES_SHOWN: usize = 4;

/// How long teardown waits for the kernel to remove the root namespace's ends.
const TEARDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A live link; dropping it removes its namespaces and everything in them.
pub struct Link {
    names: Names,
    pub conditions: Conditions,
    /// Whether the kernel's netem shapes the link (otherwise tbf, iptables and the delay line).
    pub netem: bool,
    delay_lines: Vec<DelayLine>,
}

/// What a result records about its link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub conditions: Conditions,
    /// `netem`, or `tbf+iptables+nfqueue` (this machine's way without netem).
    pub emulator: String,
    /// Packets the userspace delay line held and released (0 under netem).
    pub delayed_packets: u64,
}

impl Link {
    /// Creates the namespaces and applies `conditions`. Needs `CAP_NET_ADMIN`.
    pub fn up(conditions: &Conditions) -> anyhow::Result<Link> {
        if !command::has_net_admin() {
            return Err(LinkError::NotRoot.into());
        }
        let names = create_in_free_slot()?;
        let mut link = Link {
            names,
            conditions: conditions.clone(),
            netem: false,
            delay_lines: Vec::new(),
        };
        link.netem = netem::available(&link.names);
        if link.netem {
            run_all(&netem::commands(&link.names, conditions))?;
        }
        let ipt = shaping::iptables();
        run_all(&shaping::commands(
            &link.names,
            conditions,
            ipt,
            !link.netem,
        ))?;
        if !link.netem {
            for way in shaping::ways(&link.names, conditions) {
                if way.conditions.delays() {
                    let line = DelayLine::start(&link.names.link_ns(), way.queue, way.conditions)?;
                    link.delay_lines.push(line);
                }
            }
        }
        Ok(link)
    }

    /// The namespace the target runs in.
    pub fn target_ns(&self) -> String {
        self.names.target_ns()
    }

    /// The fleet's end of the link (in the root namespace), for its interface counters.
    pub fn fleet_if(&self) -> String {
        self.names.fleet_if()
    }

    /// The `k`-th of the target's addresses as the fleet reaches it (through the link).
    pub fn target_ip(&self, k: usize) -> Ipv4Addr {
        self.names.target_ip(k)
    }

    /// The target's address on the side path that bypasses the link: the publisher and the
    /// run's own bookkeeping (hub counters) use it, as a server's own back end would.
    pub fn backstage_ip(&self) -> Ipv4Addr {
        self.names.backstage_target_ip()
    }

    /// Where the fleet's `k`-th endpoint is: the same port as the backstage `addr`, on one
    /// of the target's link addresses.
    pub fn through_link(&self, k: usize, addr: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.target_ip(k).into(), addr.port())
    }

    /// Starts (`on`) or ends a blackhole: every packet of both directions dropped.
    pub fn blackhole(&self, on: bool) -> Result<(), LinkError> {
        shaping::blackhole(&self.names, shaping::iptables(), on)
            .run()
            .map(drop)
    }

    /// Resets every established connection of the target at once.
    pub fn cut(&self) -> Result<(), LinkError> {
        shaping::cut(&self.names).run().map(drop)
    }

    pub fn record(&self) -> LinkRecord {
        LinkRecord {
            conditions: self.conditions.clone(),
            emulator: if self.netem {
                "netem"
            } else {
                "tbf+iptables+nfqueue"
            }
            .to_string(),
            delayed_packets: self.delay_lines.iter().map(DelayLine::released).sum(),
        }
    }

    /// What crossed the link, per direction, until `stop` (see `throughput`).
    pub async fn throughput(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<throughput::Throughput> {
        throughput::count(&self.fleet_if(), stop).await
    }

    /// What the target's TCP connections measure of the link now.
    pub fn tcp_health(&self) -> Result<check::TcpHealth, LinkError> {
        check::tcp_health(&self.names.target_ns())
    }

    /// `tc -s qdisc` and `iptables -S` of the link namespace: what the kernel holds.
    pub fn kernel_state(&self) -> Result<String, LinkError> {
        let ns = self.names.link_ns();
        let qdiscs = Cmd::new("tc", &["-s", "qdisc", "show"]).within(&ns).run()?;
        let rules = Cmd::new(shaping::iptables(), &["-S"]).within(&ns).run()?;
        Ok(format!("{qdiscs}\n{rules}"))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The delay lines first: they give back what they hold before the queues vanish.
        self.delay_lines.clear();
        for cmd in netns::destroy(&self.names) {
            if let Err(e) = cmd.run() {
                eprintln!("warning: tearing down the link: {e}");
            }
        }
        // The kernel destroys a deleted namespace's devices a moment later: wait for the
        // root ends to go, so that "torn down" means gone.
        let deadline = std::time::Instant::now() + TEARDOWN_WAIT;
        let gone = |dev: String| !std::path::Path::new("/sys/class/net").join(dev).exists();
        while std::time::Instant::now() < deadline
            && !(gone(self.names.fleet_if()) && gone(self.names.backstage_if()))
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Deletes the `pb-` namespaces whose owning process is gone; returns their names.
pub fn clean_leftovers() -> Result<Vec<String>, LinkError> {
    let listed = Cmd::new("ip", &["netns", "list"]).run()?;
    let mut removed = Vec::new();
    for (name, pid, _) in netns::existing(&listed) {
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Another process cleaning at the same moment may have deleted it first.
        match Cmd::new("ip", &["netns", "delete", &name]).run() {
            Ok(_) => removed.push(name),
            Err(_) if !std::path::Path::new("/run/netns").join(&name).exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Builds the topology in the first slot no live link uses; a slot another process takes at
/// the same moment makes `ip` fail, and the next slot is tried.
fn create_in_free_slot() -> anyhow::Result<Names> {
    // Threads of one process share its pid in the names: they take slots one at a time.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = CREATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    clean_leftovers().context("removing links left by earlier runs")?;
    let listed = Cmd::new("ip", &["netns", "list"]).run()?;
    let taken: Vec<u8> = netns::existing(&listed).iter().map(|e| e.2).collect();
    let mut last_error = None;
    for slot in (0..SLOTS).filter_map(|s| u8::try_from(s).ok()) {
        if taken.contains(&slot) {
            continue;
        }
        let names = Names {
            pid: std::process::id(),
            slot,
        };
        match run_all(&netns::create(&names)) {
            Ok(()) => return Ok(names),
            Err(e) => {
                // Only namespaces of this pid are deleted: another process's interfaces that
                // made `ip link add` fail are not touched.
                for cmd in netns::destroy(&names) {
                    let _ = cmd.run();
                }
                let taken_elsewhere = e.to_string().contains("File exists");
                last_error = Some(e);
                if !taken_elsewhere {
                    break;
                }
            }
        }
    }
    Err(last_error.map_or_else(
        || anyhow::anyhow!("every link slot is taken"),
        anyhow::Error::from,
    ))
    .context("creating the link's namespaces")
}
