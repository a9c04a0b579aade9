//! The embedded hub: one HTTP/1.1 server that takes published messages and serves them by
//! interval poll, long poll (nchan-like cursors) and WebSocket push.
//!
//! Poll answers carry only the scenario's header profile, so the bytes on the wire are the
//! profile's and not an accident of hyper. Per-connection state is kept small because the hub
//! must hold tens of thousands of subscribers on one machine.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, CONTENT_TYPE, HeaderMap, IF_NONE_MATCH, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    UPGRADE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::profile::{ARTICLE_POLL_PATH, Answer, HeaderProfile};

/// Cursor value meaning "this connection has not asked yet".
const NO_POSITION: u64 = u64::MAX;

/// Largest message a WebSocket client may send: it only ever sends control frames, and a
/// bigger limit would let one client make the hub buffer megabytes.
const MAX_CLIENT_MESSAGE_BYTES: usize = 4096;

/// Pending connections the kernel may queue: connection ramps come in bursts.
const LISTEN_BACKLOG: u32 = 4096;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// How the hub answers and how much it keeps.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Response header profile for poll and long-poll answers.
    pub profile: HeaderProfile,
    /// How long a long poll is held before it is answered 304.
    pub longpoll_timeout: Duration,
    /// Messages kept per channel; the oldest is evicted first.
    pub history: usize,
    /// Per-channel WebSocket broadcast capacity: a subscriber further behind is dropped.
    pub ws_queue: usize,
    /// tungstenite read buffer per WebSocket connection (keep it <= 4 KiB: it is allocated
    /// eagerly for every connection).
    pub ws_read_buffer_bytes: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            profile: HeaderProfile::Minimal,
            longpoll_timeout: Duration::from_secs(30),
            history: 1024,
            ws_queue: 1024,
            ws_read_buffer_bytes: 4096,
        }
    }
}

/// A snapshot of the hub's counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HubStats {
    pub connections_accepted: u64,
    pub published: u64,
    /// Interval-poll 200s.
    pub poll_messages: u64,
    /// Interval-poll 304s.
    pub poll_not_modified: u64,
    pub longpoll_messages: u64,
    /// Long-poll 304s.
    pub longpoll_timeouts: u64,
    pub ws_sessions: u64,
    pub ws_frames_sent: u64,
    /// WebSocket subscribers dropped because they lagged more than `ws_queue` behind.
    pub ws_dropped_slow: u64,
}

/// The running hub. Dropping it stops the accept loop and every connection it serves.
pub struct Hub {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    /// Never sent on: dropping it wakes every connection's `changed()`, which ends it.
    _shutdown: watch::Sender<()>,
}

impl Hub {
    /// Binds `listen`, spawns the accept loop on the current tokio runtime, returns once
    /// listening.
    pub async fn start(listen: SocketAddr, config: HubConfig) -> anyhow::Result<Hub> {
        let listener = bind(listen).with_context(|| format!("hub: listening on {listen}"))?;
        let local_addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let shared = Arc::new(Shared::new(config, shutdown_rx));
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Hub {
            local_addr,
            shared,
            accept,
            _shutdown: shutdown_tx,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> HubStats {
        self.shared.counters.snapshot()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A listener with a deep backlog, so that bursts of connects are not refused.
fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The hub's counters; relaxed atomics, as they are only ever read as a snapshot.
#[derive(Default)]
struct Counters {
    connections_accepted: AtomicU64,
    published: AtomicU64,
    poll_messages: AtomicU64,
    poll_not_modified: AtomicU64,
    longpoll_messages: AtomicU64,
    longpoll_timeouts: AtomicU64,
    ws_sessions: AtomicU64,
    ws_frames_sent: AtomicU64,
    ws_dropped_slow: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> HubStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HubStats {
            connections_accepted: get(&self.connections_accepted),
            published: get(&self.published),
            poll_messages: get(&self.poll_messages),
            poll_not_modified: get(&self.poll_not_modified),
            longpoll_messages: get(&self.longpoll_messages),
            longpoll_timeouts: get(&self.longpoll_timeouts),
            ws_sessions: get(&self.ws_sessions),
            ws_frames_sent: get(&self.ws_frames_sent),
            ws_dropped_slow: get(&self.ws_dropped_slow),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What every connection task shares.
struct Shared {
    config: HubConfig,
    /// `Last-Modified` of a position that has no stored message.
    started: SystemTime,
    channels: RwLock<HashMap<String, Arc<Channel>>>,
    counters: Counters,
    shutdown: watch::Receiver<()>,
}

impl Shared {
    fn new(config: HubConfig, shutdown: watch::Receiver<()>) -> Shared {
        Shared {
            config,
            started: SystemTime::now(),
            channels: RwLock::new(HashMap::new()),
            counters: Counters::default(),
            shutdown,
        }
    }

    /// The channel `id`, created on first use.
    fn channel(&self, id: &str) -> Arc<Channel> {
        let existing = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        existing.unwrap_or_else(|| {
            let mut channels = self
                .channels
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let created = channels
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(Channel::new(self.config.ws_queue)));
            Arc::clone(created)
        })
    }
}

/// One stored message.
#[derive(Clone)]
struct Stored {
    id: u64,
    body: Bytes,
    published: SystemTime,
}

/// The messages of a channel: ids are contiguous, so a position maps to an index.
#[derive(Default)]
struct Log {
    last_id: u64,
    messages: VecDeque<Stored>,
}

/// A channel: its history for polls, a watch of its newest id to wake long polls, and a
/// bounded broadcast for WebSocket subscribers.
struct Channel {
    log: Mutex<Log>,
    newest: watch::Sender<u64>,
    push: broadcast::Sender<Bytes>,
}

impl Channel {
    fn new(ws_queue: usize) -> Channel {
        Channel {
            log: Mutex::new(Log::default()),
            newest: watch::Sender::new(0),
            push: broadcast::Sender::new(ws_queue.max(1)),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `body` as the next message and tells every subscriber. The broadcast is sent
    /// under the log's lock so WebSocket frames come in id order.
    fn publish(&self, body: Bytes, keep: usize) {
        let mut log = self.log();
        log.last_id += 1;
        let id = log.last_id;
        log.messages.push_back(Stored {
            id,
            body: body.clone(),
            published: SystemTime::now(),
        });
        while log.messages.len() > keep {
            log.messages.pop_front();
        }
        // An error only means that nobody is subscribed by WebSocket right now.
        let _ = self.push.send(body);
        self.newest.send_replace(id);
    }

    fn newest_id(&self) -> u64 {
        self.log().last_id
    }

    /// The oldest stored message newer than `position` (the first kept one if the client
    /// is behind the history).
    fn oldest_after(&self, position: u64) -> Option<Stored> {
        let log = self.log();
        let first = log.messages.front()?.id;
        let index = position.saturating_add(1).saturating_sub(first);
        log.messages.get(usize::try_from(index).ok()?).cloned()
    }

    /// Publish time of message `id`, if it is still stored.
    fn published_at(&self, id: u64) -> Option<SystemTime> {
        let log = self.log();
        let index = id.checked_sub(log.messages.front()?.id)?;
        let stored = log.messages.get(usize::try_from(index).ok()?)?;
        Some(stored.published)
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                bump(&shared.counters.connections_accepted);
                tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
            }
            Err(_) => tokio::time::sleep(ACCEPT_RETRY_DELAY).await,
        }
    }
}

/// Serves one connection until it closes, upgrades, or the hub is dropped.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Latency is measured: do not let Nagle hold small answers back.
    let _ = stream.set_nodelay(true);
    let mut shutdown = shared.shutdown.clone();
    let cursor = Arc::new(AtomicU64::new(NO_POSITION));
    let service = service_fn(move |req| handle(req, Arc::clone(&shared), Arc::clone(&cursor)));
    let connection = http1::Builder::new()
        .title_case_headers(true)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::select! {
        _ = connection => {}
        _ = shutdown.changed() => {}
    }
}

/// What a request asks for.
enum Route {
    Publish(String),
    Poll(String, PollKind),
    WebSocket(String),
    Stats,
    NotFound,
}

#[derive(Clone, Copy)]
enum PollKind {
    Interval,
    Long,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        let get = method == Method::GET;
        if get && path == ARTICLE_POLL_PATH {
            return Route::Poll("0".to_string(), PollKind::Interval);
        }
        if get && path == "/stats" {
            return Route::Stats;
        }
        let Some((prefix, channel)) = path.rsplit_once('/') else {
            return Route::NotFound;
        };
        if channel.is_empty() {
            return Route::NotFound;
        }
        let channel = channel.to_string();
        match (prefix, get, method == Method::POST) {
            ("/pub", _, true) => Route::Publish(channel),
            ("/sub/poll", true, _) => Route::Poll(channel, PollKind::Interval),
            ("/sub/longpoll", true, _) => Route::Poll(channel, PollKind::Long),
            ("/sub/ws", true, _) => Route::WebSocket(channel),
            _ => Route::NotFound,
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    cursor: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match Route::parse(req.method(), req.uri().path()) {
        Route::Publish(channel) => publish(req, &shared, &channel).await,
        Route::Poll(channel, kind) => poll(req.headers(), &shared, &cursor, &channel, kind).await,
        Route::WebSocket(channel) => websocket(req, &shared, &channel),
        Route::Stats => stats(&shared),
        Route::NotFound => empty(StatusCode::NOT_FOUND),
    })
}

/// A response with no body; hyper adds `Date` and, where allowed, `Content-Length: 0`.
fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

async fn publish(req: Request<Incoming>, shared: &Shared, channel: &str) -> Response<Full<Bytes>> {
    let Ok(body) = req.into_body().collect().await else {
        return empty(StatusCode::BAD_REQUEST);
    };
    shared
        .channel(channel)
        .publish(body.to_bytes(), shared.config.history);
    bump(&shared.counters.published);
    empty(StatusCode::ACCEPTED)
}

fn stats(shared: &Shared) -> Response<Full<Bytes>> {
    let Ok(json) = serde_json::to_vec(&shared.counters.snapshot()) else {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut response = Response::new(Full::new(Bytes::from(json)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// An interval or long poll: answers the oldest message newer than the client's position,
/// or 304, and remembers the new position for this connection.
async fn poll(
    headers: &HeaderMap,
    shared: &Shared,
    cursor: &AtomicU64,
    channel: &str,
    kind: PollKind,
) -> Response<Full<Bytes>> {
    let channel = shared.channel(channel);
    let position = client_position(headers, cursor, &channel);
    let found = match kind {
        PollKind::Interval => channel.oldest_after(position),
        PollKind::Long => wait_newer(&channel, position, shared.config.longpoll_timeout).await,
    };
    let (messages, not_modified) = kind.counters(&shared.counters);
    let profile = &shared.config.profile;
    match found {
        Some(message) => {
            cursor.store(message.id, Ordering::Relaxed);
            bump(messages);
            let answer = Answer::Message {
                body_len: message.body.len(),
            };
            profiled(profile, answer, message.id, message.published, message.body)
        }
        None => {
            cursor.store(position, Ordering::Relaxed);
            bump(not_modified);
            let modified = channel.published_at(position).unwrap_or(shared.started);
            profiled(
                profile,
                Answer::NotModified,
                position,
                modified,
                Bytes::new(),
            )
        }
    }
}

impl PollKind {
    /// The counters of this kind's 200 and 304 answers.
    fn counters(self, counters: &Counters) -> (&AtomicU64, &AtomicU64) {
        match self {
            PollKind::Interval => (&counters.poll_messages, &counters.poll_not_modified),
            PollKind::Long => (&counters.longpoll_messages, &counters.longpoll_timeouts),
        }
    }
}

/// The client's position: its `If-None-Match`, else this connection's last answer, else
/// the channel's newest id (a new subscriber only sees what is published after it asks).
fn client_position(headers: &HeaderMap, cursor: &AtomicU64, channel: &Channel) -> u64 {
    requested_position(headers)
        .or_else(|| Some(cursor.load(Ordering::Relaxed)).filter(|&p| p != NO_POSITION))
        .unwrap_or_else(|| channel.newest_id())
}

/// `If-None-Match` as a message id; quotes and a weak marker are tolerated.
fn requested_position(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(IF_NONE_MATCH)?.to_str().ok()?;
    let tag = value.trim().trim_start_matches("W/").trim_matches('"');
    tag.parse().ok().filter(|&id| id != NO_POSITION)
}

/// Waits up to `timeout` for a message newer than `position`. The watch is checked before
/// sleeping, so a publish between the caller's check and the wait is not lost.
async fn wait_newer(channel: &Channel, position: u64, timeout: Duration) -> Option<Stored> {
    let mut newest = channel.newest.subscribe();
    let _ = tokio::time::timeout(timeout, newest.wait_for(|&id| id > position)).await;
    channel.oldest_after(position)
}

/// A poll answer whose headers are exactly the profile's, in its order. Because the profile
/// sets `Date` and (for 200) `Content-Length`, hyper adds neither.
fn profiled(
    profile: &HeaderProfile,
    answer: Answer,
    position: u64,
    modified: SystemTime,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let status = match answer {
        Answer::Message { .. } => StatusCode::OK,
        Answer::NotModified => StatusCode::NOT_MODIFIED,
    };
    let headers = profile.response_headers(answer, position, modified, SystemTime::now());
    let builder = headers
        .into_iter()
        .fold(Response::builder().status(status), |b, (name, value)| {
            b.header(name, value)
        });
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

/// Answers the RFC 6455 handshake and spawns the push task. The subscription is taken now,
/// before the 101 goes out, so nothing published after the client sees the 101 is missed.
fn websocket(
    mut req: Request<Incoming>,
    shared: &Arc<Shared>,
    channel: &str,
) -> Response<Full<Bytes>> {
    let Some(accept) = accept_key(req.headers()) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let channel = shared.channel(channel);
    let subscription = Subscription {
        frames: channel.push.subscribe(),
        newest: channel.newest.subscribe(),
        limit: shared.config.ws_queue.max(1),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(run_websocket(upgrade, subscription, Arc::clone(shared)));
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::default())
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

/// `Sec-WebSocket-Accept` for a request that asks to upgrade to WebSocket.
fn accept_key(headers: &HeaderMap) -> Option<String> {
    let upgrade = headers.get(UPGRADE)?.to_str().ok()?;
    if !upgrade.trim().eq_ignore_ascii_case("websocket") {
        return None;
    }
    Some(derive_accept_key(
        headers.get(SEC_WEBSOCKET_KEY)?.as_bytes(),
    ))
}

/// A WebSocket subscriber's view of its channel.
struct Subscription {
    frames: broadcast::Receiver<Bytes>,
    /// Wakes a blocked send on every publish, to check whether the client fell behind.
    newest: watch::Receiver<u64>,
    /// Messages the client may be behind before it is dropped (`ws_queue`).
    limit: usize,
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn run_websocket(upgrade: OnUpgrade, subscription: Subscription, shared: Arc<Shared>) {
    let Ok(upgraded) = upgrade.await else {
        return;
    };
    bump(&shared.counters.ws_sessions);
    let config = WebSocketConfig::default()
        .read_buffer_size(shared.config.ws_read_buffer_bytes)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE_BYTES));
    let socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = push_frames(socket, subscription, &shared) => {}
        _ = shutdown.changed() => {}
    }
}

/// Sends every message of the channel as one binary frame until the client leaves or falls
/// more than `limit` messages behind; then the connection is simply dropped, since a client
/// that does not read would not read a close frame either.
async fn push_frames(mut socket: Socket, mut sub: Subscription, shared: &Shared) {
    let counters = &shared.counters;
    loop {
        tokio::select! {
            biased;
            frame = sub.frames.recv() => match frame {
                Ok(body) => match send_frame(&mut socket, body, &mut sub).await {
                    Delivery::Sent => bump(&counters.ws_frames_sent),
                    Delivery::Lagging => return bump(&counters.ws_dropped_slow),
                    Delivery::Failed => return,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return bump(&counters.ws_dropped_slow);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.next() => {
                if !matches!(incoming, Some(Ok(ref m)) if !m.is_close()) {
                    return;
                }
            }
        }
    }
}

enum Delivery {
    Sent,
    Lagging,
    Failed,
}

/// Sends one frame; gives up when the client falls too far behind while the send is
/// blocked on a full socket (the broadcast alone would only say so once the send is done).
async fn send_frame(socket: &mut Socket, body: Bytes, sub: &mut Subscription) -> Delivery {
    // Biased: a send that completes at once (the usual case) never registers the lag
    // watcher, whose registration takes a lock shared by every subscriber of the channel.
    tokio::select! {
        biased;
        sent = socket.send(Message::Binary(body)) => match sent {
            Ok(()) => Delivery::Sent,
            Err(_) => Delivery::Failed,
        },
        () = fallen_behind(&sub.frames, &mut sub.newest, sub.limit) => Delivery::Lagging,
    }
}

/// Resolves once more than `limit` messages wait for this subscriber.
async fn fallen_behind(
    frames: &broadcast::Receiver<Bytes>,
    newest: &mut watch::Receiver<u64>,
    limit: usize,
) {
    while frames.len() <= limit {
        if newest.changed().await.is_err() {
            // The channel is gone: nothing more will be published, so never lagging.
            std::future::pending::<()>().await;
        }
    }
}
