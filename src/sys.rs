//! Process cost: CPU time and peak resident memory, of this process or a child, and the
//! open-files limit.

use std::fs;

/// CPU seconds (user + system) this process has used so far.
pub fn own_cpu_s() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Resets this process's peak RSS to its current RSS (Linux ≥ 4.0), so that each run
/// reports its own peak, and returns that RSS: the part of the peak the run did not add.
pub fn reset_own_peak_rss() -> u64 {
    // Where the kernel does not allow the reset, the peak is the process's lifetime peak.
    let _ = fs::write("/proc/self/clear_refs", "5");
    rss_bytes("self").unwrap_or(0)
}

/// Peak resident memory (`VmHWM`) of process `pid` ("self" for this one), in bytes.
pub fn peak_rss_bytes(pid: &str) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Resident memory now (`VmRSS`) of process `pid` ("self" for this one), in bytes.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A `kB` field of /proc/<pid>/status, in bytes.
fn status_bytes(pid: &str, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_s > 0).then(|| ticks as f64 / per_s as f64)
}

/// Open files a process keeps for itself beyond its clients' sockets (runtime, logs, the
/// publisher, pipes to workers).
const RESERVED_FDS: u64 = 512;

/// How many client connections one process can hold: its open-files limit (raised to the
/// hard limit) less a reserve. Sizes worker processes and target shards.
pub fn clients_per_process() -> u32 {
    raise_fd_limit()
        .saturating_sub(RESERVED_FDS)
        .clamp(1, u64::from(u32::MAX)) as u32
}

/// Raises the soft open-files limit to the hard one; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: raising the soft limit up to the hard limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cost() {
        assert!(peak_rss_bytes("self").is_some_and(|b| b > 0));
        assert!(rss_bytes("self").is_some_and(|b| b > 0));
        assert!(cpu_s(std::process::id()).is_some());
        assert!(own_cpu_s() >= 0.0);
        assert!(raise_fd_limit() > 0);
    }
}
