//! The cost of an external target: the processes a scenario names (`target.pid`,
//! `target.pidfile` or `target.process`), their CPU time read from /proc at the start and the
//! end of a run, and their resident memory sampled while it runs. A pid (or pidfile) stands
//! for that process and every process below it, so that a server that works in children
//! (nginx's workers, Pushpin's condure, proxy and handler) is measured whole. Their own peak (`VmHWM`)
//! would be the peak of their whole life, earlier runs included, so it is not used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::plan::TargetProcesses;
use crate::sys;

/// How often the resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The external target's processes, watched for the length of one transport run.
pub struct Watched {
    pids: Vec<u32>,
    peak_rss_bytes: Arc<AtomicU64>,
    /// A sampling failure (a process gone) that makes the figures incomplete.
    gone: Arc<Mutex<Option<String>>>,
    _sampler: DropGuard,
}

impl Watched {
    /// Finds the processes and starts sampling their memory.
    pub fn start(which: &TargetProcesses) -> anyhow::Result<Watched> {
        let pids = find(which)?;
        let peak_rss_bytes = Arc::new(AtomicU64::new(rss(&pids).unwrap_or(0)));
        let gone = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let (task_pids, peak, task_gone, task_stop) = (
            pids.clone(),
            Arc::clone(&peak_rss_bytes),
            Arc::clone(&gone),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = task_stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                match rss(&task_pids) {
                    Some(now) => {
                        peak.fetch_max(now, Ordering::Relaxed);
                    }
                    None => {
                        let mut gone = task_gone.lock().unwrap_or_else(|e| e.into_inner());
                        gone.get_or_insert_with(|| "a target process exited".to_string());
                        return;
                    }
                }
            }
        });
        Ok(Watched {
            pids,
            peak_rss_bytes,
            gone,
            _sampler: stop.drop_guard(),
        })
    }

    /// CPU seconds the processes have used so far, summed, and the highest summed resident
    /// memory sampled since `start`; `None` once one of them is gone.
    pub fn cost(&self) -> Option<(f64, u64)> {
        if self
            .gone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return None;
        }
        let cpu = self
            .pids
            .iter()
            .map(|&pid| sys::cpu_s(pid))
            .sum::<Option<f64>>()?;
        Some((cpu, self.peak_rss_bytes.load(Ordering::Relaxed)))
    }

    /// Summed resident memory now; `None` once one of them is gone.
    pub fn rss_now(&self) -> Option<u64> {
        rss(&self.pids)
    }

    pub fn pids(&self) -> &[u32] {
        &self.pids
    }
}

/// Summed resident memory of `pids`; `None` if one is gone.
fn rss(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .map(|pid| sys::rss_bytes(&pid.to_string()))
        .sum()
}

/// The pids the scenario names; an error says which setting found nothing.
fn find(which: &TargetProcesses) -> anyhow::Result<Vec<u32>> {
    let pids = match which {
        TargetProcesses::Pid(pid) => with_descendants(*pid)?,
        TargetProcesses::Pidfile(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("target.pidfile: reading {}", path.display()))?;
            let pid = text.trim().parse().with_context(|| {
                format!(
                    "target.pidfile: {} holds {:?}, not a process id",
                    path.display(),
                    text.trim()
                )
            })?;
            with_descendants(pid)?
        }
        TargetProcesses::Name(name) => by_name(name)?,
    };
    if let Some(dead) = pids.iter().find(|pid| sys::cpu_s(**pid).is_none()) {
        bail!("the target's process {dead} is not running (target.pid / target.pidfile)");
    }
    Ok(pids)
}

/// `pid` and its children, their children and so on, from the parent ids in /proc.
fn with_descendants(pid: u32) -> anyhow::Result<Vec<u32>> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .context("listing /proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(|child: u32| Some((child, parent_of(child)?)))
        .collect();
    let mut family = vec![pid];
    let mut next = 0;
    while let Some(&parent) = family.get(next) {
        family.extend(parents.iter().filter(|p| p.1 == parent).map(|p| p.0));
        next += 1;
    }
    Ok(family)
}

/// The parent id in /proc/PID/stat: the second field after the command name's `)`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Every process whose command name is `name` (as `ps -C` matches: the kernel keeps the first
/// 15 bytes of it), this one excepted.
fn by_name(name: &str) -> anyhow::Result<Vec<u32>> {
    let wanted: String = name.chars().take(15).collect();
    let own = std::process::id();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .context("listing /proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| pid != own)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == wanted)
        })
        .collect();
    pids.sort_unstable();
    if pids.is_empty() {
        bail!("target.process = {name:?}: no process of that name is running");
    }
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Called by the one test below: a child spawned here would be part of this process's
    /// family while the other checks watch it.
    fn a_pid_stands_for_its_children_too() {
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & wait"])
            .spawn()
            .unwrap();
        let mut family = Vec::new();
        for _ in 0..100 {
            family = with_descendants(shell.id()).unwrap();
            if family.len() > 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::process::Command::new("kill")
            .args(family.iter().map(u32::to_string))
            .status();
        let _ = shell.wait();
        assert_eq!(family.len(), 2, "the shell and its sleep: {family:?}");
        assert_eq!(family[0], shell.id());
    }

    #[tokio::test]
    async fn watches_a_running_process_and_names_a_missing_one() {
        let watched = Watched::start(&TargetProcesses::Pid(std::process::id())).unwrap();
        let (cpu, rss) = watched.cost().unwrap();
        assert!(cpu >= 0.0 && rss > 0, "{cpu} s, {rss} B");
        let missing = Watched::start(&TargetProcesses::Name("no-such-proc-x".into()));
        let error = format!("{:#}", missing.err().unwrap());
        assert!(error.contains("no process of that name"), "{error}");
        let empty = Watched::start(&TargetProcesses::Pidfile("/nonexistent/x.pid".into()));
        assert!(format!("{:#}", empty.err().unwrap()).contains("target.pidfile"));
        drop(watched);
        a_pid_stands_for_its_children_too();
    }
}
