//! The netem path, for kernels that have `sch_netem` (most distributions' do; this project's
//! CI machine does not): each direction is one netem qdisc on the interface its packets leave
//! the link namespace by, doing delay, jitter, loss and rate at once.

use super::command::Cmd;
use super::conditions::{Conditions, Direction};
use super::netns::Names;
use super::shaping::ways;

/// Whether the kernel has netem: adds one to the link namespace's fleet-side interface and
/// takes it away again.
pub fn available(n: &Names) -> bool {
    let dev = n.link_fleet_if();
    let add = Cmd::new(
        "tc",
        &["qdisc", "add", "dev", &dev, "root", "netem", "delay", "0ms"],
    )
    .within(&n.link_ns());
    let ok = add.run().is_ok();
    if ok {
        let _ = Cmd::new("tc", &["qdisc", "del", "dev", &dev, "root"])
            .within(&n.link_ns())
            .run();
    }
    ok
}

/// The qdiscs netem needs for `c`: one per direction that has any condition.
pub fn commands(n: &Names, c: &Conditions) -> Vec<Cmd> {
    ways(n, c)
        .iter()
        .filter_map(|way| {
            let args = netem_args(&way.conditions)?;
            let mut argv = vec!["qdisc", "add", "dev", &way.leaves, "root", "netem"];
            argv.extend(args.iter().map(String::as_str));
            Some(Cmd::new("tc", &argv).within(&n.link_ns()))
        })
        .collect()
}

/// netem's arguments for one direction; `None` when it leaves packets alone.
fn netem_args(d: &Direction) -> Option<Vec<String>> {
    let mut args = Vec::new();
    if d.delays() {
        args.extend(["delay".into(), format!("{}us", d.delay.as_micros())]);
        if !d.jitter.is_zero() {
            args.push(format!("{}us", d.jitter.as_micros()));
        }
        if d.reorder > 0.0 {
            args.extend(["reorder".into(), format!("{:.4}%", d.reorder * 100.0)]);
        }
    }
    if d.loss > 0.0 {
        args.extend(["loss".into(), format!("{:.4}%", d.loss * 100.0)]);
    }
    if let Some(rate) = d.rate_bps {
        args.extend(["rate".into(), format!("{rate}bit")]);
    }
    (!args.is_empty()).then_some(args)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_direction_is_one_netem_qdisc_on_its_way_out() {
        let n = Names { pid: 7, slot: 1 };
        let mut c = Conditions::default();
        c.up.delay = Duration::from_millis(50);
        c.up.jitter = Duration::from_millis(5);
        c.up.loss = 0.01;
        c.down.delay = Duration::from_millis(50);
        c.down.reorder = 0.25;
        c.down.rate_bps = Some(1_600_000);
        let lines: Vec<String> = commands(&n, &c).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "ip netns exec pb-7-1-link tc qdisc add dev pb1m root netem delay 50000us 5000us \
                 loss 1.0000%",
                "ip netns exec pb-7-1-link tc qdisc add dev pb1l root netem delay 50000us \
                 reorder 25.0000% rate 1600000bit",
            ]
        );
    }

    #[test]
    fn an_untouched_direction_gets_no_qdisc() {
        let n = Names { pid: 7, slot: 1 };
        assert!(commands(&n, &Conditions::default()).is_empty());
    }
}
