//! HTTP/2 polling against the embedded hub: the bytes of every frame, and what HPACK leaves
//! of each header profile.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{publish, run_in_process, small_plan};
use pushbench::payload::Stamp;
use pushbench::plan::{HttpVersion, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::result::RunResult;
use pushbench::targets::hub::Hub;
use pushbench::transport::{HttpPoll, Received, Transport};
use pushbench::wire::WireCounts;

/// One interval-poll connection to a fresh in-process hub answering with `profile`.
async fn poller(profile: HeaderProfile, http: HttpVersion) -> (Hub, HttpPoll) {
    common::hub_poller(profile, http, Duration::from_millis(1)).await
}

/// Publishes message `seq` of `payload` bytes and polls it: the exchange's counts.
async fn poll_one(hub: &Hub, poller: &mut HttpPoll, seq: u64, payload: usize) -> WireCounts {
    let body = Stamp {
        seq,
        intended_us: 0,
    }
    .encode(payload);
    publish(hub.local_addr(), "0", &body).await;
    let before = poller.wire();
    let mut delivered: Vec<Received> = Vec::new();
    poller.next(&mut delivered).await.unwrap();
    assert_eq!(delivered.len(), 1);
    poller.wire() - before
}

/// Bits of the HPACK Huffman code (RFC 7541 Appendix B) of the characters of an HTTP date.
fn huffman_bits(c: char) -> usize {
    match c {
        '0' | '1' | '2' | 'a' | 'c' | 'e' | 'i' | 'o' | 't' => 5,
        ' ' | '3'..='9' | 'A' | 'b' | 'd' | 'g' | 'h' | 'l' | 'n' | 'p' | 'r' | 'u' => 6,
        ':' | 'D' | 'F' | 'G' | 'J' | 'M' | 'N' | 'O' | 'S' | 'T' | 'W' | 'v' | 'y' => 7,
        ',' => 8,
        other => panic!("{other:?} is not in an HTTP date"),
    }
}

/// Bytes of an HTTP date as a Huffman-coded HPACK string, without its length prefix: the
/// one part of a header block that depends on the clock.
fn huffman_date_bytes(at: SystemTime) -> usize {
    httpdate::fmt_http_date(at)
        .chars()
        .map(huffman_bits)
        .sum::<usize>()
        .div_ceil(8)
}

fn second(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Polls a warm-up message and three more on a fresh connection, all inside one second of
/// the clock (so that every `Date` and `Last-Modified` is the one HPACK already indexed);
/// returns the three exchanges and that second. A try that straddles a second is redone:
/// the clock decides which exchanges are measured, never whether the test passes.
async fn steady_polls(profile: HeaderProfile, payload: usize) -> (Vec<WireCounts>, SystemTime) {
    for _ in 0..10 {
        let (hub, mut poller) = poller(profile.clone(), HttpVersion::Http2).await;
        let start = SystemTime::now();
        poll_one(&hub, &mut poller, 0, payload).await;
        let mut exchanges = Vec::new();
        for seq in 1..=3 {
            exchanges.push(poll_one(&hub, &mut poller, seq, payload).await);
        }
        if second(start) == second(SystemTime::now()) {
            return (exchanges, start);
        }
    }
    panic!("ten tries of four polls each straddled a second");
}

/// Over HTTP/1.1 a `minimal` poll that delivers a 20-byte message costs 119 request bytes
/// and 131 response-head bytes plus the body: 270 bytes. Over HTTP/2 the same exchange is
/// 101 bytes:
///
/// - request HEADERS, 9 + 42: `:method GET` and `:scheme http` from the static table (1
///   each), `:path /sub/poll/0` as a literal (1 + 1 + 8 Huffman bytes: hyper's HPACK never
///   indexes paths), `:authority` from the dynamic table (1), `if-none-match` literal
///   (2 + 1 + 1: validators are never indexed either) and `if-modified-since` literal
///   (2 + 1 + the date's 21–23 Huffman bytes);
/// - response HEADERS, 9 + 12: `:status 200` (1), `last-modified` and `date` from the
///   dynamic table (1 each), `etag` literal (2 + 1 + 1), `content-length` literal (2 + 1 + 2);
/// - DATA, 9 + 20, with END_STREAM. No WINDOW_UPDATE, PING or SETTINGS in steady state.
#[tokio::test]
async fn h2_minimal_poll_is_three_frames_and_a_third_of_http1() {
    const PAYLOAD: usize = 20;
    let (hub, mut http1) = poller(HeaderProfile::Minimal, HttpVersion::Http11).await;
    let exchange = poll_one(&hub, &mut http1, 0, PAYLOAD).await;
    assert_eq!((exchange.sent, exchange.received), (119, 131 + 20));
    assert_eq!(
        (
            exchange.request_header_bytes,
            exchange.response_header_bytes
        ),
        (119, 131)
    );

    let (exchanges, at) = steady_polls(HeaderProfile::Minimal, PAYLOAD).await;
    let request_headers = 9 + 20 + huffman_date_bytes(at) as u64;
    for e in exchanges {
        assert_eq!(e.request_header_bytes, request_headers, "{e:?}");
        assert_eq!(e.sent, e.request_header_bytes, "only HEADERS go up: {e:?}");
        assert_eq!(e.response_header_bytes, 9 + 12, "{e:?}");
        assert_eq!(e.received, 9 + 12 + 9 + PAYLOAD as u64, "{e:?}");
        assert!(e.sent + e.received <= 103, "{e:?}");
    }
}

/// The article's headers over HTTP/2 (without `Keep-Alive` and `Connection`, which HTTP/2
/// forbids): the request is 9 + 231 bytes every poll, because hyper's HPACK indexes
/// `User-Agent`, `Accept*`, `Referer` and `:authority` (1 byte each once sent, `:method` and
/// `:scheme` are static) but never `Cookie` (2 + 2 + 196 Huffman bytes for its 274
/// characters) or `:path` (1 + 1 + 20). The response is 9 + 10: `:status`, `X-Powered-By`,
/// `Server`, `Content-Type` and `Date` indexed, `Content-Length` literal (2 + 1 + 2).
/// Against 716 + 193 over HTTP/1.1.
#[tokio::test]
async fn h2_article_poll_header_bytes() {
    let (exchanges, _) = steady_polls(HeaderProfile::WebsocketOrg2010, 21).await;
    for e in exchanges {
        assert_eq!(
            (e.request_header_bytes, e.response_header_bytes),
            (240, 19),
            "{e:?}"
        );
        assert_eq!((e.sent, e.received), (240, 19 + 9 + 21), "{e:?}");
    }
}

/// The browser profile over HTTP/2: everything but `:path` and the validators indexed.
#[tokio::test]
async fn h2_browser_poll_header_bytes() {
    let (exchanges, at) = steady_polls(HeaderProfile::Browser, 20).await;
    let request_headers = 9 + 31 + huffman_date_bytes(at) as u64;
    for e in exchanges {
        assert_eq!(
            (e.request_header_bytes, e.response_header_bytes),
            (request_headers, 25),
            "{e:?}"
        );
    }
}

/// A `minimal` poll with nothing new over HTTP/2: the response is one HEADERS frame of
/// 9 + 7 bytes (`:status 304`, `last-modified` and `date` indexed, `etag` literal 2 + 1 + 1)
/// and nothing else. `scripts/h2load-check.sh` checks this figure against h2load's.
#[tokio::test]
async fn h2_not_modified_poll_is_one_16_byte_headers_frame() {
    for _ in 0..10 {
        let (_hub, mut poller) = poller(HeaderProfile::Minimal, HttpVersion::Http2).await;
        let start = SystemTime::now();
        let mut exchanges = Vec::new();
        for _ in 0..3 {
            let before = poller.wire();
            let mut delivered: Vec<Received> = Vec::new();
            poller.next(&mut delivered).await.unwrap();
            assert!(delivered.is_empty());
            exchanges.push(poller.wire() - before);
        }
        if second(start) != second(SystemTime::now()) {
            continue;
        }
        for e in exchanges {
            assert_eq!((e.received, e.response_header_bytes), (16, 16), "{e:?}");
        }
        return;
    }
    panic!("ten tries of three polls each straddled a second");
}

/// Inside the byte windows the client sent only HEADERS frames and received only HEADERS
/// and one DATA frame (9 + payload) per message: nothing else is unaccounted for.
fn assert_only_headers_and_data(r: &RunResult, payload: u64) {
    let exchanges =
        (r.exchanges_per_client_per_s * r.clients_connected as f64 * r.window_s).round();
    let headers = |per_exchange: f64| (per_exchange * exchanges).round() as u64;
    assert_eq!(
        r.window_bytes_up,
        headers(r.request_header_bytes_per_exchange),
        "only HEADERS go up: {r:?}"
    );
    assert_eq!(
        r.window_bytes_down - headers(r.response_header_bytes_per_exchange),
        r.window_messages * (9 + payload),
        "HEADERS and one DATA frame per message come down: {r:?}"
    );
}

fn over_h2_poll(interval: Duration) -> TransportPlan {
    TransportPlan::HttpPoll {
        interval,
        headers: HeaderProfile::Minimal,
        http: HttpVersion::Http2,
    }
}

/// A whole run over HTTP/2: every message delivered, every byte in the windows a header or a
/// DATA frame, and far less overhead than HTTP/1.1's 251.7 bytes a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_interval_polling_delivers_everything_with_only_header_and_data_frames() {
    let r = run_in_process(&small_plan(
        20,
        16,
        over_h2_poll(Duration::from_millis(100)),
    ))
    .await;
    assert_eq!(r.transport, "http-poll(minimal,h2)");
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert_only_headers_and_data(&r, 16);
    assert!(r.overhead_bytes_per_message < 251.7 / 2.0, "{r:?}");
    // The connection's opening (134 bytes, see the long-poll test) and the first poll.
    assert!(r.setup_bytes_per_client > 134.0 + 60.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_long_polling_delivers_every_message_exactly_once_per_client() {
    let transport = TransportPlan::HttpLongpoll {
        headers: HeaderProfile::Minimal,
        http: HttpVersion::Http2,
        timeout: Duration::from_secs(30),
    };
    let r = run_in_process(&small_plan(50, 16, transport)).await;
    assert_eq!(r.transport, "http-longpoll(minimal,h2)");
    // Setup is the connection's opening and nothing of its first (held) long poll: the
    // 24-byte preface, both SETTINGS frames (hyper's defaults), both WINDOW_UPDATEs that
    // open the connection windows, and both SETTINGS ACKs.
    assert_eq!(r.setup_bytes_per_client, 134.0, "{r:?}");
    assert_eq!(r.messages_delivered, 50 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.window_messages, 500, "one message per answer");
    assert_only_headers_and_data(&r, 16);
    assert!(r.overhead_bytes_per_message < 251.7 / 2.0, "{r:?}");
}

/// The first poll is made while connecting: over HTTP/1.1 the article's request is its 716
/// bytes every time; over HTTP/2 the first one carries every header in full (HPACK has not
/// indexed anything yet), the later ones far less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_poll_pays_for_headers_that_later_polls_index() {
    let article = |http| TransportPlan::HttpPoll {
        interval: Duration::from_millis(100),
        headers: HeaderProfile::WebsocketOrg2010,
        http,
    };
    let h1 = run_in_process(&small_plan(10, 21, article(HttpVersion::Http11))).await;
    assert_eq!(h1.first_request_header_bytes, 716.0, "{h1:?}");
    assert_eq!(h1.request_header_bytes_per_exchange, 716.0, "{h1:?}");
    let h2 = run_in_process(&small_plan(10, 21, article(HttpVersion::Http2))).await;
    assert_eq!((h2.lost, h2.duplicated), (0, 0), "{h2:?}");
    // The article's request has no date in it, so its HPACK form is fixed: 436 bytes the
    // first time (a 9-byte frame header and every header as a literal), 240 after, when only
    // the cookie, :path and what HPACK never indexes are sent again.
    assert_eq!(h2.first_request_header_bytes, 436.0, "{h2:?}");
    assert_eq!(h2.request_header_bytes_per_exchange, 240.0, "{h2:?}");
    assert!(h2.first_response_header_bytes > h2.response_header_bytes_per_exchange);
}
