//! # The floor: the cheapest push this machine can do
//!
//! The same two workloads pushbench measures, written as plainly as they can be: raw
//! non-blocking TCP sockets on mio (epoll), no framing library, no async runtime, one thread
//! per process. Whatever a pushbench transport costs beyond these figures is the cost of its
//! protocol and its code; these figures are what the kernel and the machine cost anyway.
//!
//! - **fanout**: server processes accept N connections, then every `--interval` write one
//!   `--size`-byte message (8-byte sequence number, 8-byte intended send time in µs of the
//!   monotonic clock, zero padding) to every connection, `--messages` times. Client processes
//!   read them with epoll and record latency = receive time − the round's intended send time.
//! - **poll**: N client connections each send a fixed 60-byte request and wait for the fixed
//!   121-byte answer (the sizes of a minimal HTTP poll), flat out or at `--rate` polls/s per
//!   connection, for `--duration`.
//!
//! One invocation runs both sides as separate processes: this binary re-executes itself with
//! an internal role (`__serve-fanout`, `__client-fanout`, `__serve-poll`, `__client-poll`)
//! and talks to each child over its stdin/stdout, one line per step (`listening`, `accepted`,
//! `connected`, `go <t0>`, `result <json>`, `exit`). Each process may open at most 20,000
//! files here, so N is split over ceil(N / `--per-process`) server processes, each listening
//! on its own address 127.0.88.<i+1> and an ephemeral port, and as many client processes,
//! client i connecting from 127.0.<100+i>.x, 1,000 connections per source address (see
//! `connect_all`). Connections close with a reset, so runs leave no TIME_WAIT behind.
//!
//! ```text
//! cargo bench --bench floor -- fanout --connections 18000 --messages 10 [--interval 1s] [--size 20]
//! cargo bench --bench floor -- poll --connections 18000 --duration 10s [--rate 1]
//! ... add --json for one JSON object instead of the table; --help for every option
//! ```
//!
//! Without a mode (`cargo test --all-targets`, a bare `cargo bench`) it runs a small smoke
//! check of both modes over two processes per side. See benches/README.md for what each
//! figure means.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use hdrhistogram::Histogram;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use pushbench::stats::{Percentiles, decode_histogram, encode_histogram, new_histogram};
use pushbench::sys::{own_cpu_s, peak_rss_bytes, raise_fd_limit, rss_bytes};
use serde::{Deserialize, Serialize};

/// A minimal HTTP/1.1 poll: the request and answer sizes the field notes measured.
const REQUEST: &[u8] = b"GET /sub/1 HTTP/1.1\r\nHost: x\r\nIf-None-Match: 12345678901\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\
Content-Length: 32\r\nEtag: 12345\r\n\r\n0123456789abcdef0123456789abcdef";
const _: () = assert!(REQUEST.len() == 60 && RESPONSE.len() == 121);

/// Bytes of a fan-out message that carry data: sequence number and intended send time.
const HEADER: usize = 16;
/// Default connections per process: the 20,000-file limit less room for the rest.
const PER_PROCESS: usize = 18_000;
/// Connects a client keeps in progress at once, so a burst does not overflow the backlog.
const CONNECTS_IN_FLIGHT: usize = 1_000;
/// Connections per client source address (see `connect_all`).
const SOURCE_SHARE: usize = 1_000;
/// Listen backlog (the kernel caps it at net.core.somaxconn).
const BACKLOG: i32 = 4_096;
/// How long connecting and accepting may take before a process gives up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long after the last round a fan-out client waits for stragglers.
const GRACE_US: u64 = 10_000_000;
/// Time between the `go` line and the first round, so every process is waiting for it.
const START_DELAY_US: u64 = 500_000;
/// One read buffer per process: a short read means the socket is drained.
const READ_BUFFER: usize = 64 * 1024;

const HELP: &str = "\
floor: the minimal fan-out and poll loop this machine can run (raw sockets on mio/epoll)

usage:
  cargo bench --bench floor -- fanout [options]
  cargo bench --bench floor -- poll [options]

fanout options:
  --connections N    connections in all (default 18000)
  --messages K       messages written to every connection (default 10)
  --interval T       time between messages, e.g. 1s, 250ms (default 1s)
  --size M           bytes per message, at least 16 (default 20)
poll options:
  --connections N    connections in all (default 18000)
  --duration D       measured time, e.g. 10s (default 10s)
  --rate R           polls per second per connection (default: flat out, closed loop)
both:
  --per-process P    connections per server and per client process (default 18000)
  --json             print one JSON object instead of the table

Without a mode it runs a small smoke check of both modes.";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` appends `--bench`; `cargo test` runs this target without it.
    let from_cargo_bench = args.iter().any(|a| a == "--bench");
    args.retain(|a| a != "--bench");
    match dispatch(args, from_cargo_bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: Vec<String>, from_cargo_bench: bool) -> Result<()> {
    let mode = args.first().map(String::as_str).unwrap_or("");
    let rest = || Opts::parse(&args[1..]);
    match mode {
        "fanout" => {
            let opts = rest()?;
            let json = opts.json;
            report(&run_fanout(&FanoutPlan::from(opts)?)?, json)
        }
        "poll" => {
            let opts = rest()?;
            let json = opts.json;
            report(&run_poll(&PollPlan::from(opts)?)?, json)
        }
        "__serve-fanout" => serve_fanout(rest()?),
        "__client-fanout" => client_fanout(rest()?),
        "__serve-poll" => serve_poll(rest()?),
        "__client-poll" => client_poll(rest()?),
        "--help" | "-h" | "help" => {
            println!("{HELP}");
            Ok(())
        }
        "" => smoke(),
        // Under `cargo test`, libtest options (`--nocapture`) and name filters arrive here:
        // run the smoke check unless a filter names something else.
        _ if !from_cargo_bench => {
            match args.iter().find(|a| !a.starts_with('-')) {
                Some(filter) if !"floor_smoke".contains(filter.as_str()) => {
                    println!("floor: filtered out (run `cargo bench --bench floor -- --help`)")
                }
                _ => smoke()?,
            }
            Ok(())
        }
        other => bail!("unknown mode `{other}`: expected fanout or poll\n\n{HELP}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Plans and figures
// ---------------------------------------------------------------------------------------------

struct FanoutPlan {
    connections: usize,
    messages: u64,
    interval: Duration,
    size: usize,
    per_process: usize,
}

impl FanoutPlan {
    fn from(mut o: Opts) -> Result<FanoutPlan> {
        let plan = FanoutPlan {
            connections: o.take("connections", 18_000)?,
            messages: o.take("messages", 10)?,
            interval: o.take_duration("interval", Duration::from_secs(1))?,
            size: o.take("size", 20)?,
            per_process: o.take("per-process", PER_PROCESS)?,
        };
        o.done()?;
        check_scale(plan.connections, plan.per_process)?;
        ensure!(
            (1..=10_000).contains(&plan.messages),
            "--messages must be 1..=10000"
        );
        ensure!(
            (Duration::from_millis(1)..=Duration::from_secs(60)).contains(&plan.interval),
            "--interval must be 1ms..=60s"
        );
        ensure!(
            (HEADER..=65_536).contains(&plan.size),
            "--size must be 16..=65536"
        );
        Ok(plan)
    }
}

struct PollPlan {
    connections: usize,
    duration: Duration,
    /// Polls per second per connection; `None`: flat out.
    rate: Option<f64>,
    per_process: usize,
}

impl PollPlan {
    fn from(mut o: Opts) -> Result<PollPlan> {
        let plan = PollPlan {
            connections: o.take("connections", 18_000)?,
            duration: o.take_duration("duration", Duration::from_secs(10))?,
            rate: o.take_opt("rate")?,
            per_process: o.take("per-process", PER_PROCESS)?,
        };
        o.done()?;
        check_scale(plan.connections, plan.per_process)?;
        ensure!(
            (Duration::from_millis(100)..=Duration::from_secs(600)).contains(&plan.duration),
            "--duration must be 100ms..=600s"
        );
        if let Some(rate) = plan.rate {
            ensure!(
                rate > 0.0 && rate <= 10_000.0,
                "--rate must be in (0, 10000]"
            );
        }
        Ok(plan)
    }
}

/// Bounds every run: at most 200k connections over at most 64 processes per side, each
/// within its open-files limit and within one destination's ~28k source ports.
fn check_scale(connections: usize, per_process: usize) -> Result<()> {
    ensure!(
        (1..=200_000).contains(&connections),
        "--connections must be 1..=200000"
    );
    let fd_limit = raise_fd_limit() as usize;
    let most = fd_limit.saturating_sub(100).min(28_000);
    ensure!(
        (1..=most).contains(&per_process),
        "--per-process must be 1..={most} (open-files limit {fd_limit})"
    );
    ensure!(
        connections.div_ceil(per_process) <= 64,
        "more than 64 processes per side: raise --per-process"
    );
    Ok(())
}

/// What a fan-out run measured: the JSON object `--json` prints.
#[derive(Serialize)]
struct FanoutFigures {
    mode: &'static str,
    connections: u64,
    server_processes: u64,
    client_processes: u64,
    messages_per_connection: u64,
    interval_s: f64,
    message_bytes: u64,
    messages_expected: u64,
    messages_delivered: u64,
    messages_lost: u64,
    messages_duplicated: u64,
    connections_closed: u64,
    write_errors: u64,
    /// Writes the kernel did not take at once (queued until writable).
    writes_queued: u64,
    server_writes: u64,
    server_cpu_s: f64,
    server_cpu_us_per_write: f64,
    client_reads: u64,
    client_cpu_s: f64,
    client_cpu_us_per_read: f64,
    client_cpu_us_per_message: f64,
    cpu_us_per_message: f64,
    latency_us: Option<Percentiles>,
    /// A round's fan-out time: from its intended start to the last server's last write of
    /// it. The median over rounds, and the longest.
    server_round_median_us: u64,
    server_round_max_us: u64,
    server_peak_rss_bytes: u64,
    server_peak_rss_bytes_per_connection: f64,
    server_added_rss_bytes_per_connection: f64,
    client_peak_rss_bytes: u64,
    client_peak_rss_bytes_per_connection: f64,
    client_added_rss_bytes_per_connection: f64,
    setup_s: f64,
    run_s: f64,
    cpus: u64,
    loadavg_before: String,
}

/// What a poll run measured: the JSON object `--json` prints.
#[derive(Serialize)]
struct PollFigures {
    mode: &'static str,
    connections: u64,
    server_processes: u64,
    client_processes: u64,
    duration_s: f64,
    /// Polls per second per connection asked for; null: flat out.
    rate_per_connection: Option<f64>,
    polls: u64,
    polls_per_s: f64,
    /// Rate-limited polls sent after their slot because the previous answer was late.
    polls_late: u64,
    /// Rate-limited slots dropped because a late poll was already waiting.
    polls_skipped: u64,
    server_answers: u64,
    connections_closed: u64,
    write_errors: u64,
    writes_queued: u64,
    server_cpu_s: f64,
    server_cpu_us_per_poll: f64,
    client_cpu_s: f64,
    client_cpu_us_per_poll: f64,
    cpu_us_per_poll: f64,
    /// CPU seconds of both sides per second of the run: 2.0 is both cores of this machine.
    cores_busy: f64,
    latency_us: Option<Percentiles>,
    server_peak_rss_bytes: u64,
    server_peak_rss_bytes_per_connection: f64,
    server_added_rss_bytes_per_connection: f64,
    client_peak_rss_bytes: u64,
    client_peak_rss_bytes_per_connection: f64,
    client_added_rss_bytes_per_connection: f64,
    setup_s: f64,
    run_s: f64,
    cpus: u64,
    loadavg_before: String,
}

/// What one child process measured, sent to the coordinator as one JSON line. Fields a role
/// does not measure stay 0.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChildReport {
    connections: u64,
    cpu_s: f64,
    writes: u64,
    writes_queued: u64,
    write_errors: u64,
    reads: u64,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    closed: u64,
    polls: u64,
    late: u64,
    skipped: u64,
    answers: u64,
    /// Fan-out: each round's time from its intended start to this server's last write.
    rounds_us: Vec<u64>,
    rss_before: u64,
    peak_rss: u64,
    histogram: String,
}

/// The sums over one side's processes.
#[derive(Default)]
struct Side {
    reports: Vec<ChildReport>,
}

impl Side {
    fn sum(&self, f: impl Fn(&ChildReport) -> u64) -> u64 {
        self.reports.iter().map(f).sum()
    }
    fn cpu_s(&self) -> f64 {
        self.reports.iter().map(|r| r.cpu_s).sum()
    }
    fn peak_rss(&self) -> u64 {
        self.sum(|r| r.peak_rss)
    }
    fn added_rss(&self) -> u64 {
        self.sum(|r| r.peak_rss.saturating_sub(r.rss_before))
    }
    fn histogram(&self) -> Result<Histogram<u64>> {
        let mut all = new_histogram();
        for r in self.reports.iter().filter(|r| !r.histogram.is_empty()) {
            all.add(decode_histogram(&r.histogram)?)
                .map_err(|e| anyhow!("merging histograms: {e:?}"))?;
        }
        Ok(all)
    }
}

/// Prints the figures: one JSON object, or one `name value` line per figure.
fn report(figures: &impl Serialize, json: bool) -> Result<()> {
    let value = serde_json::to_value(figures)?;
    if json {
        println!("{value}");
        return Ok(());
    }
    fn lines(prefix: &str, value: &serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    lines(&format!("{prefix}{k}."), v)
                }
            }
            v => println!("{:<44} {v}", prefix.trim_end_matches('.')),
        }
    }
    lines("", &value);
    Ok(())
}

/// `a / b` rounded to 3 decimals, NaN (null in JSON) when nothing was counted.
fn per(a: f64, b: f64) -> f64 {
    round3(pushbench::stats::per(a, b))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Coordinator: starts both sides, starts the clock, collects and sums what they measured
// ---------------------------------------------------------------------------------------------

fn run_fanout(plan: &FanoutPlan) -> Result<FanoutFigures> {
    let loadavg_before = loadavg();
    let started = Instant::now();
    let shares = split(plan.connections, plan.per_process);
    eprintln!(
        "floor fanout: {} connections over {} server + {} client processes",
        plan.connections,
        shares.len(),
        shares.len()
    );
    let common = |n: usize| {
        vec![
            "--connections".to_string(),
            n.to_string(),
            "--messages".into(),
            plan.messages.to_string(),
            "--interval-us".into(),
            plan.interval.as_micros().to_string(),
            "--size".into(),
            plan.size.to_string(),
        ]
    };
    let mut fleet = Fleet::start("__serve-fanout", "__client-fanout", &shares, common)?;
    let setup_s = started.elapsed().as_secs_f64();
    eprintln!(
        "floor fanout: connected in {setup_s:.1} s; {} rounds",
        plan.messages
    );
    let ran = Instant::now();
    let (servers, clients) = fleet.go()?;
    let run_s = ran.elapsed().as_secs_f64();

    let n = plan.connections as u64;
    let delivered = clients.sum(|r| r.delivered);
    let (server_cpu, client_cpu) = (servers.cpu_s(), clients.cpu_s());
    let reads = clients.sum(|r| r.reads);
    let writes = servers.sum(|r| r.writes);
    // Each round's time is its slowest server's; sorted, for the median and the longest.
    let mut rounds: Vec<u64> = (0..plan.messages as usize)
        .map(|k| {
            let per_server = servers.reports.iter().filter_map(|r| r.rounds_us.get(k));
            per_server.copied().max().unwrap_or(0)
        })
        .collect();
    rounds.sort_unstable();
    Ok(FanoutFigures {
        mode: "fanout",
        connections: n,
        server_processes: shares.len() as u64,
        client_processes: shares.len() as u64,
        messages_per_connection: plan.messages,
        interval_s: plan.interval.as_secs_f64(),
        message_bytes: plan.size as u64,
        messages_expected: n * plan.messages,
        messages_delivered: delivered,
        messages_lost: clients.sum(|r| r.lost),
        messages_duplicated: clients.sum(|r| r.duplicated),
        connections_closed: clients.sum(|r| r.closed),
        write_errors: servers.sum(|r| r.write_errors),
        writes_queued: servers.sum(|r| r.writes_queued),
        server_writes: writes,
        server_cpu_s: round3(server_cpu),
        server_cpu_us_per_write: per(server_cpu * 1e6, writes as f64),
        client_reads: reads,
        client_cpu_s: round3(client_cpu),
        client_cpu_us_per_read: per(client_cpu * 1e6, reads as f64),
        client_cpu_us_per_message: per(client_cpu * 1e6, delivered as f64),
        cpu_us_per_message: per((server_cpu + client_cpu) * 1e6, delivered as f64),
        latency_us: Percentiles::of(&clients.histogram()?),
        server_round_median_us: rounds.get(rounds.len() / 2).copied().unwrap_or(0),
        server_round_max_us: rounds.last().copied().unwrap_or(0),
        server_peak_rss_bytes: servers.peak_rss(),
        server_peak_rss_bytes_per_connection: per(servers.peak_rss() as f64, n as f64),
        server_added_rss_bytes_per_connection: per(servers.added_rss() as f64, n as f64),
        client_peak_rss_bytes: clients.peak_rss(),
        client_peak_rss_bytes_per_connection: per(clients.peak_rss() as f64, n as f64),
        client_added_rss_bytes_per_connection: per(clients.added_rss() as f64, n as f64),
        setup_s: round3(setup_s),
        run_s: round3(run_s),
        cpus: cpus(),
        loadavg_before,
    })
}

fn run_poll(plan: &PollPlan) -> Result<PollFigures> {
    let loadavg_before = loadavg();
    let started = Instant::now();
    let shares = split(plan.connections, plan.per_process);
    eprintln!(
        "floor poll: {} connections over {} server + {} client processes",
        plan.connections,
        shares.len(),
        shares.len()
    );
    let common = |n: usize| {
        let mut args = vec![
            "--connections".to_string(),
            n.to_string(),
            "--duration-us".into(),
            plan.duration.as_micros().to_string(),
        ];
        if let Some(rate) = plan.rate {
            args.extend(["--rate".to_string(), rate.to_string()]);
        }
        args
    };
    let mut fleet = Fleet::start("__serve-poll", "__client-poll", &shares, common)?;
    let setup_s = started.elapsed().as_secs_f64();
    eprintln!(
        "floor poll: connected in {setup_s:.1} s; polling for {:?}",
        plan.duration
    );
    let ran = Instant::now();
    let (servers, clients) = fleet.go()?;
    let run_s = ran.elapsed().as_secs_f64();

    let n = plan.connections as u64;
    let polls = clients.sum(|r| r.polls);
    let (server_cpu, client_cpu) = (servers.cpu_s(), clients.cpu_s());
    let duration_s = plan.duration.as_secs_f64();
    Ok(PollFigures {
        mode: "poll",
        connections: n,
        server_processes: shares.len() as u64,
        client_processes: shares.len() as u64,
        duration_s,
        rate_per_connection: plan.rate,
        polls,
        polls_per_s: per(polls as f64, duration_s),
        polls_late: clients.sum(|r| r.late),
        polls_skipped: clients.sum(|r| r.skipped),
        server_answers: servers.sum(|r| r.answers),
        connections_closed: clients.sum(|r| r.closed) + servers.sum(|r| r.closed),
        write_errors: clients.sum(|r| r.write_errors) + servers.sum(|r| r.write_errors),
        writes_queued: clients.sum(|r| r.writes_queued) + servers.sum(|r| r.writes_queued),
        server_cpu_s: round3(server_cpu),
        server_cpu_us_per_poll: per(server_cpu * 1e6, polls as f64),
        client_cpu_s: round3(client_cpu),
        client_cpu_us_per_poll: per(client_cpu * 1e6, polls as f64),
        cpu_us_per_poll: per((server_cpu + client_cpu) * 1e6, polls as f64),
        cores_busy: per(server_cpu + client_cpu, duration_s),
        latency_us: Percentiles::of(&clients.histogram()?),
        server_peak_rss_bytes: servers.peak_rss(),
        server_peak_rss_bytes_per_connection: per(servers.peak_rss() as f64, n as f64),
        server_added_rss_bytes_per_connection: per(servers.added_rss() as f64, n as f64),
        client_peak_rss_bytes: clients.peak_rss(),
        client_peak_rss_bytes_per_connection: per(clients.peak_rss() as f64, n as f64),
        client_added_rss_bytes_per_connection: per(clients.added_rss() as f64, n as f64),
        setup_s: round3(setup_s),
        run_s: round3(run_s),
        cpus: cpus(),
        loadavg_before,
    })
}

/// A small run of both modes over two processes per side: `cargo test --all-targets` checks
/// that the floor still works without taking the machine for long.
fn smoke() -> Result<()> {
    let fanout = run_fanout(&FanoutPlan {
        connections: 300,
        messages: 3,
        interval: Duration::from_millis(50),
        size: 20,
        per_process: 150,
    })?;
    ensure!(
        fanout.messages_delivered == fanout.messages_expected && fanout.messages_lost == 0,
        "fan-out smoke check: {} of {} delivered, {} lost",
        fanout.messages_delivered,
        fanout.messages_expected,
        fanout.messages_lost
    );
    let poll = run_poll(&PollPlan {
        connections: 300,
        duration: Duration::from_millis(500),
        rate: None,
        per_process: 150,
    })?;
    ensure!(poll.polls > 0, "poll smoke check: no poll completed");
    println!(
        "floor smoke check: fanout {}/{} delivered, {} µs CPU per message; poll {} polls/s, {} µs CPU per poll",
        fanout.messages_delivered,
        fanout.messages_expected,
        fanout.cpu_us_per_message,
        poll.polls_per_s,
        poll.cpu_us_per_poll
    );
    println!("run the floor itself with `cargo bench --bench floor -- --help`");
    Ok(())
}

/// `total` split into shares of at most `most`, as even as they come.
fn split(total: usize, most: usize) -> Vec<usize> {
    let parts = total.div_ceil(most);
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// Server process `i` listens on its own address, so its connections get their own ports.
fn server_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 88, 1 + i as u8)
}

/// Client process `i` connects from addresses 127.0.<100 + i>.x.
fn source_net(i: usize) -> [u8; 3] {
    [127, 0, 100 + i as u8]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpus() -> u64 {
    std::thread::available_parallelism().map_or(0, |n| n.get() as u64)
}

/// Both sides' child processes, in step.
struct Fleet {
    servers: Vec<Child>,
    clients: Vec<Child>,
}

impl Fleet {
    /// Starts one server and one client process per share and waits until every connection
    /// is made and accepted.
    fn start(
        server_role: &str,
        client_role: &str,
        shares: &[usize],
        args: impl Fn(usize) -> Vec<String>,
    ) -> Result<Fleet> {
        let mut servers = Vec::new();
        for (i, &n) in shares.iter().enumerate() {
            let mut a = vec![
                server_role.to_string(),
                "--ip".into(),
                server_ip(i).to_string(),
            ];
            a.extend(args(n));
            servers.push(Child::spawn(format!("server {i}"), &a)?);
        }
        let mut clients = Vec::new();
        for (i, &n) in shares.iter().enumerate() {
            let target = servers[i].expect("listening")?;
            let mut a = vec![client_role.to_string(), "--target".into(), target];
            a.extend(["--index".to_string(), i.to_string()]);
            a.extend(args(n));
            clients.push(Child::spawn(format!("client {i}"), &a)?);
        }
        // Clients first: a client that cannot connect exits, and its server would wait.
        for c in &mut clients {
            c.expect("connected")?;
        }
        for s in &mut servers {
            s.expect("accepted")?;
        }
        Ok(Fleet { servers, clients })
    }

    /// Gives every process the same start time, collects what each measured, and ends them:
    /// clients first, so no server closes a connection whose data is still unread.
    fn go(&mut self) -> Result<(Side, Side)> {
        let t0 = now_us() + START_DELAY_US;
        for c in self.servers.iter_mut().chain(self.clients.iter_mut()) {
            c.send(&format!("go {t0}"))?;
        }
        let mut servers = Side::default();
        for s in &mut self.servers {
            servers.reports.push(s.result()?);
        }
        let mut clients = Side::default();
        for c in &mut self.clients {
            clients.reports.push(c.result()?);
        }
        for c in self.clients.iter_mut().chain(self.servers.iter_mut()) {
            c.finish()?;
        }
        Ok((servers, clients))
    }
}

/// One child process and the two ends of its line protocol.
struct Child {
    name: String,
    process: std::process::Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Child {
    fn spawn(name: String, args: &[String]) -> Result<Child> {
        let exe = std::env::current_exe().context("locating this bench binary")?;
        let mut process = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdin = process.stdin.take();
        let stdout = BufReader::new(process.stdout.take().context("child stdout")?);
        Ok(Child {
            name,
            process,
            stdin,
            stdout,
        })
    }

    /// The child's next line, which must start with `word`; returns the rest of it. Every
    /// child gives up on its own deadlines, so this never waits forever.
    fn expect(&mut self, word: &str) -> Result<String> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line)?;
        ensure!(n > 0, "{} ended before `{word}`", self.name);
        let rest = line.trim_end().strip_prefix(word).ok_or_else(|| {
            anyhow!(
                "{}: expected `{word}`, got `{}`",
                self.name,
                line.trim_end()
            )
        })?;
        Ok(rest.trim().to_string())
    }

    fn result(&mut self) -> Result<ChildReport> {
        let json = self.expect("result")?;
        serde_json::from_str(&json).with_context(|| format!("{}'s result", self.name))
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("child stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("telling {} `{line}`", self.name))
    }

    /// Tells the child to exit and waits for it.
    fn finish(&mut self) -> Result<()> {
        let _ = self.send("exit");
        self.stdin = None;
        let status = self.process.wait()?;
        ensure!(status.success(), "{} exited with {status}", self.name);
        Ok(())
    }
}

impl Drop for Child {
    /// A run that failed half-way leaves no process behind.
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child side: the line protocol, sockets, clock
// ---------------------------------------------------------------------------------------------

/// Tells the coordinator one step (stdout is the protocol; errors go to stderr).
fn say(line: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The coordinator's next line; its end of the pipe closing means it is gone.
fn hear() -> Result<String> {
    let mut line = String::new();
    ensure!(
        io::stdin().read_line(&mut line)? > 0,
        "the coordinator went away"
    );
    Ok(line.trim().to_string())
}

/// Waits for `go <t0>`: the monotonic µs at which the run starts for every process.
fn hear_go() -> Result<u64> {
    let line = hear()?;
    line.strip_prefix("go ")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| anyhow!("expected `go <t0>`, got `{line}`"))
}

fn send_result(report: &ChildReport) -> Result<()> {
    say(&format!("result {}", serde_json::to_string(report)?))
}

/// Microseconds of CLOCK_MONOTONIC: one clock for every process on this machine, so a
/// client can subtract a server's timestamp.
fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

fn until(t_us: u64) -> Duration {
    Duration::from_micros(t_us.saturating_sub(now_us()))
}

/// One epoll_wait; a signal only ends it early.
fn wait(poll: &mut Poll, events: &mut Events, timeout: Duration) -> Result<()> {
    match poll.poll(events, Some(timeout)) {
        Err(e) if e.kind() == ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        other => other.context("epoll_wait"),
    }
}

/// A listener on `ip`, on a fresh ephemeral port: no run ever meets another's TIME_WAIT.
fn listen(ip: Ipv4Addr) -> Result<TcpListener> {
    let listener = TcpListener::bind(SocketAddr::new(ip.into(), 0))
        .with_context(|| format!("listening on {ip}"))?;
    // mio listens with std's backlog of 128; a burst of connects would overflow it and wait
    // out SYN retransmits. Calling listen again on a listening socket only resizes it.
    // SAFETY: a valid socket fd; listen has no memory preconditions.
    unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) };
    Ok(listener)
}

/// Accepts `n` connections, registering each for `interest` under its index as token.
fn accept_all(
    poll: &mut Poll,
    listener: &mut TcpListener,
    n: usize,
    interest: Interest,
) -> Result<Vec<TcpStream>> {
    const LISTENER: Token = Token(usize::MAX);
    let deadline = Instant::now() + SETUP_TIMEOUT;
    poll.registry()
        .register(listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or_else(|| anyhow!("accepted only {} of {n} connections in time", conns.len()))?;
        wait(poll, &mut events, left)?;
        // Edge-triggered: accept until the queue is empty.
        while conns.len() < n {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    // Messages are small and must leave at once, not wait for Nagle.
                    stream.set_nodelay(true)?;
                    poll.registry()
                        .register(&mut stream, Token(conns.len()), interest)?;
                    conns.push(stream);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("accept"),
            }
        }
    }
    poll.registry().deregister(listener)?;
    Ok(conns)
}

/// Opens `n` connections to `target`, a bounded number in progress at once, each
/// registered for reading and writing under its index as token. Connection k comes from
/// source address `source_net`.(1 + k / SOURCE_SHARE): the kernel's search for a free source
/// port grows with the connections already open between one pair of addresses (18,000 from
/// one address took 4–15 s of kernel time here), so no pair carries many.
fn connect_all(
    poll: &mut Poll,
    source_net: [u8; 3],
    target: SocketAddrV4,
    n: usize,
) -> Result<Vec<TcpStream>> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut events = Events::with_capacity(1024);
    let mut conns = Vec::with_capacity(n);
    let mut done = vec![false; n];
    let mut connected = 0;
    while connected < n {
        while conns.len() < n && conns.len() - connected < CONNECTS_IN_FLIGHT {
            let k = conns.len();
            let [a, b, c] = source_net;
            let source = Ipv4Addr::new(a, b, c, 1 + (k / SOURCE_SHARE) as u8);
            let mut stream = connect_from(source, target)
                .with_context(|| format!("connecting {source} to {target} (connection {k})"))?;
            poll.registry().register(
                &mut stream,
                Token(k),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            conns.push(stream);
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or_else(|| anyhow!("connected only {connected} of {n} in time"))?;
        wait(poll, &mut events, left)?;
        for ev in &events {
            let i = ev.token().0;
            if done[i] || !(ev.is_writable() || ev.is_error()) {
                continue;
            }
            // A non-blocking connect has finished when the socket turns writable: with an
            // error, or with a peer.
            if let Some(e) = conns[i].take_error()? {
                return Err(e).with_context(|| format!("connecting to {target}"));
            }
            match conns[i].peer_addr() {
                Ok(_) => {
                    done[i] = true;
                    connected += 1;
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => {}
                Err(e) => return Err(e).with_context(|| format!("connecting to {target}")),
            }
        }
    }
    for stream in &conns {
        stream.set_nodelay(true)?;
    }
    Ok(conns)
}

/// A non-blocking TCP connect from `source` to `target`, its source port chosen at connect
/// time (IP_BIND_ADDRESS_NO_PORT), so that the port need only be free towards `target`.
/// mio's own `connect` cannot bind first, hence the raw calls.
fn connect_from(source: Ipv4Addr, target: SocketAddrV4) -> io::Result<TcpStream> {
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on an fd this function owns (the TcpStream closes it on
    // every path), with pointers to locals of the sizes passed.
    unsafe {
        let fd = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let stream = TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        check(libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ))?;
        let from = sockaddr(source, 0);
        check(libc::bind(
            fd,
            (&from as *const libc::sockaddr_in).cast(),
            len,
        ))?;
        let to = sockaddr(*target.ip(), target.port());
        if libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len) < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(stream)
    }
}

/// Closes with a reset instead of a FIN: 100k sockets in TIME_WAIT would hold the
/// machine's ports and memory for a minute after every run.
fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// Writes that the kernel did not take at once, per connection index; they go out when the
/// socket turns writable. Small writes at these rates never fill a socket buffer, so this
/// stays empty and costs nothing; it exists so that a slow reader cannot corrupt a stream.
#[derive(Default)]
struct Backlog {
    queued: HashMap<usize, Vec<u8>>,
    writes: u64,
    writes_queued: u64,
    errors: u64,
}

impl Backlog {
    fn write(&mut self, i: usize, mut stream: &TcpStream, bytes: &[u8]) {
        if let Some(queue) = self.queued.get_mut(&i) {
            queue.extend_from_slice(bytes);
            self.writes_queued += 1;
            return;
        }
        loop {
            match stream.write(bytes) {
                Ok(n) => {
                    self.writes += 1;
                    if n < bytes.len() {
                        self.queued.insert(i, bytes[n..].to_vec());
                        self.writes_queued += 1;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.queued.insert(i, bytes.to_vec());
                    self.writes_queued += 1;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The peer is gone; the delivery count shows what it missed.
                Err(_) => self.errors += 1,
            }
            return;
        }
    }

    /// Sends what connection `i` has queued, as far as the socket takes it.
    fn flush(&mut self, i: usize, mut stream: &TcpStream) {
        let Some(queue) = self.queued.get_mut(&i) else {
            return;
        };
        while !queue.is_empty() {
            match stream.write(queue) {
                Ok(n) => {
                    self.writes += 1;
                    queue.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.errors += 1;
                    queue.clear();
                }
            }
        }
        self.queued.remove(&i);
    }
}

// ---------------------------------------------------------------------------------------------
// Fan-out: the server writes every round to every connection; the client reads and times
// ---------------------------------------------------------------------------------------------

fn serve_fanout(mut o: Opts) -> Result<()> {
    let ip: Ipv4Addr = o.required("ip")?;
    let n: usize = o.required("connections")?;
    let messages: u64 = o.required("messages")?;
    let interval_us: u64 = o.required("interval-us")?;
    let size: usize = o.required("size")?;
    o.done()?;
    raise_fd_limit();
    let rss_before = rss_bytes("self").unwrap_or(0);
    let mut listener = listen(ip)?;
    say(&format!("listening {}", listener.local_addr()?))?;
    let mut poll = Poll::new()?;
    // Only writable readiness: the server never reads, and hears of a queued write's socket
    // draining (which never happens at these rates) through it.
    let conns = accept_all(&mut poll, &mut listener, n, Interest::WRITABLE)?;
    drop(listener);
    say(&format!("accepted {}", conns.len()))?;

    let t0 = hear_go()?;
    let cpu0 = own_cpu_s();
    let mut events = Events::with_capacity(1024);
    let mut backlog = Backlog::default();
    let mut message = vec![0u8; size];
    let mut rounds_us = Vec::with_capacity(messages as usize);
    for k in 0..messages {
        let intended = t0 + k * interval_us;
        // Sleep until the round's time, sending what a full socket refused earlier.
        while now_us() < intended {
            wait(&mut poll, &mut events, until(intended))?;
            for ev in &events {
                backlog.flush(ev.token().0, &conns[ev.token().0]);
            }
        }
        message[..8].copy_from_slice(&k.to_le_bytes());
        // The intended time, not the actual one: a server that falls behind shows as latency.
        message[8..16].copy_from_slice(&intended.to_le_bytes());
        for (i, stream) in conns.iter().enumerate() {
            backlog.write(i, stream, &message);
        }
        rounds_us.push(now_us() - intended);
    }
    let drain_until = now_us() + GRACE_US;
    while !backlog.queued.is_empty() && now_us() < drain_until {
        wait(&mut poll, &mut events, until(drain_until))?;
        for ev in &events {
            backlog.flush(ev.token().0, &conns[ev.token().0]);
        }
    }
    let cpu_s = own_cpu_s() - cpu0;
    send_result(&ChildReport {
        connections: n as u64,
        cpu_s,
        writes: backlog.writes,
        writes_queued: backlog.writes_queued,
        write_errors: backlog.errors,
        rounds_us,
        rss_before,
        peak_rss: peak_rss_bytes("self").unwrap_or(0),
        ..ChildReport::default()
    })?;
    let _ = hear(); // `exit`, or the coordinator is gone: either way, done
    conns.iter().for_each(reset_on_close);
    Ok(())
}

/// One subscriber connection: 4 bytes of socket, 4 of sequence, and a carry that only
/// holds (and allocates) anything when a message is split across two reads.
struct Subscriber {
    stream: TcpStream,
    next_seq: u32,
    open: bool,
    carry: Vec<u8>,
}

/// What a client process counted.
struct Tally {
    histogram: Histogram<u64>,
    reads: u64,
    delivered: u64,
    lost: u64,
    duplicated: u64,
}

impl Tally {
    /// One whole message: its latency from the round's intended time, and its sequence
    /// number against the one expected next on that connection.
    fn message(&mut self, next_seq: &mut u32, message: &[u8], now: u64) {
        let seq = u64::from_le_bytes(message[..8].try_into().expect("8 bytes"));
        let intended = u64::from_le_bytes(message[8..16].try_into().expect("8 bytes"));
        pushbench::stats::record_latency(&mut self.histogram, now.saturating_sub(intended));
        let expected = u64::from(*next_seq);
        if seq >= expected {
            self.delivered += 1;
            self.lost += seq - expected;
            *next_seq = seq as u32 + 1;
        } else {
            self.duplicated += 1;
        }
    }
}

fn client_fanout(mut o: Opts) -> Result<()> {
    let target: SocketAddrV4 = o.required("target")?;
    let source_net = source_net(o.required("index")?);
    let n: usize = o.required("connections")?;
    let messages: u64 = o.required("messages")?;
    let interval_us: u64 = o.required("interval-us")?;
    let size: usize = o.required("size")?;
    o.done()?;
    raise_fd_limit();
    // Allocated before the baseline, so that "added" RSS is what the connections cost.
    let mut tally = Tally {
        histogram: new_histogram(),
        reads: 0,
        delivered: 0,
        lost: 0,
        duplicated: 0,
    };
    let mut buf = vec![0u8; READ_BUFFER];
    let mut events = Events::with_capacity(4096);
    let rss_before = rss_bytes("self").unwrap_or(0);
    let mut poll = Poll::new()?;
    let mut subs: Vec<Subscriber> = connect_all(&mut poll, source_net, target, n)?
        .into_iter()
        .map(|stream| Subscriber {
            stream,
            next_seq: 0,
            open: true,
            carry: Vec::new(),
        })
        .collect();
    say(&format!("connected {n}"))?;

    let t0 = hear_go()?;
    let cpu0 = own_cpu_s();
    let expected = n as u64 * messages;
    let deadline = t0 + (messages - 1) * interval_us + GRACE_US.max(2 * interval_us);
    let mut closed = 0;
    while tally.delivered < expected && now_us() < deadline {
        wait(&mut poll, &mut events, until(deadline))?;
        for ev in &events {
            let sub = &mut subs[ev.token().0];
            if !sub.open || !(ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                continue;
            }
            if !read_messages(sub, &mut buf, size, &mut tally) {
                sub.open = false;
                closed += 1;
                poll.registry().deregister(&mut sub.stream)?;
            }
        }
    }
    let cpu_s = own_cpu_s() - cpu0;
    // Messages that never came at the end of a connection's sequence.
    let missing: u64 = subs
        .iter()
        .map(|s| messages.saturating_sub(u64::from(s.next_seq)))
        .sum();
    send_result(&ChildReport {
        connections: n as u64,
        cpu_s,
        reads: tally.reads,
        delivered: tally.delivered,
        lost: tally.lost + missing,
        duplicated: tally.duplicated,
        closed,
        rss_before,
        peak_rss: peak_rss_bytes("self").unwrap_or(0),
        histogram: encode_histogram(&tally.histogram)?,
        ..ChildReport::default()
    })?;
    let _ = hear();
    subs.iter().for_each(|s| reset_on_close(&s.stream));
    Ok(())
}

/// Reads what one readable connection has; false once the peer has closed it.
fn read_messages(sub: &mut Subscriber, buf: &mut [u8], size: usize, tally: &mut Tally) -> bool {
    loop {
        let n = match (&sub.stream).read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        tally.reads += 1;
        let now = now_us();
        let mut data = &buf[..n];
        // Finish a message the previous read split.
        if !sub.carry.is_empty() {
            let take = (size - sub.carry.len()).min(data.len());
            sub.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if sub.carry.len() == size {
                let message = std::mem::take(&mut sub.carry);
                tally.message(&mut sub.next_seq, &message, now);
            }
        }
        let mut whole = data.chunks_exact(size);
        for message in &mut whole {
            tally.message(&mut sub.next_seq, message, now);
        }
        sub.carry.extend_from_slice(whole.remainder());
        // A short read emptied the socket: epoll (edge-triggered) reports the next data as a
        // new edge, so the usual extra read that only returns EAGAIN is skipped.
        if n < buf.len() {
            return true;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Poll: closed-loop request/answer
// ---------------------------------------------------------------------------------------------

fn serve_poll(mut o: Opts) -> Result<()> {
    let ip: Ipv4Addr = o.required("ip")?;
    let n: usize = o.required("connections")?;
    let duration_us: u64 = o.required("duration-us")?;
    let _rate: Option<f64> = o.take_opt("rate")?; // the client's business
    o.done()?;
    raise_fd_limit();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut events = Events::with_capacity(4096);
    let rss_before = rss_bytes("self").unwrap_or(0);
    let mut listener = listen(ip)?;
    say(&format!("listening {}", listener.local_addr()?))?;
    let mut poll = Poll::new()?;
    let conns = accept_all(
        &mut poll,
        &mut listener,
        n,
        Interest::READABLE | Interest::WRITABLE,
    )?;
    drop(listener);
    // Per connection: how many bytes of a request have come so far (0..60). The server does
    // not parse: every 60 bytes are one request, answered with the 121 bytes.
    let mut partial = vec![0u8; n];
    let mut open = vec![true; n];
    say(&format!("accepted {n}"))?;

    let t0 = hear_go()?;
    let cpu0 = own_cpu_s();
    let end = t0 + duration_us;
    let mut backlog = Backlog::default();
    let (mut answers, mut closed) = (0, 0);
    let mut answer = Vec::new();
    while now_us() < end {
        wait(&mut poll, &mut events, until(end))?;
        for ev in &events {
            let i = ev.token().0;
            if !open[i] {
                continue;
            }
            if ev.is_writable() {
                backlog.flush(i, &conns[i]);
            }
            if !(ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                continue;
            }
            let (requests, alive) =
                read_counting(&conns[i], &mut buf, &mut partial[i], REQUEST.len());
            if requests == 1 {
                backlog.write(i, &conns[i], RESPONSE);
            } else if requests > 1 {
                answer.clear();
                (0..requests).for_each(|_| answer.extend_from_slice(RESPONSE));
                backlog.write(i, &conns[i], &answer);
            }
            answers += requests;
            if !alive {
                open[i] = false;
                closed += 1;
            }
        }
    }
    let cpu_s = own_cpu_s() - cpu0;
    send_result(&ChildReport {
        connections: n as u64,
        cpu_s,
        writes: backlog.writes,
        writes_queued: backlog.writes_queued,
        write_errors: backlog.errors,
        answers,
        closed,
        rss_before,
        peak_rss: peak_rss_bytes("self").unwrap_or(0),
        ..ChildReport::default()
    })?;
    let _ = hear();
    conns.iter().for_each(reset_on_close);
    Ok(())
}

/// Reads what a readable socket has and counts the fixed-size units completed, carrying
/// the bytes of an unfinished one in `partial`. Returns (units, still open).
fn read_counting(
    mut stream: &TcpStream,
    buf: &mut [u8],
    partial: &mut u8,
    unit: usize,
) -> (u64, bool) {
    let mut units = 0;
    loop {
        match stream.read(buf) {
            Ok(0) => return (units, false),
            Ok(n) => {
                let total = usize::from(*partial) + n;
                units += (total / unit) as u64;
                *partial = (total % unit) as u8;
                // Short read: drained (see read_messages).
                if n < buf.len() {
                    return (units, true);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return (units, true),
            Err(_) => return (units, false),
        }
    }
}

/// One polling connection.
struct Asker {
    stream: TcpStream,
    /// Bytes of the current answer received so far (0..121).
    partial: u8,
    /// A request is out and its answer not complete.
    waiting: bool,
    open: bool,
    /// When the request out was meant to be sent (µs): latency counts from here.
    sent_at: u64,
    /// With `--rate`: the slot of a request that came due while one was out, else 0.
    owed: u64,
}

fn client_poll(mut o: Opts) -> Result<()> {
    let target: SocketAddrV4 = o.required("target")?;
    let source_net = source_net(o.required("index")?);
    let n: usize = o.required("connections")?;
    let duration_us: u64 = o.required("duration-us")?;
    let rate: Option<f64> = o.take_opt("rate")?;
    o.done()?;
    raise_fd_limit();
    let mut histogram = new_histogram();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut events = Events::with_capacity(4096);
    let rss_before = rss_bytes("self").unwrap_or(0);
    let mut poll = Poll::new()?;
    let mut askers: Vec<Asker> = connect_all(&mut poll, source_net, target, n)?
        .into_iter()
        .map(|stream| Asker {
            stream,
            partial: 0,
            waiting: false,
            open: true,
            sent_at: 0,
            owed: 0,
        })
        .collect();
    say(&format!("connected {n}"))?;

    let t0 = hear_go()?;
    let cpu0 = own_cpu_s();
    let end = t0 + duration_us;
    let mut backlog = Backlog::default();
    let (mut polls, mut late, mut skipped, mut closed) = (0u64, 0u64, 0u64, 0u64);
    // With --rate, slot k (k = 0, 1, ...) belongs to connection k mod n and is due at
    // t0 + k / (n × rate): the connections' polls are spread evenly over each period. With
    // no rate every connection sends at t0 and again as soon as its answer is in.
    let slot_us = rate.map(|r| 1e6 / (n as f64 * r));
    let slot_time = |k: u64| t0 + (k as f64 * slot_us.unwrap_or(0.0)) as u64;
    let mut next_slot: u64 = 0;
    if slot_us.is_none() {
        while now_us() < t0 {
            wait(&mut poll, &mut events, until(t0))?;
        }
        for (i, a) in askers.iter_mut().enumerate() {
            backlog.write(i, &a.stream, REQUEST);
            a.sent_at = now_us();
            a.waiting = true;
        }
    }
    loop {
        let now = now_us();
        if now >= end {
            break;
        }
        if slot_us.is_some() {
            // Send every request whose slot has come, unless its connection still waits.
            while slot_time(next_slot) <= now {
                let i = (next_slot % n as u64) as usize;
                let a = &mut askers[i];
                if !a.open {
                    // A closed connection's slots pass unused.
                } else if !a.waiting {
                    backlog.write(i, &a.stream, REQUEST);
                    a.sent_at = slot_time(next_slot);
                    a.waiting = true;
                } else if a.owed == 0 {
                    a.owed = slot_time(next_slot);
                    late += 1;
                } else {
                    skipped += 1;
                }
                next_slot += 1;
            }
        }
        let wake = if slot_us.is_some() {
            slot_time(next_slot).min(end)
        } else {
            end
        };
        wait(&mut poll, &mut events, until(wake))?;
        for ev in &events {
            let i = ev.token().0;
            let a = &mut askers[i];
            if !a.open {
                continue;
            }
            if ev.is_writable() {
                backlog.flush(i, &a.stream);
            }
            if !(ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                continue;
            }
            let (answers, alive) =
                read_counting(&a.stream, &mut buf, &mut a.partial, RESPONSE.len());
            if answers > 0 {
                let now = now_us();
                pushbench::stats::record_latency(&mut histogram, now.saturating_sub(a.sent_at));
                polls += answers;
                a.waiting = false;
                if now < end && slot_us.is_none() {
                    backlog.write(i, &a.stream, REQUEST);
                    a.sent_at = now;
                    a.waiting = true;
                } else if now < end && a.owed != 0 {
                    backlog.write(i, &a.stream, REQUEST);
                    a.sent_at = std::mem::take(&mut a.owed);
                    a.waiting = true;
                }
            }
            if !alive {
                a.open = false;
                closed += 1;
            }
        }
    }
    let cpu_s = own_cpu_s() - cpu0;
    send_result(&ChildReport {
        connections: n as u64,
        cpu_s,
        writes: backlog.writes,
        writes_queued: backlog.writes_queued,
        write_errors: backlog.errors,
        polls,
        late,
        skipped,
        closed,
        rss_before,
        peak_rss: peak_rss_bytes("self").unwrap_or(0),
        histogram: encode_histogram(&histogram)?,
        ..ChildReport::default()
    })?;
    let _ = hear();
    askers.iter().for_each(|a| reset_on_close(&a.stream));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Options: `--key value` pairs, parsed by hand (clap would have to learn cargo's `--bench`)
// ---------------------------------------------------------------------------------------------

struct Opts {
    values: BTreeMap<String, String>,
    json: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut values = BTreeMap::new();
        let mut json = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| anyhow!("unexpected argument `{arg}` (see --help)"))?;
            if key == "json" {
                json = true;
                continue;
            }
            let (key, value) = match key.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => {
                    let v = args
                        .next()
                        .ok_or_else(|| anyhow!("--{key} needs a value"))?;
                    (key.to_string(), v.clone())
                }
            };
            ensure!(!values.contains_key(&key), "--{key} given twice");
            values.insert(key, value);
        }
        Ok(Opts { values, json })
    }

    fn take_opt<T: FromStr>(&mut self, key: &str) -> Result<Option<T>>
    where
        T::Err: Display,
    {
        self.values
            .remove(key)
            .map(|v| v.parse().map_err(|e| anyhow!("--{key} {v}: {e}")))
            .transpose()
    }

    fn take<T: FromStr>(&mut self, key: &str, default: T) -> Result<T>
    where
        T::Err: Display,
    {
        Ok(self.take_opt(key)?.unwrap_or(default))
    }

    fn required<T: FromStr>(&mut self, key: &str) -> Result<T>
    where
        T::Err: Display,
    {
        self.take_opt(key)?
            .ok_or_else(|| anyhow!("--{key} is required"))
    }

    fn take_duration(&mut self, key: &str, default: Duration) -> Result<Duration> {
        match self.values.remove(key) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(&v).map_err(|e| anyhow!("--{key} {v}: {e}")),
        }
    }

    /// Fails on any option no one asked for: a typo must not silently run the default.
    fn done(self) -> Result<()> {
        match self.values.keys().next() {
            Some(key) => bail!("unknown option --{key} (see --help)"),
            None => Ok(()),
        }
    }
}
