//! Server-Sent Events against the embedded hub: exact bytes per event, delivery, and resuming
//! a broken stream with `Last-Event-ID`.

mod common;

use std::time::Duration;

use common::{run_in_process, small_plan};
use pushbench::plan::{Plan, TargetPlan, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::targets::hub::{Hub, HubConfig};

fn sse() -> TransportPlan {
    TransportPlan::Sse {
        headers: HeaderProfile::Minimal,
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
/// text form + `\n\n` (2) = 79 bytes, sent as one chunk: its size line `4f\r\n` (4) before
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
