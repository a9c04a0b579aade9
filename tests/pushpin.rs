//! Pushpin (Debian pushpin 1.36), a GRIP proxy nobody here wrote, in front of an nginx origin
//! that answers with `Grip-Hold` and `Grip-Channel`; messages go in through Pushpin's JSON
//! publish API with the `pushpin` preset's HTTP publish template. Started by
//! scripts/targets/pushpin.sh (installed by scripts/test.sh); these tests fail, not skip,
//! without it.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{run_in_process, small_plan};
use pushbench::adapter::{Publish, Template, preset};
use pushbench::plan::{HttpVersion, TargetPlan, TargetProcesses, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::result::RunResult;

struct Pushpin {
    port: u16,
    push_port: u16,
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
        let (port, push_port, origin_port) = (free_port(), free_port(), free_port());
        let out = Command::new(script())
            .args(["start", &port.to_string(), &push_port.to_string()])
            .env("ORIGIN_PORT", origin_port.to_string())
            .output()
            .expect("running scripts/targets/pushpin.sh");
        assert!(
            out.status.success(),
            "pushpin did not start (apt-get install -y pushpin zurl nginx):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Pushpin { port, push_port }
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

/// The result and Pushpin's client port.
async fn run_through_pushpin_on(
    transport: TransportPlan,
    payload_bytes: usize,
) -> (RunResult, u16) {
    let pushpin = Pushpin::start();
    let port = pushpin.port;
    let mut plan = small_plan(30, payload_bytes, transport);
    plan.target = TargetPlan::External {
        urls: vec![format!("http://127.0.0.1:{}", pushpin.port)],
        processes: Some(TargetProcesses::Pidfile(pushpin.pidfile())),
        name: Some("pushpin".into()),
    };
    plan.adapter = preset::pushpin();
    if let Publish::Http(publish) = &mut plan.adapter.publish {
        publish.url =
            Template::literal(&format!("http://127.0.0.1:{}/publish/", pushpin.push_port));
    }
    let r = run_in_process(&plan).await;
    drop(pushpin);
    (r, port)
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

/// Long polling: a held request is answered by one published `http-response` whose body is
/// the payload, so a message costs at least the request's and the response's heads, both
/// computed here from their framing. A GRIP long poll has no position: a message published
/// while a client's next request is on its way through Pushpin to the origin and back reaches
/// no held request of that client and is lost (without an origin that recovers from
/// `prev-id`); under load Pushpin also answers some re-requests 502, and the client's
/// reconnect then counts in the window. How many of either depends on the machine's load, so
/// the test asserts the accounting (every message delivered or counted lost, none twice or
/// out of order), not a loss count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_through_pushpin_costs_at_least_its_two_heads() {
    let payload = 64;
    let (r, port) = run_through_pushpin_on(
        TransportPlan::HttpLongpoll {
            headers: HeaderProfile::Minimal,
            http: HttpVersion::Http11,
            timeout: Duration::from_secs(30),
        },
        payload,
    )
    .await;
    assert_eq!(r.messages_expected, 300, "{r:?}");
    assert_eq!(r.messages_delivered + r.lost, 300, "{r:?}");
    assert!(r.messages_delivered > 0, "{r:?}");
    assert_eq!((r.duplicated, r.out_of_order), (0, 0), "{r:?}");
    assert_eq!(r.publish_errors, 0, "{r:?}");
    assert!(r.fault.is_empty(), "{r:?}");
    let request = format!("GET /sub/longpoll/0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    // The origin's Server and Content-Type, Pushpin's Date (always 29 characters) and
    // Content-Length.
    let response = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: {}\r\nContent-Type: text/plain\r\n\
         Content-Length: {payload}\r\n\r\n",
        "Tue, 01 Dec 2026 23:38:48 GMT"
    );
    let heads = (request.len() + response.len()) as f64;
    assert!(
        r.overhead_bytes_per_message >= heads,
        "{heads} B of heads: {r:?}"
    );
    assert!(r.target_cpu_s.is_some(), "{r:?}");
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
        },
        64,
    )
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.overhead_bytes_per_message, 2.0, "{r:?}");
    assert_eq!(r.window_bytes_up, 0, "{r:?}");
}
