//! Conditions as kernel state inside the link namespace, on a kernel without netem: rate by
//! `tbf` on each direction's outgoing interface, random loss by iptables' `statistic` match,
//! delay and jitter by handing packets to the userspace queue (`delay.rs`) through NFQUEUE.
//! Faults are rules in a chain of their own, in front of the shaping.

use super::command::Cmd;
use super::conditions::{Conditions, Direction};
use super::netns::Names;

/// The chain scheduled faults put their rules in (consulted first).
pub const FAULT_CHAIN: &str = "pb-fault";
/// The chain holding loss and the delay queues.
pub const SHAPE_CHAIN: &str = "pb-shape";

/// NFQUEUE numbers of the two directions (queues are per namespace).
pub const UP_QUEUE: u16 = 0;
pub const DOWN_QUEUE: u16 = 1;

/// How long a `tbf` queue may hold packets before it drops (a modem's buffer).
const TBF_LATENCY_MS: u64 = 500;

/// iptables, legacy where installed: the nft-backed one on some kernels lacks the `queue`
/// statement NFQUEUE needs.
pub fn iptables() -> &'static str {
    static BIN: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let legacy = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("iptables-legacy").is_file())
        });
        if legacy {
            "iptables-legacy"
        } else {
            "iptables"
        }
    })
}

/// One direction: where its packets enter the link namespace and where they leave it.
pub struct Way {
    pub conditions: Direction,
    pub enters: String,
    pub leaves: String,
    pub queue: u16,
}

/// The two directions of link `n` with `c`.
pub fn ways(n: &Names, c: &Conditions) -> [Way; 2] {
    [
        Way {
            conditions: c.up,
            enters: n.link_fleet_if(),
            leaves: n.link_target_if(),
            queue: UP_QUEUE,
        },
        Way {
            conditions: c.down,
            enters: n.link_target_if(),
            leaves: n.link_fleet_if(),
            queue: DOWN_QUEUE,
        },
    ]
}

/// The chains (always), and for each direction its rate, loss and delay queue.
/// `userspace_delay` is false where netem does the delaying (`netem.rs`).
pub fn commands(n: &Names, c: &Conditions, ipt: &str, userspace_delay: bool) -> Vec<Cmd> {
    let ns = n.link_ns();
    let rule = |args: &[&str]| Cmd::new(ipt, args).within(&ns);
    let mut cmds = vec![
        rule(&["-N", FAULT_CHAIN]),
        rule(&["-N", SHAPE_CHAIN]),
        rule(&["-A", "FORWARD", "-j", FAULT_CHAIN]),
        rule(&["-A", "FORWARD", "-j", SHAPE_CHAIN]),
    ];
    for way in ways(n, c) {
        let d = way.conditions;
        if let Some(rate) = d.rate_bps.filter(|_| userspace_delay) {
            cmds.push(tbf(&way.leaves, rate).within(&ns));
        }
        if d.loss > 0.0 && userspace_delay {
            let p = format!("{:.6}", d.loss);
            cmds.push(rule(&[
                "-A",
                SHAPE_CHAIN,
                "-i",
                &way.enters,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ]));
        }
        if d.delays() && userspace_delay {
            let q = way.queue.to_string();
            cmds.push(rule(&[
                "-A",
                SHAPE_CHAIN,
                "-i",
                &way.enters,
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
                "--queue-bypass",
            ]));
        }
    }
    cmds
}

/// A token bucket of `rate` bit/s with a burst of 10 ms of it (at least two full frames).
fn tbf(dev: &str, rate: u64) -> Cmd {
    let burst = (rate / 8 / 100).max(3028);
    Cmd::new(
        "tc",
        &[
            "qdisc",
            "add",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            &format!("{rate}bit"),
            "burst",
            &burst.to_string(),
            "latency",
            &format!("{TBF_LATENCY_MS}ms"),
        ],
    )
}

/// Every packet of both directions dropped (`on`), or the fault chain emptied again.
pub fn blackhole(n: &Names, ipt: &str, on: bool) -> Cmd {
    let args: &[&str] = if on {
        &["-A", FAULT_CHAIN, "-j", "DROP"]
    } else {
        &["-F", FAULT_CHAIN]
    };
    Cmd::new(ipt, args).within(&n.link_ns())
}

/// Resets every established TCP connection between the target and the fleet at once: the
/// kernel aborts each socket and sends its peer a RST (`ss -K`, SOCK_DESTROY). Connections
/// over the backstage path (the publisher's) are left alone.
pub fn cut(n: &Names) -> Cmd {
    let fleet = format!("{}/32", n.fleet_ip());
    Cmd::new("ss", &["-K", "-t", "state", "established", "dst", &fleet]).within(&n.target_ns())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn loss_and_delay_become_rules_of_the_direction_they_apply_to() {
        let n = Names { pid: 9, slot: 2 };
        let mut c = Conditions::default();
        c.up.loss = 0.02;
        c.down.delay = Duration::from_millis(50);
        c.down.rate_bps = Some(1_000_000);
        let lines: Vec<String> = commands(&n, &c, "iptables", true)
            .iter()
            .map(ToString::to_string)
            .collect();
        let ns = "ip netns exec pb-9-2-link";
        assert_eq!(
            lines[4..],
            [
                format!(
                    "{ns} iptables -A pb-shape -i pb2l -m statistic --mode random \
                     --probability 0.020000 -j DROP"
                ),
                format!(
                    "{ns} tc qdisc add dev pb2l root tbf rate 1000000bit burst 3028 latency 500ms"
                ),
                format!(
                    "{ns} iptables -A pb-shape -i pb2m -j NFQUEUE --queue-num 1 --queue-bypass"
                ),
            ]
        );
    }
}
