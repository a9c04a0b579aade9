//! The `ip`, `tc` and `iptables` commands the link is made of: built as data (so tests can
//! read exactly what would run) and run with errors that name the command and its stderr.

use std::fmt;
use std::process::Command;

/// Why setting up or changing the link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("`{command}` could not start: {source} (is iproute2/iptables installed?)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error(
        "a [network] scenario needs root (CAP_NET_ADMIN) to create network namespaces, veth \
         pairs, qdiscs and iptables rules; run it as root, or remove [network]"
    )]
    NotRoot,
}

/// One command line, optionally run inside a named network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub netns: Option<String>,
    pub argv: Vec<String>,
}

impl Cmd {
    /// A command run in the current (root) namespace.
    pub fn new(program: &str, args: &[&str]) -> Cmd {
        let mut argv = vec![program.to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        Cmd { netns: None, argv }
    }

    /// The same command inside namespace `netns` (`ip netns exec NETNS …`).
    pub fn within(mut self, netns: &str) -> Cmd {
        self.netns = Some(netns.to_string());
        self
    }

    /// The full argument vector as run.
    pub fn full_argv(&self) -> Vec<String> {
        match &self.netns {
            Some(ns) => ["ip", "netns", "exec", ns]
                .into_iter()
                .map(str::to_string)
                .chain(self.argv.iter().cloned())
                .collect(),
            None => self.argv.clone(),
        }
    }

    /// Runs it; returns its stdout.
    pub fn run(&self) -> Result<String, LinkError> {
        let argv = self.full_argv();
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .map_err(|source| LinkError::Spawn {
                command: self.to_string(),
                source,
            })?;
        if !output.status.success() {
            return Err(LinkError::Failed {
                command: self.to_string(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_argv().join(" "))
    }
}

/// Runs every command in order, stopping at the first failure.
pub fn run_all(commands: &[Cmd]) -> Result<(), LinkError> {
    commands.iter().try_for_each(|c| c.run().map(drop))
}

/// Whether this process holds `CAP_NET_ADMIN` (its effective set in /proc/self/status):
/// checked up front so that a run without it fails with what is missing, not with the first
/// `ip` command's "Operation not permitted".
pub fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// `CAP_NET_ADMIN`'s bit in the capability sets (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_in_a_namespace_is_prefixed_with_ip_netns_exec() {
        let cmd = Cmd::new("tc", &["qdisc", "show"]).within("pb-1-0-link");
        assert_eq!(cmd.to_string(), "ip netns exec pb-1-0-link tc qdisc show");
    }

    #[test]
    fn a_failing_command_names_itself_and_its_stderr() {
        let err = Cmd::new("ip", &["link", "show", "pb-no-such-device"])
            .run()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`ip link show pb-no-such-device` failed"),
            "{text}"
        );
        assert!(text.contains("pb-no-such-device"), "{text}");
    }
}
