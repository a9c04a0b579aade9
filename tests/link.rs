//! The link between fleet and target, against the real kernel (these tests need root, as CI
//! has): namespaces, conditions as qdiscs and iptables rules, the userspace delay line,
//! faults, and teardown. Counts decide, except where the issue asks for the emulator's
//! accuracy: RTT, retransmissions and rate within stated tolerances of what was configured.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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

/// The kernel's figures of a connected socket (`TCP_INFO`).
fn tcp_info(stream: &TcpStream) -> libc::tcp_info {
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
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info
}

/// A listener in the link's target namespace on its `k`-th address: a thread joins the
/// namespace to create the socket, which stays there whichever thread then uses it.
fn listen_in(link: &Link, k: usize) -> TcpListener {
    let path = format!("/run/netns/{}", link.target_ns());
    let ns = std::fs::File::open(&path).unwrap();
    let ip = link.target_ip(k);
    std::thread::spawn(move || {
        // SAFETY: setns on a namespace fd changes only this thread's network namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        TcpListener::bind((ip, 0)).unwrap()
    })
    .join()
    .unwrap()
}

/// Bytes the fleet's end of the link has received (Ethernet frames, as tbf counts them).
fn rx_bytes(dev: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/rx_bytes");
    std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
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

/// Request/response exchanges before the smoothed RTT is read: each is one RTT sample, and
/// after 30 the SYN's first sample weighs (7/8)^30 < 2% in the kernel's average.
const RTT_EXCHANGES: usize = 30;

/// The issue's tolerance: a configured 100 ms round trip (50 ms each way) measures within
/// ±5% as the kernel's smoothed RTT of a connection that has exchanged enough packets.
#[test]
fn a_100_ms_round_trip_measures_within_5_percent() {
    let link = Link::up(&delay_each_way(50)).expect("link up (needs root)");
    let listener = listen_in(&link, 3);
    let addr = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = s.read(&mut buf) {
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 32];
    for _ in 0..RTT_EXCHANGES {
        stream.write_all(&[7u8; 32]).unwrap();
        stream.read_exact(&mut answer).unwrap();
    }
    let info = tcp_info(&stream);
    let (srtt, min) = (
        f64::from(info.tcpi_rtt) / 1e3,
        f64::from(info.tcpi_min_rtt) / 1e3,
    );
    eprintln!("configured RTT 100 ms: smoothed {srtt:.2} ms, lowest {min:.2} ms");
    assert!(
        (srtt - 100.0).abs() <= 5.0,
        "smoothed RTT {srtt:.2} ms after {RTT_EXCHANGES} exchanges; configured 100 ms (±5%)"
    );
    drop(stream);
    echo.join().unwrap();
    // Every packet of both ways went through the delay line: handshake and 30 exchanges.
    let delayed = link.record().delayed_packets;
    assert!(
        delayed >= 2 * RTT_EXCHANGES as u64,
        "{delayed} packets delayed"
    );
}

/// Bytes sent through a 2% loss each way: 40 MB is 27,600 segments of 1,448 bytes, enough
/// that the ratio's standard error, sqrt(0.02 × 0.98 / 27,600), is 0.08% (the tolerance,
/// 0.5%, is six of them).
const LOSS_BYTES: usize = 40_000_000;
const LOSS_MIN_SEGMENTS: u32 = 20_000;

/// The issue's tolerance: 2% random loss per direction makes 2 ± 0.5% of the data segments a
/// bulk sender sends need retransmitting: each transmission is lost with p, and every lost
/// one is sent again (lost ACKs are covered by the next cumulative one). Those are counted
/// from both ends: the segments the sender sent that the receiver never got. Linux also
/// retransmits segments that had arrived (tail-loss probes, retransmits after a timeout),
/// which measure its loss recovery, not the link: the assertion message shows them apart.
#[test]
fn two_percent_loss_each_way_retransmits_2_percent_of_segments() {
    let mut c = Conditions::default();
    c.up.loss = 0.02;
    c.down.loss = 0.02;
    let link = Link::up(&c).expect("link up (needs root)");
    let listener = listen_in(&link, 0);
    let addr = listener.local_addr().unwrap();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let bytes = std::io::copy(&mut s, &mut std::io::sink()).unwrap();
        (bytes, tcp_info(&s).tcpi_data_segs_in)
    });
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = LOSS_BYTES;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (bytes, received) = sink.join().unwrap();
    assert_eq!(bytes, LOSS_BYTES as u64);
    let info = tcp_info(&stream);
    let (sent, again) = (info.tcpi_data_segs_out, info.tcpi_total_retrans);
    let lost = sent - received;
    let ratio = f64::from(lost) / f64::from(sent);
    let spurious = again.saturating_sub(lost);
    let report = format!(
        "configured 2% loss each way: {lost} of {sent} data segments lost and retransmitted \
         ({:.3}%); {again} retransmissions in all, {spurious} of segments that had arrived \
         ({} reported back as duplicates by DSACK)",
        ratio * 100.0,
        info.tcpi_dsack_dups
    );
    eprintln!("{report}");
    assert!(sent >= LOSS_MIN_SEGMENTS, "only {sent} data segments sent");
    assert!(
        again >= lost,
        "a lost segment was not retransmitted: {report}"
    );
    assert!((ratio - 0.02).abs() <= 0.005, "not 2 ± 0.5%: {report}");
}

/// HTTP-sized payload sent through the 1 Mbit/s direction: about 8.4 s of it.
const RATE_BYTES: usize = 1_000_000;

/// The issue's tolerance: a 1 Mbit/s rate carries 1 Mbit/s ± 5%, measured at the level tbf
/// shapes, the Ethernet frame (IP packet and its 14-byte header): the bytes the fleet's end
/// of the link received between the first and the last payload byte read, over that time.
#[test]
fn a_1_mbit_rate_carries_1_mbit_of_frames_per_second() {
    let mut c = Conditions::default();
    c.down.rate_bps = Some(1_000_000);
    let link = Link::up(&c).expect("link up (needs root)");
    let listener = listen_in(&link, 1);
    let addr = listener.local_addr().unwrap();
    let source = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(&vec![0xa5u8; RATE_BYTES]).unwrap();
    });
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let dev = link.fleet_if();
    let (mut first, mut last) = (None, None);
    let (mut payload, mut buf) = (0usize, vec![0u8; 64 * 1024]);
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        let now = (std::time::Instant::now(), rx_bytes(&dev), payload + n);
        first.get_or_insert(now);
        last = Some(now);
        payload += n;
    }
    source.join().unwrap();
    assert_eq!(payload, RATE_BYTES);
    let ((t0, rx0, p0), (t1, rx1, p1)) = (first.unwrap(), last.unwrap());
    let seconds = (t1 - t0).as_secs_f64();
    let frames_bps = (rx1 - rx0) as f64 * 8.0 / seconds;
    let payload_bps = (p1 - p0) as f64 * 8.0 / seconds;
    eprintln!(
        "configured 1 Mbit/s: {:.1} kbit/s of Ethernet frames, {:.1} kbit/s of TCP payload",
        frames_bps / 1e3,
        payload_bps / 1e3
    );
    assert!(
        (frames_bps - 1e6).abs() <= 0.05e6,
        "{:.1} kbit/s of frames ({:.1} kbit/s of payload) over {seconds:.2} s; configured \
         1,000 kbit/s (±5%)",
        frames_bps / 1e3,
        payload_bps / 1e3
    );
}

/// A run reports what crossed its link beside the configured rate: 20 WebSocket clients
/// asking for 20 × 10 messages/s × 1,000 B (1.6 Mbit/s of payload) through a 500 kbit/s link
/// down run it at its limit (the busiest second within 5% of it, as tbf counts, in Ethernet
/// frames); the unlimited way up carries only the ACKs, and every byte counted is one the
/// fleet's end of the link saw.
#[test]
fn a_run_counts_what_crossed_its_link_and_a_saturated_link_runs_at_its_rate() {
    let (runs, _) = run_scenario(
        r#"name = "rate-check"
clients = 20
connect_rate = "200/s"
warmup = "1s"
duration = "5s"
drain = "1s"
[messages]
rate = "10/s"
payload_bytes = 1000
[network]
down = { rate = "500kbit" }
[[transports]]
kind = "websocket"
"#,
    );
    let run = &runs[0];
    let t = &run["link"]["throughput"];
    let figure = |field: &str| {
        t[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: {run}"))
    };
    eprintln!(
        "configured 500 kbit/s down: peak {:.1} kbit/s, mean {:.1} kbit/s over {:.2} s; up \
         peak {:.1} kbit/s",
        figure("down_peak_bps") / 1e3,
        figure("down_mean_bps") / 1e3,
        figure("seconds"),
        figure("up_peak_bps") / 1e3
    );
    assert!(
        (figure("down_peak_bps") - 500e3).abs() <= 25e3,
        "the busiest second down is not within 5% of 500 kbit/s: {t}"
    );
    assert!(figure("down_mean_bps") <= figure("down_peak_bps"), "{t}");
    assert!(
        figure("up_bytes") > 0.0 && figure("up_peak_bps") < 500e3,
        "{t}"
    );
    assert!(figure("seconds") >= 5.0, "counted while it published: {t}");
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

/// What every run through a blackhole must show: the fault carried out and not a fault of
/// the run, and every message due either delivered or counted lost. Prints its figures.
fn check_blackhole_run(run: &serde_json::Value) {
    let fault = &run["link_faults"][0];
    assert_eq!(fault["kind"], "blackhole", "{run}");
    assert_eq!(fault["error"], "", "{run}");
    assert_eq!(run["fault"], "", "{run}");
    let (expected, delivered, lost) = (
        run["messages_expected"].as_u64().unwrap(),
        run["messages_delivered"].as_u64().unwrap(),
        run["lost"].as_u64().unwrap(),
    );
    eprintln!(
        "{}: {delivered} of {expected} delivered, lost {lost}, duplicated {}, \
         reconnects {}, first delivery {} ms after the blackhole, recovery p50 {} ms max {} ms",
        run["transport"],
        run["duplicated"],
        fault["reconnects_after"],
        fault["first_delivery_after_ms"],
        fault["recovery_p50_ms"],
        fault["recovery_max_ms"]
    );
    assert_eq!(delivered + lost, expected, "{run}");
}

/// What became of the messages due while the run's blackhole lasted, checked for what holds
/// whatever the transport: one per client for each message scheduled in the hole (its length
/// × the rate, one either way at each edge), every one of them delivered during it, after it,
/// or lost, and none lost that the run did not count. Nothing crosses the hole; a message
/// already held in the delay line when it began still arrives: at most one per client.
/// Returns (delivered after, lost).
fn due_in_the_hole(run: &serde_json::Value, clients: u64, rate: f64) -> (u64, u64) {
    let fault = &run["link_faults"][0];
    let due = &fault["due_messages"];
    let n = |field: &str| {
        due[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {run}"))
    };
    let in_hole = fault["duration_s"].as_f64().unwrap() * rate;
    let per_client = (in_hole.floor() as u64 - 1)..=(in_hole.ceil() as u64 + 1);
    assert!(
        per_client.contains(&(n("due") / clients)) && n("due") % clients == 0,
        "{} messages due in a {in_hole} message hole: {run}",
        n("due")
    );
    assert_eq!(
        n("delivered_during") + n("delivered_after") + n("lost"),
        n("due"),
        "{run}"
    );
    assert!(n("delivered_during") <= clients, "{run}");
    assert!(n("lost") <= run["lost"].as_u64().unwrap(), "{run}");
    eprintln!(
        "{}: {} due in the hole, {} delivered during it, {} after, {} lost",
        run["transport"],
        n("due"),
        n("delivered_during"),
        n("delivered_after"),
        n("lost")
    );
    (n("delivered_after"), n("lost"))
}

/// A run whose clients gave their connections up in the hole and get nothing back lost at
/// least what was published during it and at most what was published from its start until
/// the last client was back, one message either way at each edge, for each client.
fn assert_lost_what_the_hole_swallowed(run: &serde_json::Value, clients: u64, rate: f64) {
    let fault = &run["link_faults"][0];
    let hole_s = fault["duration_s"].as_f64().unwrap();
    let back_s = fault["recovery_max_ms"].as_f64().unwrap() / 1e3;
    let in_hole = (hole_s * rate).floor() as u64 - 2;
    let away = ((hole_s + back_s) * rate).ceil() as u64 + 2;
    let lost = run["lost"].as_u64().unwrap();
    assert!(
        (clients * in_hole..=clients * away).contains(&lost),
        "{} lost {lost}: not between the {in_hole} messages published in the {hole_s:.1} s \
         blackhole and the {away} published until the last client was back ({back_s:.2} s \
         after its end), × {clients} clients",
        run["transport"]
    );
}

/// mosquitto behind the link (`network.serve` starts it in the target namespace, a fresh
/// broker per run), a 10 s blackhole in the middle of publishing, keep-alive 2 s so that both
/// ends give the dead connection up inside it. QoS 1 and 2 (the lean client) with a
/// persistent session: the broker queues what its silent clients miss and sends it on their
/// return, so nothing is lost (and QoS 2 delivers nothing twice).
/// QoS 0 with the same session: nothing is queued for it, so every message published during
/// the blackhole is lost to every client, and the run's loss is exactly what never arrived.
#[test]
fn behind_a_blackhole_mosquitto_qos1_and_2_persistent_lose_nothing_and_qos0_counts_its_losses() {
    const CLIENTS: u64 = 20;
    const RATE: f64 = 10.0;
    let toml = std::fs::read_to_string("scenarios/blackhole-mosquitto.toml")
        .unwrap()
        .replace("clients = 100", &format!("clients = {CLIENTS}"))
        .replace("drain = \"15s\"", "drain = \"12s\"");
    let (runs, pid) = run_scenario(&toml);
    assert_eq!(runs.len(), 3);
    for run in &runs {
        check_blackhole_run(run);
        assert_eq!(run["clients_connected"], CLIENTS, "{run}");
        // Every client's connection died in the hole and came back after it.
        let reconnects = run["link_faults"][0]["reconnects_after"].as_u64();
        assert!(reconnects >= Some(CLIENTS), "{run}");
    }
    let (qos1, qos2, qos0) = (&runs[0], &runs[1], &runs[2]);
    // Each message cost at least its PUBLISH (and PUBACK, or PUBREC, PUBREL and PUBCOMP), also
    // on the connections that died: their bytes up to the break are counted, reconnects come
    // on top.
    for (run, least) in [
        (qos1, 20.0 + 17.0),
        (qos2, 20.0 + 25.0),
        (qos0, 20.0 + 11.0),
    ] {
        let bytes = run["bytes_per_message"].as_f64().unwrap();
        assert!(bytes >= least, "{bytes} B/message, under {least}: {run}");
    }
    for (run, qos) in [(qos1, 1), (qos2, 2)] {
        assert_eq!(run["qos_granted"], qos, "{run}");
        assert_eq!(run["lost"], 0, "{run}");
        // The session kept what the hole swallowed; the broker sent it on the client's return.
        let (after, _) = due_in_the_hole(run, CLIENTS, RATE);
        assert!(after >= 90 * CLIENTS, "{run}");
    }
    assert_eq!(qos2["duplicated"], 0, "exactly once: {qos2}");
    assert_eq!(qos0["qos_granted"], 0, "{qos0}");
    assert_eq!(qos0["duplicated"], 0, "{qos0}");
    assert_lost_what_the_hole_swallowed(qos0, CLIENTS, RATE);
    // Both ends gave the connection up inside the hole: nothing of it came after.
    assert_eq!(due_in_the_hole(qos0, CLIENTS, RATE).0, 0, "{qos0}");
    let listed = Cmd::new("ip", &["netns", "list"]).run().unwrap();
    assert!(!listed.contains(&format!("pb-{pid}-")), "{listed}");
}

/// The hub behind the link, a 10 s blackhole in the middle of publishing at 10 messages/s.
/// TCP keeps retransmitting through the hole and no one gives the connections up: long
/// polling, SSE and plain WebSocket get every message late, none lost. A WebSocket client
/// with its own liveness check (`ping = "2s"`) gives its connection up inside the hole and
/// reconnects after it; the hub does not replay WebSocket, so that client loses what was
/// published from the hole's start until it was subscribed again, and the run counts it.
#[test]
fn behind_a_blackhole_the_hubs_streams_lose_nothing_and_a_pinging_websocket_counts_its_losses() {
    const CLIENTS: u64 = 20;
    const RATE: f64 = 10.0;
    let (runs, pid) = run_scenario(
        r#"name = "blackhole-hub"
clients = 20
connect_rate = "200/s"
warmup = "2s"
duration = "20s"
drain = "12s"
[messages]
rate = "10/s"
[network]
delay = "10ms"
[[faults]]
kind = "blackhole"
at = "6s"
duration = "10s"
[[transports]]
kind = "http-longpoll"
headers = "minimal"
[[transports]]
kind = "sse"
headers = "minimal"
[[transports]]
kind = "websocket"
[[transports]]
kind = "websocket"
ping = "2s"
"#,
    );
    assert_eq!(runs.len(), 4);
    for run in &runs {
        check_blackhole_run(run);
        // Nothing crosses the hole; a message already held in the delay line (10 ms) when
        // it began still arrives: at most one per client.
        let during = run["link_faults"][0]["delivered_during"].as_u64();
        assert!(during <= Some(CLIENTS), "{run}");
        assert_eq!(run["duplicated"], 0, "{run}");
    }
    for survivor in &runs[..3] {
        // TCP resent everything the hole swallowed once it ended.
        let (after, lost) = due_in_the_hole(survivor, CLIENTS, RATE);
        assert_eq!(lost, 0, "{survivor}");
        assert!(after >= 90 * CLIENTS, "{survivor}");
        assert_eq!(
            (&survivor["lost"], &survivor["reconnects"]),
            (&0.into(), &0.into()),
            "the connection outlives the hole: {survivor}"
        );
        assert_eq!(survivor["messages_delivered"], CLIENTS * 200, "{survivor}");
        let bytes = &survivor["link_faults"][0]["reconnect_bytes_after"];
        assert_eq!(bytes, 0, "{survivor}");
    }
    let pinging = &runs[3];
    assert_eq!(pinging["transport"], "websocket(ping=2s)", "{pinging}");
    let fault = &pinging["link_faults"][0];
    let reconnects = fault["reconnects_after"].as_u64().unwrap();
    assert!(reconnects >= CLIENTS, "{pinging}");
    // Every reconnect is the same upgrade the first connection made, byte for byte.
    assert_eq!(
        fault["reconnect_bytes_after"].as_f64().unwrap(),
        reconnects as f64 * pinging["setup_bytes_per_client"].as_f64().unwrap(),
        "{pinging}"
    );
    assert_lost_what_the_hole_swallowed(pinging, CLIENTS, RATE);
    // The client gave the connection up inside the hole, and the hub does not replay.
    assert_eq!(due_in_the_hole(pinging, CLIENTS, RATE).0, 0, "{pinging}");
    let listed = Cmd::new("ip", &["netns", "list"]).run().unwrap();
    assert!(!listed.contains(&format!("pb-{pid}-")), "{listed}");
}

/// A restart of the embedded MQTT broker: the `serve` process is killed and started again
/// with its hub and broker on the ports they had, so the QoS 0 clients reconnect to the new
/// broker and subscribe again. It holds none of the old one's sessions: what was published
/// before a client was back is lost, and the run counts it.
#[test]
fn after_a_broker_restart_qos0_clients_reconnect_and_count_what_they_lost() {
    const CLIENTS: u64 = 20;
    let (runs, _) = run_scenario(
        r#"name = "broker-restart"
clients = 20
connect_rate = "200/s"
warmup = "1s"
duration = "5s"
drain = "5s"
[messages]
rate = "20/s"
[network]
delay = "10ms"
[[faults]]
kind = "restart"
at = "2025ms"
[[transports]]
kind = "mqtt"
qos = 0
"#,
    );
    let run = &runs[0];
    let restart = &run["link_faults"][0];
    assert_eq!(restart["kind"], "restart", "{run}");
    assert_eq!(restart["error"], "", "{run}");
    assert_eq!(run["fault"], "", "{run}");
    assert!(
        restart["reconnects_after"].as_u64() >= Some(CLIENTS),
        "{run}"
    );
    let (expected, delivered, lost) = (
        run["messages_expected"].as_u64().unwrap(),
        run["messages_delivered"].as_u64().unwrap(),
        run["lost"].as_u64().unwrap(),
    );
    eprintln!(
        "broker restart took {:.1} ms: {delivered} of {expected} delivered, lost {lost}, \
         reconnects {}, first delivery {} ms after it, recovery p50 {} ms max {} ms",
        restart["duration_s"].as_f64().unwrap() * 1e3,
        restart["reconnects_after"],
        restart["first_delivery_after_ms"],
        restart["recovery_p50_ms"],
        restart["recovery_max_ms"]
    );
    assert_eq!(delivered + lost, expected, "{run}");
    assert_eq!(run["duplicated"], 0, "{run}");
    // The clients came back: messages published after the restart arrived.
    assert!(restart["first_delivery_after_ms"].is_number(), "{run}");
}
