//! pushbench against a server nobody here wrote: nginx + nchan, started by
//! `scripts/targets/nchan.sh` on a free port of 127.0.0.1 and stopped at the end of each test,
//! also when it fails. nginx and libnginx-mod-nchan must be installed (`scripts/test.sh`
//! installs them): without them these tests fail, they do not skip.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{publish, run_in_process, small_plan};
use pushbench::payload::{Stamp, unix_us};
use pushbench::plan::{HttpVersion, TargetPlan, TlsPlan, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::result::RunResult;
use pushbench::targets::Endpoint;
use pushbench::transport::{ClientSpec, Sse, Transport};

/// One nginx + nchan instance; stopped (by its PID, through the script) when dropped.
struct Nchan {
    port: u16,
    /// The TLS listener's port, when started with one.
    tls_port: Option<u16>,
    run_dir: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/targets/nchan.sh")
}

/// A port the kernel just handed out and took back: free unless someone races for it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Nchan {
    fn start() -> Nchan {
        Nchan::start_listening(None)
    }

    /// With a TLS listener too (a self-signed certificate made by the script).
    fn start_with_tls() -> Nchan {
        Nchan::start_listening(Some(free_port()))
    }

    fn start_listening(tls_port: Option<u16>) -> Nchan {
        let port = free_port();
        let run_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nchan-{port}"));
        let mut args = vec!["start".to_string(), port.to_string()];
        args.extend(tls_port.map(|p| p.to_string()));
        let out = Command::new(script())
            .args(&args)
            .env("NCHAN_RUN_DIR", &run_dir)
            // One worker: with several, a subscription reaches the channel's owning worker
            // some time after the subscriber's request was accepted, and a message published
            // meanwhile is not its (messages lost at the start under load, nchan's doing).
            .env("NCHAN_WORKERS", "1")
            .output()
            .expect("running scripts/targets/nchan.sh");
        assert!(
            out.status.success(),
            "nginx + nchan did not start (install them: apt-get install -y nginx \
             libnginx-mod-nchan, or run scripts/test.sh as root):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Nchan {
            port,
            tls_port,
            run_dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TLS listener's URL and the certificate to trust.
    fn tls(&self) -> Option<(String, PathBuf)> {
        let port = self.tls_port?;
        Some((
            format!("https://127.0.0.1:{port}"),
            self.run_dir.join("tls/ca.pem"),
        ))
    }
}

impl Drop for Nchan {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.port.to_string()])
            .env("NCHAN_RUN_DIR", &self.run_dir)
            .status();
    }
}

/// 50 clients, 5 warm-up and 10 measured messages at 10/s, against a fresh nchan.
async fn run_against_nchan(transport: TransportPlan) -> RunResult {
    let nchan = Nchan::start();
    let mut plan = small_plan(50, 16, transport);
    plan.target = TargetPlan::External {
        urls: vec![nchan.url()],
        processes: None,
        name: None,
    };
    let result = run_in_process(&plan).await;
    drop(nchan);
    result
}

fn assert_everything_delivered(r: &RunResult) {
    assert_eq!(r.messages_expected, 50 * 10, "{r:?}");
    assert_eq!(r.messages_delivered, 50 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(
        r.publish_errors, 0,
        "nchan answers every publish 2xx: {r:?}"
    );
    assert_eq!(r.reconnects, 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_interval_polling_delivers_every_message() {
    let r = run_against_nchan(TransportPlan::HttpPoll {
        http: HttpVersion::Http11,
        interval: Duration::from_millis(50),
        headers: HeaderProfile::Minimal,
    })
    .await;
    assert_everything_delivered(&r);
    // Headers are most of what a poll costs: nchan's answer alone (status line, Server,
    // Date, Content-Length, Connection, Vary and the validators) is more than 200 bytes, the
    // request with its validators about 100.
    assert!(r.overhead_bytes_per_message > 2.0 * 150.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_long_polling_delivers_every_message_once() {
    let r = run_against_nchan(TransportPlan::HttpLongpoll {
        http: HttpVersion::Http11,
        headers: HeaderProfile::Minimal,
        timeout: Duration::from_secs(30),
    })
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.window_messages, 500, "one message per answer: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_websocket_frame_costs_exactly_2_bytes() {
    let r = run_against_nchan(TransportPlan::Websocket {
        read_buffer_bytes: 4096,
        ping: None,
    })
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.window_messages, 500, "{r:?}");
    assert_eq!(r.overhead_bytes_per_message, 2.0, "{r:?}");
    assert_eq!(
        r.window_bytes_up, 0,
        "the client sends nothing in steady state"
    );
}

/// Sequence numbers from here up mark the probes `wait_until_subscribed` publishes.
const PROBE_SEQ: u64 = 1_000_000;

/// Waits for `n` more messages on `client`, skipping late probes; returns their sequence
/// numbers in order.
async fn next_seqs(client: &mut Sse, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let mut delivered = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.next(&mut delivered))
            .await
            .expect("nchan sent the event in time")
            .expect("the event stream holds");
        seqs.extend(
            delivered
                .iter()
                .map(|r| Stamp::decode(&r.payload).expect("a pushbench payload").seq)
                .filter(|&seq| seq < PROBE_SEQ),
        );
    }
    seqs
}

/// nchan answers the stream's headers before the channel's owning worker has the subscriber
/// (worker_processes is 2 and subscriptions travel between workers), and a message
/// published in between is not this subscriber's ("newest" means from the subscription on).
/// So probes go out, one at a time, until one arrives: the subscription is then in place.
async fn wait_until_subscribed(addr: SocketAddr, client: &mut Sse, text: impl Fn(u64) -> String) {
    for probe in PROBE_SEQ..PROBE_SEQ + 50 {
        publish(addr, "sse", text(probe).as_bytes()).await;
        let mut delivered = Vec::new();
        if let Ok(next) =
            tokio::time::timeout(Duration::from_millis(200), client.next(&mut delivered)).await
        {
            next.expect("the event stream holds");
            if !delivered.is_empty() {
                return;
            }
        }
    }
    panic!("nchan delivered none of 50 probes published over 10 s");
}

/// pushbench's SSE client against nchan's eventsource location. nchan puts the message body
/// into `data:` as it is, so the messages are published in the payload's text form (a whole
/// run would need the publisher to post that form: it posts the binary one). Every message
/// arrives once, and a new connection of the same client resumes after its Last-Event-ID
/// (nchan's ids are `<seconds>:<tag>`), with nothing lost while it was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_eventsource_delivers_every_message_and_resumes_after_last_event_id() {
    let nchan = Nchan::start();
    let addr: SocketAddr = ([127, 0, 0, 1], nchan.port).into();
    let spec = ClientSpec {
        endpoint: Arc::new(Endpoint {
            addr,
            authority: addr.to_string(),
            tls: None,
        }),
        channel: "sse".into(),
        plan: Arc::new(TransportPlan::Sse {
            headers: HeaderProfile::Minimal,
            http: HttpVersion::Http11,
            keepalive: None,
        }),
        index: 0,
        client_id: "nchan-sse".into(),
        last_event_id: Default::default(),
        validators: Default::default(),
        adapter: Default::default(),
        tls_sessions: Default::default(),
        qos2_session: Default::default(),
    };
    let text = |seq: u64| {
        Stamp {
            seq,
            intended_us: unix_us(SystemTime::now()),
        }
        .encode_text(32)
    };
    let mut client = Sse::connect(&spec).await.expect("nchan answers the stream");
    wait_until_subscribed(addr, &mut client, text).await;
    for seq in 0..3 {
        publish(addr, "sse", text(seq).as_bytes()).await;
    }
    assert_eq!(next_seqs(&mut client, 3).await, [0, 1, 2]);
    drop(client);
    for seq in 3..6 {
        publish(addr, "sse", text(seq).as_bytes()).await;
    }
    let mut client = Sse::connect(&spec).await.expect("nchan resumes the stream");
    assert_eq!(next_seqs(&mut client, 3).await, [3, 4, 5]);
    drop(nchan);
}

/// 50 clients over TLS 1.3 against nchan's TLS listener, trusting only its CA.
async fn run_against_nchan_over_tls(transport: TransportPlan) -> RunResult {
    run_against_nchan_over_tls_trusting(transport, true).await
}

/// As `run_against_nchan_over_tls`; `checked = false`: `insecure`, no certificate checked.
async fn run_against_nchan_over_tls_trusting(transport: TransportPlan, checked: bool) -> RunResult {
    let nchan = Nchan::start_with_tls();
    let (url, ca) = nchan.tls().expect("started with TLS");
    let mut plan = small_plan(50, 16, transport);
    plan.target = TargetPlan::External {
        urls: vec![url],
        processes: None,
        name: None,
    };
    plan.transports[0].tls = Some(TlsPlan {
        ca: checked.then_some(ca),
        insecure: !checked,
        ..TlsPlan::default()
    });
    let result = run_in_process(&plan).await;
    drop(nchan);
    result
}

/// nginx writes each frame in a record of its own: RFC 8446 §5.2's 5-byte header, 1-byte
/// inner content type and 16-byte AEAD tag on top of the frame's 2 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_websocket_over_tls13_costs_2_plus_22_bytes() {
    let r = run_against_nchan_over_tls(TransportPlan::Websocket {
        read_buffer_bytes: 4096,
        ping: None,
    })
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.transport, "websocket+tls");
    assert_eq!(r.tls_records_per_message, 1.0, "{r:?}");
    assert_eq!(r.tls_overhead_bytes_per_message, 5.0 + 1.0 + 16.0, "{r:?}");
    assert_eq!(r.overhead_bytes_per_message, 2.0 + 22.0, "{r:?}");
}

/// Long polling over HTTPS (HTTP/1.1 and HTTP/2 by ALPN): every message, and exactly 22 bytes
/// of TLS per record counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_https_long_polling_pays_22_bytes_per_record() {
    for http in [HttpVersion::Http11, HttpVersion::Http2] {
        let r = run_against_nchan_over_tls(TransportPlan::HttpLongpoll {
            http,
            headers: HeaderProfile::Minimal,
            timeout: Duration::from_secs(30),
        })
        .await;
        assert_everything_delivered(&r);
        let whole = |per_message: f64| (per_message * r.window_messages as f64).round();
        assert_eq!(
            whole(r.tls_overhead_bytes_per_message),
            22.0 * whole(r.tls_records_per_message),
            "{r:?}"
        );
    }
}

/// `insecure`: nchan's certificate is not checked, and the result says so where it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_over_tls_without_a_check_is_labelled_insecure() {
    let websocket = TransportPlan::Websocket {
        read_buffer_bytes: 4096,
        ping: None,
    };
    let r = run_against_nchan_over_tls_trusting(websocket, false).await;
    assert_everything_delivered(&r);
    assert_eq!(r.transport, "websocket+tls(insecure)");
    assert_eq!(r.tls, "1.3 insecure");
    assert_eq!(r.overhead_bytes_per_message, 2.0 + 22.0, "{r:?}");
}
