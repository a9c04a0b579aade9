//! Pushpin (Debian pushpin 1.36), a GRIP proxy nobody here wrote, in front of two origins:
//! the hub as a GRIP origin (`pushbench serve --grip`) for long polls and publishing, which
//! forwards every message to Pushpin's JSON publish API with its id and prev-id, and nginx
//! answering `Grip-Hold` and `Grip-Channel` for the stream and WebSocket. Messages are
//! published with the `pushpin` preset (`POST /pub/{channel}` through Pushpin to the hub).
//! Started by scripts/targets/pushpin.sh (installed by scripts/test.sh); these tests fail,
//! not skip, without it.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{run_in_process, small_plan};
use pushbench::adapter::preset;
use pushbench::plan::{HttpVersion, Plan, TargetPlan, TargetProcesses, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::result::RunResult;

struct Pushpin {
    port: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/targets/pushpin.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Pushpin {
    fn start() -> Pushpin {
        let ports = (free_port(), free_port(), free_port(), free_port());
        let (port, push_port, origin_port, hub_port) = ports;
        let out = Command::new(script())
            .args(["start", &port.to_string(), &push_port.to_string()])
            .env("ORIGIN_PORT", origin_port.to_string())
            .env("HUB_PORT", hub_port.to_string())
            .env("PUSHBENCH", env!("CARGO_BIN_EXE_pushbench"))
            .output()
            .expect("running scripts/targets/pushpin.sh");
        assert!(
            out.status.success(),
            "pushpin did not start (apt-get install -y pushpin zurl nginx):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Pushpin { port }
    }

    fn pidfile(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/pushpin")
            .join(self.port.to_string())
            .join("pushpin.pid")
    }
}

impl Drop for Pushpin {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.port.to_string()])
            .status();
    }
}

async fn run_through_pushpin(transport: TransportPlan, payload_bytes: usize) -> RunResult {
    run_through_pushpin_on(transport, payload_bytes).await.0
}

/// The result, the plan and Pushpin's client port.
async fn run_through_pushpin_on(
    transport: TransportPlan,
    payload_bytes: usize,
) -> (RunResult, Plan, u16) {
    let pushpin = Pushpin::start();
    let port = pushpin.port;
    let mut plan = small_plan(30, payload_bytes, transport);
    plan.target = TargetPlan::External {
        urls: vec![format!("http://127.0.0.1:{}", pushpin.port)],
        processes: Some(TargetProcesses::Pidfile(pushpin.pidfile())),
        name: Some("pushpin".into()),
    };
    plan.adapter = preset::pushpin();
    let r = run_in_process(&plan).await;
    drop(pushpin);
    (r, plan, port)
}

fn assert_everything_delivered(r: &RunResult) {
    assert_eq!(r.messages_delivered, 30 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.publish_errors, 0, "{r:?}");
    assert!(r.fault.is_empty(), "{r:?}");
    assert_eq!(r.window_messages, 30 * 10, "{r:?}");
}

/// HTTP streaming: Pushpin appends each published `http-stream` content (`data: <payload>\n\n`)
/// to the held response as one HTTP/1.1 chunk: `<size in hex>\r\n` + event + `\r\n`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_through_pushpin_costs_the_event_line_and_its_chunk() {
    let payload = 64;
    let r = run_through_pushpin(
        TransportPlan::Sse {
            headers: HeaderProfile::Minimal,
            http: HttpVersion::Http11,
            keepalive: None,
        },
        payload,
    )
    .await;
    assert_everything_delivered(&r);
    let event = "data: ".len() + payload + "\n\n".len();
    let chunk = format!("{event:x}\r\n").len() + event + "\r\n".len();
    assert_eq!(
        r.overhead_bytes_per_message,
        (chunk - payload) as f64,
        "{r:?}"
    );
    assert_eq!(r.window_bytes_up, 0, "{r:?}");
}

/// Long polling through Pushpin with the hub as GRIP origin: every request carries the
/// client's position (`If-None-Match`, the `Etag` of its last answer), so a message published
/// while the next request is on its way is answered at once by the origin, and one that
/// reaches Pushpin before the hold does is recovered by Pushpin's prev-id retry: nothing lost,
/// nothing twice. Every message costs one request and one response, whichever way it came,
/// both computed here from their framing: the request echoes the validators, the response
/// carries `Last-Modified`, `Etag` (the message id) and `Content-Length`, and Pushpin's `Date`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_through_pushpin_delivers_every_message_once_and_costs_its_two_heads() {
    let payload = 64;
    let (r, plan, port) = run_through_pushpin_on(
        TransportPlan::HttpLongpoll {
            headers: HeaderProfile::Minimal,
            http: HttpVersion::Http11,
            timeout: Duration::from_secs(30),
        },
        payload,
    )
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.reconnects, 0, "{r:?}");
    assert!(r.target_cpu_s.is_some(), "{r:?}");
    // The hub's ids start at 1: message `seq` is id `seq + 1`, asked for from id `seq`.
    let date = "Tue, 01 Dec 2026 23:38:48 GMT";
    let first = plan.warmup_messages();
    let ids = first + 1..=first + plan.window_messages();
    let bytes: usize = ids
        .map(|id| {
            let request = format!(
                "GET /sub/longpoll/0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                 If-None-Match: {}\r\nIf-Modified-Since: {date}\r\n\r\n",
                id - 1
            );
            let response = format!(
                "HTTP/1.1 200 OK\r\nLast-Modified: {date}\r\nEtag: {id}\r\n\
                 Content-Length: {payload}\r\nDate: {date}\r\n\r\n"
            );
            request.len() + response.len()
        })
        .sum();
    let overhead = bytes as f64 / plan.window_messages() as f64;
    assert!(
        (r.overhead_bytes_per_message - overhead).abs() < 1e-9,
        "{overhead} B of heads per message: {r:?}"
    );
}

/// WebSocket through Pushpin, which speaks WebSocket-over-HTTP to the origin (the route's
/// `over_http`): the origin's answer to the connection's `OPEN` subscribes it with a GRIP
/// control message, and each published `ws-message` arrives as one text frame holding just
/// the payload: 2 bytes of frame header, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_through_pushpin_costs_its_frame_header() {
    let r = run_through_pushpin(
        TransportPlan::Websocket {
            read_buffer_bytes: 4096,
            ping: None,
        },
        64,
    )
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.overhead_bytes_per_message, 2.0, "{r:?}");
    assert_eq!(r.window_bytes_up, 0, "{r:?}");
}
