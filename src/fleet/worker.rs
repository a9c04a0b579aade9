//! Worker processes: when one process cannot hold every client (its open-files limit), the
//! fleet re-executes its own binary as `pushbench worker`, one per share of the clients.
//!
//! The protocol is JSON lines on the worker's stdio. The coordinator writes the worker's
//! `FleetSpec`, `cut` if the clients are to be cut off, `faults […]` whenever a scheduled
//! fault begins or ends (what is known of every fault's span), then `stop DUE` when the run
//! ends (`DUE`: the highest sequence number that was due); the worker writes `counts {…}` every
//! `REPORT_EVERY` and, after `stop`, one `result {…}` with what its clients measured
//! (delivery, bytes, the serialized latency histogram, its CPU and memory).

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::spans::{SpanState, Spans};
use super::{Counts, Fleet, FleetOutcome, FleetSpec, Shared};
use crate::{stats, sys};

const REPORT_EVERY: Duration = Duration::from_millis(200);
/// How long a worker may take to report after `stop` before it counts as lost.
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);
const STOP: &str = "stop";
const CUT: &str = "cut";
const FAULTS: &str = "faults ";
const COUNTS: &str = "counts ";
const RESULT: &str = "result ";

/// What a worker measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport {
    pub outcome: FleetOutcome,
    pub counts: Counts,
    /// HdrHistogram V2 + deflate, base64.
    pub latency_histogram: String,
    pub first_error: Option<String>,
    pub cpu_s: f64,
    pub peak_rss_bytes: u64,
    pub rss_start_bytes: u64,
}

/// The worker side: reads its spec from stdin, runs its clients, reports on stdout.
pub async fn serve() -> anyhow::Result<()> {
    sys::raise_fd_limit();
    let rss_start_bytes = sys::reset_own_peak_rss();
    let cpu_start = sys::own_cpu_s();
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let line = input
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("no fleet spec on stdin"))?;
    let spec: FleetSpec = serde_json::from_str(&line).context("reading the fleet spec")?;
    let stop = CancellationToken::new();
    let shared = Arc::new(Shared::for_spec(&spec, stop.clone()));
    let fleet = Fleet::start(&spec, Arc::clone(&shared));
    let commands = Arc::clone(&shared);
    tokio::spawn(async move {
        // `stop DUE`, or the coordinator gone (EOF: everything was due), ends the run.
        let mut due = u64::MAX;
        while let Ok(Some(line)) = input.next_line().await {
            let mut words = line.split_whitespace();
            if let Some(json) = line.strip_prefix(FAULTS) {
                match serde_json::from_str::<Vec<SpanState>>(json) {
                    Ok(states) => commands.spans.set(&states),
                    Err(e) => eprintln!("error: worker: unreadable fault spans: {e}"),
                }
                continue;
            }
            match words.next() {
                Some(CUT) => commands.cut.cancel(),
                Some(STOP) => {
                    due = words
                        .next()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(u64::MAX);
                    break;
                }
                _ => {}
            }
        }
        commands.end(due);
    });
    let mut out = tokio::io::stdout();
    while !stop.is_cancelled() {
        let line = format!("{COUNTS}{}\n", serde_json::to_string(&shared.counts())?);
        out.write_all(line.as_bytes()).await?;
        out.flush().await?;
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(REPORT_EVERY) => {}
        }
    }
    let outcome = fleet.join(&shared).await;
    let report = WorkerReport {
        outcome,
        counts: shared.counts(),
        latency_histogram: stats::encode_histogram(&shared.latency())?,
        first_error: shared.first_error(),
        cpu_s: sys::own_cpu_s() - cpu_start,
        peak_rss_bytes: sys::peak_rss_bytes("self").unwrap_or(0),
        rss_start_bytes,
    };
    let line = format!("{RESULT}{}\n", serde_json::to_string(&report)?);
    out.write_all(line.as_bytes()).await?;
    out.flush().await?;
    Ok(())
}

/// The coordinator side: the running workers of one transport run.
pub struct Workers {
    tasks: JoinSet<(usize, Option<WorkerReport>)>,
    counts: Arc<Mutex<Vec<Counts>>>,
    commands: Commands,
    pub shares: Vec<u32>,
    /// The workers' process ids, to read their CPU while they run.
    pids: Vec<u32>,
    /// The faults' spans as the run learns them, and where they go out to the workers.
    spans: Spans,
    spans_out: tokio::sync::watch::Sender<Vec<SpanState>>,
}

/// What the coordinator tells every worker after its spec.
#[derive(Clone)]
struct Commands {
    cut: CancellationToken,
    stop: CancellationToken,
    /// Set before `stop` is cancelled.
    due_through: Arc<AtomicU64>,
    /// What is known of the faults' spans, sent on every change.
    spans: tokio::sync::watch::Receiver<Vec<SpanState>>,
}

impl Workers {
    /// Starts one `exe worker` per spec; cancelling `stop` (an interruption) ends them as
    /// `finish` does, with every message counted as due.
    pub fn start(
        exe: &Path,
        specs: Vec<FleetSpec>,
        stop: CancellationToken,
    ) -> anyhow::Result<Workers> {
        let spans = Spans::new(specs.first().map_or(0, |s| s.faults));
        let (spans_out, spans_in) = tokio::sync::watch::channel(spans.state());
        let commands = Commands {
            cut: CancellationToken::new(),
            stop,
            due_through: Arc::new(AtomicU64::new(u64::MAX)),
            spans: spans_in,
        };
        let counts = Arc::new(Mutex::new(vec![Counts::default(); specs.len()]));
        let shares = specs.iter().map(|s| s.clients).collect();
        let mut tasks = JoinSet::new();
        let mut pids = Vec::new();
        for (k, spec) in specs.into_iter().enumerate() {
            let child = Command::new(exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                // Out of the terminal's process group: Ctrl-C reaches the coordinator only,
                // which then ends the workers with `stop` and collects what they measured.
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {k} ({} worker)", exe.display()))?;
            pids.extend(child.id());
            let (counts, commands) = (Arc::clone(&counts), commands.clone());
            tasks.spawn(async move { (k, drive(k, child, spec, counts, commands).await) });
        }
        Ok(Workers {
            tasks,
            counts,
            commands,
            shares,
            pids,
            spans,
            spans_out,
        })
    }

    /// See `Spans::began`; every worker is told.
    pub fn fault_began(&self, k: usize, first: u64) {
        self.spans.began(k, first);
        self.spans_out.send_replace(self.spans.state());
    }

    /// See `Spans::ended`; every worker is told.
    pub fn fault_ended(&self, k: usize, end: u64, ended_us: u64) {
        self.spans.ended(k, end, ended_us);
        self.spans_out.send_replace(self.spans.state());
    }

    /// CPU seconds the running workers have used so far, summed (a worker gone counts 0).
    pub fn cpu_s(&self) -> f64 {
        self.pids.iter().filter_map(|&pid| sys::cpu_s(pid)).sum()
    }

    /// Cuts every worker's clients off.
    pub fn cut(&self) {
        self.commands.cut.cancel();
    }

    /// The workers' live counters, summed.
    pub fn counts(&self) -> Counts {
        let all = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut sum = Counts::default();
        for c in all.iter() {
            sum += *c;
        }
        sum
    }

    /// Ends the run and returns every worker's report, in worker order; `None` for a worker
    /// that died or never reported.
    pub async fn finish(mut self, due_through: u64) -> Vec<Option<WorkerReport>> {
        self.commands
            .due_through
            .store(due_through, Ordering::Relaxed);
        self.commands.stop.cancel();
        let mut reports = vec![None; self.shares.len()];
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok((k, report)) = joined {
                reports[k] = report;
            }
        }
        reports
    }
}

/// Talks to one worker until it reports; keeps its live counts up to date.
async fn drive(
    k: usize,
    mut child: Child,
    spec: FleetSpec,
    counts: Arc<Mutex<Vec<Counts>>>,
    commands: Commands,
) -> Option<WorkerReport> {
    let mut stdin = child.stdin.take()?;
    let stdout = child.stdout.take()?;
    let job = serde_json::to_string(&spec).ok()? + "\n";
    stdin.write_all(job.as_bytes()).await.ok()?;
    let mut lines = BufReader::new(stdout).lines();
    let mut deadline = None;
    let mut cut_sent = false;
    let mut spans = commands.spans.clone();
    loop {
        let line = tokio::select! {
            Ok(()) = spans.changed(), if deadline.is_none() => {
                send_spans(&mut stdin, &mut spans).await;
                continue;
            }
            _ = commands.cut.cancelled(), if !cut_sent && deadline.is_none() => {
                let _ = stdin.write_all(format!("{CUT}\n").as_bytes()).await;
                cut_sent = true;
                continue;
            }
            _ = commands.stop.cancelled(), if deadline.is_none() => {
                // The spans first: the worker sorts its clients' arrivals by them at `stop`.
                send_spans(&mut stdin, &mut spans).await;
                let due = commands.due_through.load(Ordering::Relaxed);
                let _ = stdin.write_all(format!("{STOP} {due}\n").as_bytes()).await;
                deadline = Some(tokio::time::Instant::now() + RESULT_TIMEOUT);
                continue;
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                eprintln!("error: worker {k} did not report within {RESULT_TIMEOUT:?} of the end of the run");
                return None;
            }
            line = lines.next_line() => line,
        };
        match line {
            Ok(Some(line)) => {
                if let Some(json) = line.strip_prefix(COUNTS) {
                    if let Ok(c) = serde_json::from_str::<Counts>(json) {
                        counts.lock().unwrap_or_else(|e| e.into_inner())[k] = c;
                    }
                } else if let Some(json) = line.strip_prefix(RESULT) {
                    return serde_json::from_str(json).ok();
                }
            }
            _ => {
                eprintln!("error: worker {k} ended without a result; its clients count as lost");
                return None;
            }
        }
    }
}

/// Writes what is known of the faults' spans to a worker.
async fn send_spans(
    stdin: &mut tokio::process::ChildStdin,
    spans: &mut tokio::sync::watch::Receiver<Vec<SpanState>>,
) {
    let state = spans.borrow_and_update().clone();
    if let Ok(json) = serde_json::to_string(&state) {
        let _ = stdin
            .write_all(format!("{FAULTS}{json}\n").as_bytes())
            .await;
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}
