//! Exact wire bytes and delivery of each transport against the embedded hub on 127.0.0.1.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{publish, run_in_process, small_plan};
use pushbench::payload::Stamp;
use pushbench::plan::{HttpVersion, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::targets::hub::Hub;
use pushbench::transport::{HttpPoll, Received, Transport};

fn websocket() -> TransportPlan {
    TransportPlan::Websocket {
        read_buffer_bytes: 4096,
        ping: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frame_of_16_byte_payload_costs_exactly_2_bytes() {
    let r = run_in_process(&small_plan(50, 16, websocket())).await;
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert_eq!(r.messages_delivered, 50 * 10);
    assert_eq!(r.window_messages, 50 * 10);
    assert_eq!(r.overhead_bytes_per_message, 2.0, "{r:?}");
    assert_eq!(
        r.window_bytes_up, 0,
        "the client sends nothing in steady state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frame_of_200_byte_payload_costs_exactly_4_bytes() {
    let r = run_in_process(&small_plan(50, 200, websocket())).await;
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert_eq!(r.overhead_bytes_per_message, 4.0, "{r:?}");
    // Header bytes of the HTTP upgrade are setup, not per-message cost.
    assert!(r.setup_bytes_per_client > 100.0, "{r:?}");
}

/// A liveness ping shorter than the gap between messages: the client pings into the quiet,
/// the hub answers every ping, so no connection is given up and every message arrives. Each
/// ping is a masked control frame without payload, 6 bytes up (2 header + 4 mask key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pings_into_the_quiet_and_the_hubs_pongs_keep_it_alive() {
    let plan = small_plan(
        20,
        16,
        TransportPlan::Websocket {
            read_buffer_bytes: 4096,
            ping: Some(Duration::from_millis(30)),
        },
    );
    let r = run_in_process(&plan).await;
    assert_eq!((r.lost, r.duplicated, r.reconnects), (0, 0, 0), "{r:?}");
    assert_eq!(r.messages_delivered, 20 * 10, "{r:?}");
    assert!(r.window_bytes_up > 0, "pings were sent: {r:?}");
    assert_eq!(r.window_bytes_up % 6, 0, "only 6-byte pings go up: {r:?}");
    assert!(
        r.overhead_bytes_per_message > 2.0,
        "pings and pongs cost: {r:?}"
    );
}

/// One article-profile poll connection to a fresh in-process hub.
async fn article_poller() -> (Hub, HttpPoll) {
    common::hub_poller(
        HeaderProfile::WebsocketOrg2010,
        HttpVersion::Http11,
        Duration::from_millis(50),
    )
    .await
}

/// The article's request is 692 printable characters plus 12 CRLFs (716 bytes on the wire);
/// its response headers 179 plus 7 CRLFs (193), followed by the 21-byte body.
#[tokio::test]
async fn article_profile_poll_exchange_is_716_plus_193_bytes_plus_body() {
    let (hub, mut poller) = article_poller().await;
    let before = poller.wire();
    let body = Stamp {
        seq: 0,
        intended_us: 0,
    }
    .encode(21);
    publish(hub.local_addr(), "0", &body).await;
    let mut delivered: Vec<Received> = Vec::new();
    poller.next(&mut delivered).await.unwrap();
    let exchange = poller.wire() - before;
    let payloads: Vec<Bytes> = delivered.into_iter().map(|r| r.payload).collect();
    assert_eq!(payloads, vec![Bytes::from(body)]);
    assert_eq!(exchange.sent, 716);
    assert_eq!(exchange.received, 193 + 21);
    // The kernel saw the same bytes.
    assert_eq!((exchange.kernel_sent, exchange.kernel_received), (716, 214));
}

/// A poll that finds nothing new costs a whole exchange and delivers nothing: the 304 of the
/// article profile is its status line (27 bytes), X-Powered-By (27), Server (51), Date (37)
/// and the closing CRLF (2): 144 bytes.
#[tokio::test]
async fn interval_poll_with_nothing_new_gets_a_counted_304() {
    let (hub, mut poller) = article_poller().await;
    let before = poller.wire();
    let mut delivered: Vec<Received> = Vec::new();
    poller.next(&mut delivered).await.unwrap();
    let exchange = poller.wire() - before;
    assert!(delivered.is_empty());
    assert_eq!((exchange.sent, exchange.received), (716, 144));
    assert_eq!(
        hub.stats().poll_not_modified,
        2,
        "connect's first poll and this one"
    );
}

/// Polling five times per message interval: 304 answers are part of what each message costs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_counts_304s_as_overhead_and_delivers_everything() {
    let transport = TransportPlan::HttpPoll {
        http: HttpVersion::Http11,
        interval: Duration::from_millis(20),
        headers: HeaderProfile::Minimal,
    };
    let r = run_in_process(&small_plan(20, 16, transport)).await;
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    // ~5 polls per message, so at least 3 of them answered 304 on average...
    assert!(r.exchanges_per_client_per_s > 30.0, "{r:?}");
    // ...and each 304 exchange (request line, Host and validators: > 80 bytes; status line,
    // Etag, Last-Modified and Date: > 100 bytes) is charged to the messages.
    assert!(r.overhead_bytes_per_message > 3.0 * 180.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_delivers_every_message_exactly_once_per_client() {
    let transport = TransportPlan::HttpLongpoll {
        http: HttpVersion::Http11,
        headers: HeaderProfile::Minimal,
        timeout: Duration::from_secs(30),
    };
    let r = run_in_process(&small_plan(50, 16, transport)).await;
    assert_eq!(r.messages_expected, 50 * 10);
    assert_eq!(r.messages_delivered, 50 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.window_messages, 500, "one message per answer");
}
