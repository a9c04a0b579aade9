//! Integration tests of the embedded hub: a real hub on 127.0.0.1:0, raw TCP where the bytes
//! on the wire are the point.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use pushbench::profile::{ARTICLE_POLL_PATH, HeaderProfile};
use pushbench::targets::hub::{Hub, HubConfig, HubStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound for any single network wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

/// One HTTP/1.1 response as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Bytes of the status line and headers, including the closing CRLFCRLF.
    head_len: usize,
    /// Header lines as sent (name case preserved).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    /// Values of header `name` (case-insensitive).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`; fails if it is missing or repeated.
    fn one(&self, name: &str) -> &str {
        let values = self.all(name);
        assert_eq!(values.len(), 1, "{name} in {:?}", self.headers);
        values[0]
    }

    fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// No header name appears twice (hyper must not add a second Date/Content-Length).
    fn assert_no_duplicates(&self) {
        let mut names: Vec<String> = self.names().iter().map(|n| n.to_lowercase()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate headers: {:?}", self.headers);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads exactly one response: the header block, then `Content-Length` body bytes.
async fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        assert!(buf.len() < 64 * 1024, "header block too long");
        let n = timeout(WAIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed before a full header block");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_len].to_vec()).unwrap();
    let mut lines = head.trim_end().split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_string(), v.to_string())
        })
        .collect();
    let mut reply = Reply {
        status,
        head_len,
        headers,
        body: buf[head_len..].to_vec(),
    };
    let len: usize = reply
        .all("content-length")
        .first()
        .map_or(0, |v| v.parse().unwrap());
    while reply.body.len() < len {
        let n = timeout(WAIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed inside a body");
        reply.body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(reply.body.len(), len, "bytes after the body");
    reply
}

async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Reply {
    stream.write_all(request).await.unwrap();
    read_reply(stream).await
}

/// A GET request with exactly these header lines.
fn get(path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

fn host(addr: SocketAddr) -> Vec<(String, String)> {
    vec![("Host".to_string(), addr.to_string())]
}

async fn start(config: HubConfig) -> Hub {
    Hub::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

async fn connect(hub: &Hub) -> TcpStream {
    TcpStream::connect(hub.local_addr()).await.unwrap()
}

/// Publishes `body` on `stream` and checks the 202 answer.
async fn publish_on(stream: &mut TcpStream, addr: SocketAddr, channel: &str, body: &[u8]) {
    let mut request = format!(
        "POST /pub/{channel} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let reply = exchange(stream, &request).await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.one("Content-Length"), "0");
    assert!(reply.body.is_empty());
}

async fn publish(hub: &Hub, channel: &str, body: &[u8]) {
    let mut stream = connect(hub).await;
    publish_on(&mut stream, hub.local_addr(), channel, body).await;
}

/// Polls the hub's counters until `done` holds, for at most `limit`.
async fn wait_stats(hub: &Hub, limit: Duration, done: impl Fn(&HubStats) -> bool) -> HubStats {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let stats = hub.stats();
        if done(&stats) || tokio::time::Instant::now() >= deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn article_poll_is_byte_exact() {
    let hub = start(HubConfig {
        profile: HeaderProfile::WebsocketOrg2010,
        ..HubConfig::default()
    })
    .await;
    let request = get(
        ARTICLE_POLL_PATH,
        &HeaderProfile::WebsocketOrg2010.request_headers("x"),
    );
    assert_eq!(request.len(), 716);
    let mut poller = connect(&hub).await;

    let first = exchange(&mut poller, &request).await;
    assert_eq!(first.status, 304);
    assert!(first.body.is_empty());
    first.assert_no_duplicates();
    assert!(first.all("Content-Length").is_empty());

    let message = b"ACME 101.25 +0.75 USD";
    assert_eq!(message.len(), 21);
    publish(&hub, "0", message).await;

    let second = exchange(&mut poller, &request).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.head_len, 193, "{:?}", second.headers);
    assert_eq!(second.body, message);
    assert_eq!(
        second.names(),
        [
            "X-Powered-By",
            "Server",
            "Content-Type",
            "Content-Length",
            "Date"
        ]
    );
    assert_eq!(second.one("Date").len(), 29);
    assert_eq!(second.one("Content-Length"), "21");
    second.assert_no_duplicates();

    let third = exchange(&mut poller, &request).await;
    assert_eq!(third.status, 304);
    assert_eq!(hub.stats().poll_messages, 1);
    assert_eq!(hub.stats().poll_not_modified, 2);
}

#[tokio::test]
async fn minimal_poll_follows_etags() {
    let hub = start(HubConfig::default()).await;
    let addr = hub.local_addr();
    let mut poller = connect(&hub).await;
    let request = get("/sub/poll/7", &host(addr));

    let first = exchange(&mut poller, &request).await;
    assert_eq!(first.status, 304);
    assert_eq!(first.one("Etag"), "0");
    assert_eq!(first.names(), ["Last-Modified", "Etag", "Date"]);
    let etag = first.one("Etag").to_string();

    publish(&hub, "7", b"first").await;
    publish(&hub, "7", b"second").await;

    let mut with_tag = host(addr);
    with_tag.push(("If-None-Match".to_string(), etag));
    let one = exchange(&mut poller, &get("/sub/poll/7", &with_tag)).await;
    assert_eq!((one.status, one.body.as_slice()), (200, &b"first"[..]));
    assert_eq!(one.one("Etag"), "1");
    assert_eq!(
        one.names(),
        ["Last-Modified", "Etag", "Content-Length", "Date"]
    );
    one.assert_no_duplicates();

    let mut next_tag = host(addr);
    next_tag.push(("If-None-Match".to_string(), one.one("Etag").to_string()));
    let two = exchange(&mut poller, &get("/sub/poll/7", &next_tag)).await;
    assert_eq!((two.status, two.body.as_slice()), (200, &b"second"[..]));
    assert_eq!(two.one("Etag"), "2");
    two.assert_no_duplicates();

    // Without validators, the connection's remembered position (2) is used.
    let remembered = exchange(&mut poller, &request).await;
    assert_eq!((remembered.status, remembered.one("Etag")), (304, "2"));

    // A fresh connection starts at the newest message.
    let mut fresh = connect(&hub).await;
    let newcomer = exchange(&mut fresh, &request).await;
    assert_eq!((newcomer.status, newcomer.one("Etag")), (304, "2"));
    newcomer.assert_no_duplicates();
}

#[tokio::test]
async fn long_poll_is_held_until_a_publish() {
    let hub = start(HubConfig::default()).await;
    let addr = hub.local_addr();
    let mut poller = connect(&hub).await;
    poller
        .write_all(&get("/sub/longpoll/lp", &host(addr)))
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = timeout(Duration::from_millis(200), poller.read(&mut byte)).await;
    assert!(early.is_err(), "long poll answered before any publish");

    publish(&hub, "lp", b"wake up").await;
    let reply = read_reply(&mut poller).await;
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, &b"wake up"[..])
    );
    assert_eq!(reply.one("Etag"), "1");
    reply.assert_no_duplicates();
    assert_eq!(hub.stats().longpoll_messages, 1);
}

#[tokio::test]
async fn long_poll_times_out_with_304() {
    let hub = start(HubConfig {
        longpoll_timeout: Duration::from_millis(300),
        ..HubConfig::default()
    })
    .await;
    let mut poller = connect(&hub).await;
    let started = tokio::time::Instant::now();
    let reply = exchange(
        &mut poller,
        &get("/sub/longpoll/idle", &host(hub.local_addr())),
    )
    .await;
    assert_eq!(reply.status, 304);
    assert!(started.elapsed() >= Duration::from_millis(250));
    reply.assert_no_duplicates();
    let stats = hub.stats();
    assert_eq!((stats.longpoll_timeouts, stats.longpoll_messages), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pushes_one_binary_frame_per_message() {
    let hub = start(HubConfig::default()).await;
    let url = format!("ws://{}/sub/ws/0", hub.local_addr());
    let (mut client, response) = timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 101);

    publish(&hub, "0", b"one").await;
    publish(&hub, "0", &[0u8, 255, 7]).await;
    for expected in [&b"one"[..], &[0u8, 255, 7][..]] {
        let frame = timeout(WAIT, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(frame, Message::Binary(expected.to_vec().into()));
    }
    let stats = wait_stats(&hub, WAIT, |s| s.ws_frames_sent >= 2).await;
    assert_eq!((stats.ws_sessions, stats.ws_frames_sent), (1, 2));
    assert_eq!(stats.ws_dropped_slow, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_websocket_subscriber_is_dropped() {
    let hub = start(HubConfig {
        ws_queue: 4,
        history: 4,
        ..HubConfig::default()
    })
    .await;
    let addr = hub.local_addr();
    let mut sleeper = connect(&hub).await;
    let upgrade = format!(
        "GET /sub/ws/slow HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    let switched = exchange(&mut sleeper, upgrade.as_bytes()).await;
    assert_eq!(switched.status, 101);
    assert_eq!(
        switched.one("Sec-WebSocket-Accept"),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );

    // The sleeper never reads again: its socket buffers fill and the hub must give up on it.
    let mut publisher = connect(&hub).await;
    let message = vec![b'x'; 64 * 1024];
    for _ in 0..400 {
        publish_on(&mut publisher, addr, "slow", &message).await;
        if hub.stats().ws_dropped_slow > 0 {
            break;
        }
    }
    let stats = wait_stats(&hub, Duration::from_secs(10), |s| s.ws_dropped_slow >= 1).await;
    assert_eq!(stats.ws_dropped_slow, 1, "{stats:?}");
    assert!(stats.ws_frames_sent < stats.published, "{stats:?}");
    drop(sleeper);
}

#[tokio::test]
async fn stats_are_json_and_unknown_paths_404() {
    let hub = start(HubConfig::default()).await;
    let addr = hub.local_addr();
    publish(&hub, "s", b"hello").await;
    let mut stream = connect(&hub).await;
    let reply = exchange(&mut stream, &get("/stats", &host(addr))).await;
    assert_eq!(reply.status, 200);
    reply.assert_no_duplicates();
    let stats: HubStats = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(stats.published, 1);
    assert_eq!(stats.connections_accepted, 2);

    for path in [
        "/nope",
        "/sub/poll/",
        "/pub/s",
        "/sub/other/s",
        "/sub/poll/a/b",
    ] {
        let reply = exchange(&mut stream, &get(path, &host(addr))).await;
        assert_eq!(reply.status, 404, "{path}");
        reply.assert_no_duplicates();
    }
}

#[tokio::test]
async fn dropping_the_hub_closes_its_connections() {
    let hub = start(HubConfig::default()).await;
    let mut stream = connect(&hub).await;
    let reply = exchange(&mut stream, &get("/sub/poll/d", &host(hub.local_addr()))).await;
    assert_eq!(reply.status, 304);
    drop(hub);
    let mut byte = [0u8; 1];
    let read = timeout(WAIT, stream.read(&mut byte)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_client_behind_the_history_gets_the_oldest_kept_message() {
    let hub = start(HubConfig {
        history: 2,
        ..HubConfig::default()
    })
    .await;
    let addr = hub.local_addr();
    for body in [&b"m1"[..], b"m2", b"m3"] {
        publish(&hub, "h", body).await;
    }
    let mut behind = host(addr);
    behind.push(("If-None-Match".to_string(), "0".to_string()));
    let mut poller = connect(&hub).await;
    let reply = exchange(&mut poller, &get("/sub/poll/h", &behind)).await;
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"m2"[..]));
    assert_eq!(reply.one("Etag"), "2");
    let next = exchange(&mut poller, &get("/sub/poll/h", &host(addr))).await;
    assert_eq!((next.status, next.body.as_slice()), (200, &b"m3"[..]));
}

#[tokio::test]
async fn websocket_route_without_upgrade_is_refused() {
    let hub = start(HubConfig::default()).await;
    let mut stream = connect(&hub).await;
    let reply = exchange(&mut stream, &get("/sub/ws/0", &host(hub.local_addr()))).await;
    assert_eq!(reply.status, 400);
    assert_eq!(hub.stats().ws_sessions, 0);
}

/// Waits for the server to close `stream` (a read of 0 bytes or an error) for at most
/// `limit`; returns how long it took, or `None` if it stayed open. The hub must send nothing.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut chunk = [0u8; 1024];
    match timeout(limit, stream.read(&mut chunk)).await {
        Err(_) => None,
        Ok(Ok(0) | Err(_)) => Some(started.elapsed()),
        Ok(Ok(n)) => panic!("unexpected {n} bytes from the hub"),
    }
}

/// Short enough for a quick test, long enough to tell "before" from "after" on a busy machine.
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn half_sent_header_is_closed_after_the_header_timeout() {
    let hub = start(HubConfig {
        header_timeout: HEADER_TIMEOUT,
        ..HubConfig::default()
    })
    .await;
    let mut stalled = connect(&hub).await;
    stalled
        .write_all(b"GET /sub/poll/1 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut stalled, HEADER_TIMEOUT + WAIT).await;
    let after = closed.expect("a half-sent header kept its connection open");
    assert!(
        after >= HEADER_TIMEOUT - Duration::from_millis(50),
        "{after:?}"
    );
    let stats = wait_stats(&hub, WAIT, |s| s.header_timeouts >= 1).await;
    assert_eq!(stats.header_timeouts, 1, "{stats:?}");
    assert_eq!(stats.poll_not_modified, 0, "{stats:?}");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let hub = start(HubConfig {
        header_timeout: HEADER_TIMEOUT,
        ..HubConfig::default()
    })
    .await;
    let mut idle = connect(&hub).await;
    let reply = exchange(&mut idle, &get("/sub/poll/1", &host(hub.local_addr()))).await;
    assert_eq!(reply.status, 304);
    // The clock restarts with each response: the connection is kept for a while...
    let early = closed_within(&mut idle, HEADER_TIMEOUT / 2).await;
    assert_eq!(early, None, "closed before the header timeout");
    assert_eq!(hub.stats().header_timeouts, 0);
    // ...and closed once it has waited the header timeout for the next request.
    let closed = closed_within(&mut idle, HEADER_TIMEOUT + WAIT).await;
    assert!(
        closed.is_some(),
        "an idle keep-alive connection stayed open"
    );
    let stats = wait_stats(&hub, WAIT, |s| s.header_timeouts >= 1).await;
    assert_eq!(stats.header_timeouts, 1, "{stats:?}");
}

/// A connection that sends nothing, or stops inside what could be the HTTP/2 preface, has
/// not shown its version, let alone a header: it is closed after the header timeout too.
#[tokio::test]
async fn silent_or_half_preface_connection_is_closed_after_the_header_timeout() {
    let hub = start(HubConfig {
        header_timeout: HEADER_TIMEOUT,
        ..HubConfig::default()
    })
    .await;
    let mut silent = connect(&hub).await;
    let mut half_preface = connect(&hub).await;
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for stream in [&mut silent, &mut half_preface] {
        let closed = closed_within(stream, HEADER_TIMEOUT + WAIT).await;
        assert!(
            closed.is_some(),
            "a connection that said nothing stayed open"
        );
    }
    let stats = wait_stats(&hub, WAIT, |s| s.header_timeouts >= 2).await;
    assert_eq!(stats.header_timeouts, 2, "{stats:?}");
}

#[tokio::test]
async fn long_poll_outlasts_the_header_timeout() {
    let longpoll_timeout = HEADER_TIMEOUT * 3;
    let hub = start(HubConfig {
        header_timeout: HEADER_TIMEOUT,
        longpoll_timeout,
        ..HubConfig::default()
    })
    .await;
    let mut poller = connect(&hub).await;
    let started = tokio::time::Instant::now();
    let reply = exchange(
        &mut poller,
        &get("/sub/longpoll/held", &host(hub.local_addr())),
    )
    .await;
    assert_eq!(reply.status, 304);
    assert!(started.elapsed() >= longpoll_timeout - Duration::from_millis(50));
    let stats = hub.stats();
    assert_eq!((stats.longpoll_timeouts, stats.header_timeouts), (1, 0));
}
