//! Server-Sent Events against the embedded hub: exact bytes per event, delivery, and resuming
//! a broken stream with `Last-Event-ID`.

mod common;

use std::time::Duration;

use common::{publish, run_in_process, small_plan};
use pushbench::payload::Stamp;
use pushbench::plan::{HttpVersion, Plan, TargetPlan, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::targets::hub::{Hub, HubConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn sse() -> TransportPlan {
    TransportPlan::Sse {
        headers: HeaderProfile::Minimal,
        http: HttpVersion::Http11,
        keepalive: None,
    }
}

/// 10 warm-up messages (hub ids 1..=10), then 10 measured ones (ids 11..=20): every id in
/// the byte window has two digits.
fn two_digit_window(clients: u32, payload_bytes: usize) -> Plan {
    Plan {
        warmup: Duration::from_secs(1),
        ..small_plan(clients, payload_bytes, sse())
    }
}

/// Each event of a 64-byte payload is `id: NN\n` (7) + `data: ` (6) + the payload's 64-byte
/// text form + `\n\n` (2) = 79 bytes, sent as one chunk: its size line `4F\r\n` (4) before
/// and `\r\n` (2) after. So a message costs 79 - 64 + 4 + 2 = 21 bytes on top of its payload,
/// and the client sends nothing after its one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_event_of_64_byte_payload_costs_exactly_21_bytes() {
    let r = run_in_process(&two_digit_window(50, 64)).await;
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.messages_delivered, 50 * 10, "{r:?}");
    assert_eq!(r.window_messages, 50 * 10);
    assert_eq!(r.overhead_bytes_per_message, 21.0, "{r:?}");
    assert_eq!(
        r.window_bytes_up, 0,
        "one request, then only the server talks"
    );
}

/// A 16-byte payload still travels as the stamp's 22 base64 characters: 6 bytes more than
/// the payload, so 7 + 6 + 22 + 2 = 37 bytes per event (`25\r\n` + `\r\n` around it):
/// 37 - 16 + 6 = 27 bytes of overhead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_event_of_16_byte_payload_costs_exactly_27_bytes() {
    let r = run_in_process(&two_digit_window(20, 16)).await;
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert_eq!(r.messages_delivered, 20 * 10, "{r:?}");
    assert_eq!(r.overhead_bytes_per_message, 27.0, "{r:?}");
}

/// The hub closes every first stream after its 13th event (hub id 13, inside the measured
/// window); each client reconnects with `Last-Event-ID: 13` and the hub resumes with 14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_after_its_last_event_id_and_loses_nothing() {
    let clients = 30;
    let config = HubConfig {
        sse_close_after: Some(13),
        ..HubConfig::default()
    };
    let hub = Hub::start(([127, 0, 0, 1], 0).into(), config)
        .await
        .expect("hub starts");
    let plan = Plan {
        target: TargetPlan::External {
            urls: vec![format!("http://{}", hub.local_addr())],
            processes: None,
            name: None,
        },
        ..two_digit_window(clients, 64)
    };
    let r = run_in_process(&plan).await;
    assert_eq!(r.messages_delivered, u64::from(clients) * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.reconnects, u64::from(clients), "{r:?}");
    let stats = hub.stats();
    assert_eq!(stats.sse_sessions, 2 * u64::from(clients), "{stats:?}");
    assert_eq!(stats.sse_resumed, u64::from(clients), "{stats:?}");
    assert_eq!(stats.sse_dropped_slow, 0, "{stats:?}");
}

/// An event stream opened by hand: the request, and the response head read off the socket.
async fn open_stream(hub: &Hub, extra_headers: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(hub.local_addr()).await.unwrap();
    let request = format!("GET /sub/sse/0 HTTP/1.1\r\nHost: x\r\n{extra_headers}\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.unwrap());
    }
    (s, String::from_utf8(head).unwrap())
}

async fn read_exactly(s: &mut TcpStream, n: usize) -> String {
    let mut bytes = vec![0; n];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut bytes))
        .await
        .expect("the hub sent it in time")
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn stamp(seq: u64) -> Stamp {
    Stamp {
        seq,
        intended_us: 1_764_623_456_789_012,
    }
}

/// The wire form the overhead figures above are computed from, byte for byte.
#[tokio::test]
async fn the_hub_streams_each_message_as_one_chunked_event() {
    let hub = Hub::start(([127, 0, 0, 1], 0).into(), HubConfig::default())
        .await
        .unwrap();
    let (mut s, head) = open_stream(&hub, "").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for line in [
        "Content-Type: text/event-stream\r\n",
        "Cache-Control: no-cache\r\n",
        "Transfer-Encoding: chunked\r\n",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    publish(hub.local_addr(), "0", stamp(7).encode_text(64).as_bytes()).await;
    let text = stamp(7).encode_text(64);
    let expected = format!("4E\r\nid: 1\ndata: {text}\n\n\r\n");
    assert_eq!(
        expected.len(),
        4 + 78 + 2,
        "id 1 has one digit: a 78-byte event"
    );
    assert_eq!(read_exactly(&mut s, expected.len()).await, expected);
    assert_eq!(hub.stats().sse_events_sent, 1);
}

/// `Last-Event-ID: 1` with messages 1..=3 in the history resumes with 2 and 3.
#[tokio::test]
async fn last_event_id_resumes_from_the_history() {
    let hub = Hub::start(([127, 0, 0, 1], 0).into(), HubConfig::default())
        .await
        .unwrap();
    for seq in 0..3 {
        publish(hub.local_addr(), "0", stamp(seq).encode_text(64).as_bytes()).await;
    }
    let (mut s, _) = open_stream(&hub, "Last-Event-ID: 1\r\n").await;
    for (id, seq) in [(2, 1), (3, 2)] {
        let expected = format!(
            "4E\r\nid: {id}\ndata: {}\n\n\r\n",
            stamp(seq).encode_text(64)
        );
        assert_eq!(read_exactly(&mut s, expected.len()).await, expected);
    }
    assert_eq!((hub.stats().sse_sessions, hub.stats().sse_resumed), (1, 1));
}

/// An idle stream gets a comment, `:` and the blank line, in a 3-byte chunk: 8 bytes.
#[tokio::test]
async fn an_idle_stream_gets_comment_keep_alives() {
    let config = HubConfig {
        sse_keepalive: Some(Duration::from_millis(20)),
        ..HubConfig::default()
    };
    let hub = Hub::start(([127, 0, 0, 1], 0).into(), config)
        .await
        .unwrap();
    let (mut s, _) = open_stream(&hub, "").await;
    assert_eq!(read_exactly(&mut s, 16).await, "3\r\n:\n\n\r\n".repeat(2));
    assert!(hub.stats().sse_keepalives_sent >= 2);
}

/// An id the channel never reached was given by an earlier run of a restarted hub: the
/// client gets everything this hub has stored, the message published before it reconnected
/// included.
#[tokio::test]
async fn a_last_event_id_beyond_the_newest_resumes_at_the_start_of_the_history() {
    let hub = Hub::start(([127, 0, 0, 1], 0).into(), HubConfig::default())
        .await
        .unwrap();
    publish(hub.local_addr(), "0", stamp(0).encode_text(64).as_bytes()).await;
    let (mut s, _) = open_stream(&hub, "Last-Event-ID: 99\r\n").await;
    publish(hub.local_addr(), "0", stamp(1).encode_text(64).as_bytes()).await;
    let expected = format!(
        "4E\r\nid: 1\ndata: {}\n\n\r\n4E\r\nid: 2\ndata: {}\n\n\r\n",
        stamp(0).encode_text(64),
        stamp(1).encode_text(64)
    );
    assert_eq!(read_exactly(&mut s, expected.len()).await, expected);
}

/// The same stream over cleartext HTTP/2: each event is one DATA frame, its 9-byte frame
/// header instead of the chunk framing (HTTP/2 has no chunked coding), so a 64-byte payload
/// with a two-digit id costs 9 + 7 + 6 + 2 = 24 bytes. The client sends nothing in the
/// window: hyper's client opens its windows at 2 MiB per stream and 5 MiB per connection
/// (the WINDOW_UPDATE in the opening, which is setup), and h2 sends a WINDOW_UPDATE only
/// once the consumed, unannounced bytes reach half of what is left of a window (a third of
/// it: about 7,900 such 88-byte frames per stream); ten are far from it, and neither side
/// pings, so no WINDOW_UPDATE, PING or SETTINGS frame falls in the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_over_h2_delivers_everything_at_a_data_frame_header_per_event() {
    let plan = Plan {
        transports: vec![
            TransportPlan::Sse {
                headers: HeaderProfile::Minimal,
                http: HttpVersion::Http2,
                keepalive: None,
            }
            .into(),
        ],
        ..two_digit_window(50, 64)
    };
    let r = run_in_process(&plan).await;
    assert_eq!(r.transport, "sse(minimal,h2)");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.messages_delivered, 50 * 10, "{r:?}");
    assert_eq!(r.window_messages, 50 * 10);
    assert_eq!(r.overhead_bytes_per_message, 24.0, "{r:?}");
    assert_eq!(
        r.window_bytes_up, 0,
        "no WINDOW_UPDATE in the window: {r:?}"
    );
    assert_eq!(
        r.window_bytes_down,
        r.window_messages * (9 + 7 + 6 + 64 + 2),
        "one DATA frame per event and nothing else: {r:?}"
    );
}
