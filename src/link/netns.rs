//! The link's topology: the fleet stays in the root namespace; the target gets a namespace
//! of its own; between them a "link" namespace forwards packets and is where delay, loss,
//! rate and faults act, so that neither end's TCP stack is touched.
//!
//! ```text
//! root ns            pb-P-S-link ns                   pb-P-S-target ns
//! pbSf 10.223.S.1 ── pbSl 10.223.S.2 │ pbSm 10.222.S.1 ── pbSt 10.222.S.2 … .(1+N)
//! pbSb 10.224.S.1 ─────────────(backstage)────────── pbSs 10.224.S.2
//! ```
//! The backstage pair bypasses the link: the publisher sits beside the server, as a real
//! back end would, so that a message's latency holds the link's down direction only.
//! `P` is the owning process id (a leftover whose process is gone is deleted at the next
//! start), `S` a slot that keeps concurrent links apart.

use std::net::Ipv4Addr;

use super::command::Cmd;

/// Everything a link of slot `slot` owned by process `pid` is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub pid: u32,
    pub slot: u8,
}

/// Every name this module creates starts with it.
pub const PREFIX: &str = "pb-";

impl Names {
    pub fn link_ns(&self) -> String {
        format!("{PREFIX}{}-{}-link", self.pid, self.slot)
    }
    pub fn target_ns(&self) -> String {
        format!("{PREFIX}{}-{}-target", self.pid, self.slot)
    }
    /// Root-namespace end of the fleet-side veth pair.
    pub fn fleet_if(&self) -> String {
        format!("pb{}f", self.slot)
    }
    /// Link-namespace end facing the fleet (down traffic leaves through it).
    pub fn link_fleet_if(&self) -> String {
        format!("pb{}l", self.slot)
    }
    /// Link-namespace end facing the target (up traffic leaves through it).
    pub fn link_target_if(&self) -> String {
        format!("pb{}m", self.slot)
    }
    /// The target namespace's interface, holding its addresses.
    pub fn target_if(&self) -> String {
        format!("pb{}t", self.slot)
    }
    /// Root-namespace end of the backstage pair.
    pub fn backstage_if(&self) -> String {
        format!("pb{}b", self.slot)
    }
    /// Target-namespace end of the backstage pair.
    pub fn backstage_target_if(&self) -> String {
        format!("pb{}s", self.slot)
    }
    pub fn backstage_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 224, self.slot, 1)
    }
    pub fn backstage_target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 224, self.slot, 2)
    }
    pub fn fleet_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 223, self.slot, 1)
    }
    pub fn link_fleet_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 223, self.slot, 2)
    }
    pub fn link_target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 222, self.slot, 1)
    }
    /// The target's `k`-th address (shards and servers spread over them so that each
    /// destination keeps within the ephemeral source ports).
    pub fn target_ip(&self, k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 222, self.slot, 2 + (k % TARGET_ADDRESSES) as u8)
    }
}

/// Addresses the target namespace gets: 10.222.S.2 to 10.222.S.33.
pub const TARGET_ADDRESSES: usize = 32;

/// The commands that build the topology (no conditions yet).
pub fn create(n: &Names) -> Vec<Cmd> {
    let (link, target) = (n.link_ns(), n.target_ns());
    let (f, l, m, t) = (
        n.fleet_if(),
        n.link_fleet_if(),
        n.link_target_if(),
        n.target_if(),
    );
    let cidr = |ip: Ipv4Addr| format!("{ip}/24");
    let mut cmds = vec![
        Cmd::new("ip", &["netns", "add", &link]),
        Cmd::new("ip", &["netns", "add", &target]),
        Cmd::new(
            "ip",
            &["link", "add", &f, "type", "veth", "peer", "name", &l],
        ),
        Cmd::new("ip", &["link", "set", &l, "netns", &link]),
        Cmd::new(
            "ip",
            &["link", "add", &m, "type", "veth", "peer", "name", &t],
        )
        .within(&link),
        Cmd::new("ip", &["link", "set", &t, "netns", &target]).within(&link),
        Cmd::new("ip", &["addr", "add", &cidr(n.fleet_ip()), "dev", &f]),
        Cmd::new("ip", &["link", "set", &f, "up"]),
        Cmd::new("ip", &["addr", "add", &cidr(n.link_fleet_ip()), "dev", &l]).within(&link),
        Cmd::new("ip", &["addr", "add", &cidr(n.link_target_ip()), "dev", &m]).within(&link),
        Cmd::new("ip", &["link", "set", &l, "up"]).within(&link),
        Cmd::new("ip", &["link", "set", &m, "up"]).within(&link),
        Cmd::new("ip", &["link", "set", "lo", "up"]).within(&link),
        Cmd::new("sysctl", &["-qw", "net.ipv4.ip_forward=1"]).within(&link),
    ];
    for k in 0..TARGET_ADDRESSES {
        cmds.push(
            Cmd::new("ip", &["addr", "add", &cidr(n.target_ip(k)), "dev", &t]).within(&target),
        );
    }
    let via_link = n.link_target_ip().to_string();
    let target_net = format!("10.222.{}.0/24", n.slot);
    let via_fleet = n.link_fleet_ip().to_string();
    // One MTU-sized packet per skb from both ends: a GSO super-packet of up to 64 kB would
    // cross the link, its loss rule and its delay line as one packet, where a real link
    // carries (and loses) each frame alone.
    cmds.extend([
        Cmd::new("ip", &["link", "set", "dev", &f, "gso_max_segs", "1"]),
        Cmd::new("ip", &["link", "set", "dev", &t, "gso_max_segs", "1"]).within(&target),
    ]);
    cmds.extend([
        Cmd::new("ip", &["link", "set", &t, "up"]).within(&target),
        Cmd::new("ip", &["link", "set", "lo", "up"]).within(&target),
        Cmd::new("ip", &["route", "add", "default", "via", &via_link]).within(&target),
        Cmd::new(
            "ip",
            &["route", "add", &target_net, "via", &via_fleet, "dev", &f],
        ),
    ]);
    let (b, bs) = (n.backstage_if(), n.backstage_target_if());
    cmds.extend([
        Cmd::new(
            "ip",
            &["link", "add", &b, "type", "veth", "peer", "name", &bs],
        ),
        Cmd::new("ip", &["link", "set", &bs, "netns", &target]),
        Cmd::new("ip", &["addr", "add", &cidr(n.backstage_ip()), "dev", &b]),
        Cmd::new("ip", &["link", "set", &b, "up"]),
        Cmd::new(
            "ip",
            &["addr", "add", &cidr(n.backstage_target_ip()), "dev", &bs],
        )
        .within(&target),
        Cmd::new("ip", &["link", "set", &bs, "up"]).within(&target),
    ]);
    cmds
}

/// Deleting the two namespaces removes everything else: the veth pairs (and with them the
/// root end, its address and route), the qdiscs and the iptables rules all live in them.
pub fn destroy(n: &Names) -> Vec<Cmd> {
    vec![
        Cmd::new("ip", &["netns", "delete", &n.target_ns()]),
        Cmd::new("ip", &["netns", "delete", &n.link_ns()]),
    ]
}

/// The `pb-` namespaces present now, as (name, owning pid, slot).
pub fn existing(ip_netns_list: &str) -> Vec<(String, u32, u8)> {
    ip_netns_list
        .lines()
        .filter_map(|line| {
            let name = line.split_whitespace().next()?;
            let rest = name.strip_prefix(PREFIX)?;
            let mut parts = rest.split('-');
            let pid = parts.next()?.parse().ok()?;
            let slot = parts.next()?.parse().ok()?;
            Some((name.to_string(), pid, slot))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_the_kernels_15_characters() {
        let n = Names {
            pid: 4_194_304,
            slot: 255,
        };
        for name in [
            n.fleet_if(),
            n.link_fleet_if(),
            n.link_target_if(),
            n.target_if(),
            n.backstage_if(),
            n.backstage_target_if(),
        ] {
            assert!(name.len() <= 15, "{name}");
        }
    }

    #[test]
    fn leftovers_are_told_by_their_owner() {
        let listed = "pb-12-3-link (id: 4)\npb-12-3-target\nother\npb-x-1-link\n";
        assert_eq!(
            existing(listed),
            vec![
                ("pb-12-3-link".to_string(), 12, 3),
                ("pb-12-3-target".to_string(), 12, 3)
            ]
        );
    }

    #[test]
    fn target_addresses_stay_in_the_targets_subnet() {
        let n = Names { pid: 1, slot: 7 };
        assert_eq!(n.target_ip(0), Ipv4Addr::new(10, 222, 7, 2));
        assert_eq!(n.target_ip(TARGET_ADDRESSES), n.target_ip(0));
    }
}
