//! The link between fleet and target, against the real kernel (these tests need root, as CI
//! has): namespaces, conditions as qdiscs and iptables rules, the userspace delay line,
//! faults, and teardown. Counts decide; the one timing asserted is a lower bound (a delay
//! line never releases a packet early).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pushbench::link::command::Cmd;
use pushbench::link::{Conditions, Direction, Link};

fn delay_each_way(ms: u64) -> Conditions {
    let way = Direction {
        delay: Duration::from_millis(ms),
        ..Direction::default()
    };
    Conditions {
        profile: None,
        up: way,
        down: way,
    }
}

/// `pushbench serve` inside the link's target namespace, on every address of it.
struct Served {
    child: Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hub in the link's target namespace, on the target's `k`-th link address only.
fn serve_in(link: &Link, k: usize) -> Served {
    let listen = format!("{}:0", link.target_ip(k));
    let mut child = Command::new("ip")
        .args(["netns", "exec", &link.target_ns()])
        .arg(env!("CARGO_BIN_EXE_pushbench"))
        .args(["serve", "--listen", &listen])
        .stdout(Stdio::piped())
        .spawn()
        .expect("pushbench serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Served {
        child,
        port: addr.port(),
    }
}

/// One HTTP/1.1 GET of the hub's counters over `stream`; true if it answered 200.
fn get_stats(stream: &mut TcpStream) -> bool {
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    buf[..n].starts_with(b"HTTP/1.1 200")
}

/// The kernel's smoothed RTT of a connected socket (`TCP_INFO`), µs.
fn srtt_us(stream: &TcpStream) -> u32 {
    // SAFETY: a zeroed tcp_info is valid; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    info.tcpi_rtt
}

fn our_namespaces() -> Vec<String> {
    let listed = Cmd::new("ip", &["netns", "list"]).run().unwrap();
    let mine = format!("pb-{}-", std::process::id());
    listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&mine))
        .map(str::to_string)
        .collect()
}

#[test]
fn conditions_are_kernel_state_and_teardown_leaves_nothing() {
    let mut c = delay_each_way(20);
    c.up.loss = 0.02;
    c.down.rate_bps = Some(1_000_000);
    let link = Link::up(&c).expect("link up (needs root)");
    let ns = link.target_ns();
    let state = link.kernel_state().unwrap();
    assert!(
        state.contains("qdisc tbf") && state.contains("rate 1Mbit"),
        "{state}"
    );
    assert!(
        state.contains("-m statistic --mode random --probability 0.02"),
        "{state}"
    );
    assert!(
        state.contains("-j NFQUEUE --queue-num 0 --queue-bypass"),
        "{state}"
    );
    assert!(
        state.contains("-j NFQUEUE --queue-num 1 --queue-bypass"),
        "{state}"
    );
    assert!(our_namespaces().contains(&ns));
    drop(link);
    assert!(!our_namespaces().contains(&ns), "{ns} is still there");
    let links = Cmd::new("ip", &["-o", "link", "show"]).run().unwrap();
    let slot = ns.rsplit('-').nth(1).unwrap();
    for suffix in ["f", "b"] {
        assert!(!links.contains(&format!(" pb{slot}{suffix}")), "{links}");
    }
}

#[test]
fn fifty_ms_each_way_is_at_least_a_100_ms_round_trip() {
    let link = Link::up(&delay_each_way(50)).expect("link up (needs root)");
    let served = serve_in(&link, 3);
    let addr = SocketAddr::new(link.target_ip(3).into(), served.port);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..5 {
        assert!(get_stats(&mut stream));
    }
    let rtt = srtt_us(&stream);
    assert!(
        rtt >= 100_000,
        "smoothed RTT {rtt} µs under the configured 100 ms"
    );
    eprintln!("configured RTT 100 ms, measured smoothed RTT {rtt} µs");
    assert!(link.record().delayed_packets >= 10, "{:?}", link.record());
}

#[test]
fn a_blackhole_lets_nothing_through_and_its_end_lets_everything_through() {
    let link = Link::up(&Conditions::default()).expect("link up (needs root)");
    let served = serve_in(&link, 0);
    let addr = SocketAddr::new(link.target_ip(0).into(), served.port);
    link.blackhole(true).unwrap();
    let attempts: Vec<bool> = (0..3)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok())
        .collect();
    assert_eq!(attempts, [false, false, false]);
    link.blackhole(false).unwrap();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(get_stats(&mut stream));
}

#[test]
fn a_cut_resets_every_connection() {
    let link = Link::up(&Conditions::default()).expect("link up (needs root)");
    let served = serve_in(&link, 1);
    let addr = SocketAddr::new(link.target_ip(1).into(), served.port);
    let mut streams: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
        .collect();
    for s in &mut streams {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(get_stats(s));
    }
    link.cut().unwrap();
    let reset = streams
        .iter()
        .filter(|s| {
            let (mut buf, mut reader): ([u8; 16], &TcpStream) = ([0; 16], s);
            let read = reader.read(&mut buf);
            matches!(read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
        })
        .count();
    assert_eq!(reset, 4);
}

#[test]
fn a_crashed_runs_leftovers_are_removed_at_the_next_start() {
    // A pid above the kernel's largest possible one never belongs to a live process.
    let leftover = "pb-4194305-250-link";
    Cmd::new("ip", &["netns", "add", leftover]).run().unwrap();
    let link = Link::up(&Conditions::default()).expect("link up (needs root)");
    let listed = Cmd::new("ip", &["netns", "list"]).run().unwrap();
    assert!(!listed.contains(leftover), "{listed}");
    drop(link);
}

/// A whole run through the binary: SSE resumes after a cut with `Last-Event-ID`, losing
/// nothing; WebSocket reconnects and goes on; after a 2 s blackhole every client's first
/// delivery is counted as its recovery. The link is gone when the run is.
#[test]
fn after_a_cut_sse_resumes_without_loss_and_every_client_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("cut.toml");
    std::fs::write(
        &scenario,
        r#"name = "cut"
clients = 20
connect_rate = "200/s"
warmup = "1s"
duration = "6s"
drain = "3s"
[messages]
rate = "4/s"
[network]
delay = "10ms"
[[faults]]
kind = "cut"
at = "1500ms"
[[faults]]
kind = "blackhole"
at = "3s"
duration = "2s"
[[transports]]
kind = "sse"
headers = "minimal"
[[transports]]
kind = "websocket"
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let results: serde_json::Value = serde_json::from_str(&text).unwrap();
    let runs = results.as_array().unwrap();
    for run in runs {
        let fault = &run["link_faults"][0];
        assert_eq!(fault["kind"], "cut", "{run}");
        assert_eq!(fault["error"], "", "{run}");
        assert_eq!(fault["reconnects_after"], 20, "{run}");
        assert_eq!(run["reconnects"], 20, "{run}");
        assert!(
            run["link_rtt_measured_ms"].as_f64().unwrap() >= 20.0,
            "{run}"
        );
        assert_eq!(
            run["link"]["configured"]["emulator"],
            "tbf+iptables+nfqueue"
        );
        // No delivery for 2 s is every client's longest silence: each recovers after it.
        let blackhole = &run["link_faults"][1];
        assert_eq!(blackhole["kind"], "blackhole", "{run}");
        assert_eq!(blackhole["error"], "", "{run}");
        assert_eq!(blackhole["clients_recovered"], 20, "{run}");
    }
    let sse = &runs[0];
    assert_eq!(sse["transport_kind"], "sse");
    assert_eq!(
        (&sse["lost"], &sse["duplicated"]),
        (&0.into(), &0.into()),
        "{sse}"
    );
    assert_eq!(sse["messages_delivered"], 24 * 20, "{sse}");
    let listed = Cmd::new("ip", &["netns", "list"]).run().unwrap();
    assert!(!listed.contains(&format!("pb-{pid}-")), "{listed}");
}

/// Without CAP_NET_ADMIN a [network] scenario stops before any run, saying what it needs.
#[test]
fn without_net_admin_a_network_scenario_says_it_needs_root() {
    let output = Command::new("setpriv")
        .args(["--inh-caps=-net_admin", "--bounding-set=-net_admin"])
        .arg(env!("CARGO_BIN_EXE_pushbench"))
        .args([
            "run",
            "scenarios/blackhole.toml",
            "--out",
            "/nonexistent/never-written",
        ])
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs root (CAP_NET_ADMIN)"), "{stderr}");
    assert!(
        !stderr.contains("transport run(s)"),
        "it started running: {stderr}"
    );
}

/// A Last Will run whose clients are silenced by the network (a blackhole on the link), not
/// by themselves: every client's will arrives, once.
#[test]
fn a_blackhole_brings_every_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["run", "scenarios/mqtt-last-will-blackhole.toml", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let results: serde_json::Value = serde_json::from_str(&text).unwrap();
    let run = &results[0];
    assert_eq!(run["clients_connected"], 30, "{run}");
    assert_eq!(run["messages_expected"], 30, "{run}");
    assert_eq!(run["messages_delivered"], 30, "{run}");
    assert_eq!(run["duplicated"], 0, "{run}");
}

/// Runs a scenario through the binary; returns its results and the run's pid. The run must
/// succeed: a scheduled fault is not a fault of the target.
fn run_scenario(toml: &str) -> (Vec<serde_json::Value>, u32) {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, toml).unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let results: serde_json::Value = serde_json::from_str(&text).unwrap();
    (results.as_array().unwrap().clone(), pid)
}

/// A restart of the embedded hub: every client reconnects to the new process on the same
/// port. The kill falls half a publish interval after a publish (2025 ms at 20/s), when no
/// message is inside the hub, so each message was either refused (a failed publish, missed
/// by all 20 clients) or stored by one of the two hubs. SSE resumes with `Last-Event-ID`,
/// long polling with its `Etag`, and the restarted hub, which never gave that id, sends all
/// it has: both lose exactly the refused messages. WebSocket loses them too, and also what
/// the new hub pushed before a client was back.
#[test]
fn after_a_restart_every_client_reconnects_and_resuming_loses_only_what_the_hub_refused() {
    let (runs, _) = run_scenario(
        r#"name = "restart"
clients = 20
connect_rate = "200/s"
warmup = "1s"
duration = "5s"
drain = "3s"
[messages]
rate = "20/s"
[network]
delay = "10ms"
[[faults]]
kind = "restart"
at = "2025ms"
[[transports]]
kind = "sse"
headers = "minimal"
[[transports]]
kind = "websocket"
[[transports]]
kind = "http-longpoll"
headers = "minimal"
"#,
    );
    for run in &runs {
        let restart = &run["link_faults"][0];
        assert_eq!(restart["kind"], "restart", "{run}");
        assert_eq!(restart["error"], "", "{run}");
        assert!(restart["reconnects_after"].as_u64().unwrap() >= 20, "{run}");
        assert_eq!(run["fault"], "", "{run}");
        // Every failed publish was one the restart refused.
        assert_eq!(run["publish_errors"], restart["publishes_failed"], "{run}");
        eprintln!(
            "{}: restart took {:.1} ms, {} publishes refused, lost {}, recovery p50 {} ms",
            run["transport"],
            restart["duration_s"].as_f64().unwrap() * 1e3,
            restart["publishes_failed"],
            run["lost"],
            restart["recovery_p50_ms"]
        );
    }
    let refused = |run: &serde_json::Value| run["link_faults"][0]["publishes_failed"].as_u64();
    let (sse, ws, longpoll) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(sse["transport_kind"], "sse");
    assert_eq!(longpoll["transport_kind"], "http-longpoll");
    for resuming in [sse, longpoll] {
        let lost = resuming["lost"].as_u64();
        assert_eq!(lost, refused(resuming).map(|n| n * 20), "{resuming}");
        assert_eq!(resuming["duplicated"], 0, "{resuming}");
    }
    assert!(ws["lost"].as_u64() >= refused(ws).map(|n| n * 20), "{ws}");
}

/// Long polling (and interval polling, twice as often as messages come) resumes by its `Etag`
/// after a cut: the client's validators outlive the reset connection, so the first poll on
/// the new one asks for what came after the last message it got. At 50 messages/s some are published while the clients reconnect; a poller that
/// started afresh would be answered from the newest and lose them (20 clients lost 200 so).
#[test]
fn after_a_cut_long_polling_resumes_by_its_etag_without_loss() {
    let (runs, _) = run_scenario(
        r#"name = "longpoll-cut"
clients = 20
connect_rate = "200/s"
warmup = "1s"
duration = "3s"
drain = "2s"
[messages]
rate = "50/s"
[network]
delay = "10ms"
[[faults]]
kind = "cut"
at = "1500ms"
[[transports]]
kind = "http-longpoll"
headers = "minimal"
[[transports]]
kind = "http-poll"
headers = "minimal"
interval = "10ms"
"#,
    );
    for run in &runs {
        assert_eq!(run["link_faults"][0]["reconnects_after"], 20, "{run}");
        assert_eq!(
            (&run["lost"], &run["duplicated"]),
            (&0.into(), &0.into()),
            "{run}"
        );
        assert_eq!(run["messages_delivered"], 150 * 20, "{run}");
    }
}
