//! The embedded hub: one HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) server, on one
//! port, that takes published messages and serves them by interval poll, long poll
//! (nchan-like cursors) and WebSocket push (HTTP/1.1 only).
//!
//! Poll answers carry only the scenario's header profile, so the bytes on the wire are the
//! profile's and not an accident of hyper. Per-connection state is kept small because the hub
//! must hold tens of thousands of subscribers on one machine.
//!
//! This module is the hub's life: configuration, counters, the accept loop and each
//! connection's HTTP driver (`preface` tells the versions apart). `routes` says what a
//! request asks for, `channels` keeps the messages, `answers` builds poll answers, `push`
//! serves WebSocket subscribers and `sse` event streams; `grip` makes it a GRIP origin
//! behind Pushpin.

mod answers;
mod channels;
mod grip;
mod preface;
mod push;
mod routes;
mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::profile::HeaderProfile;
use crate::tls::Identity;
use answers::Cursor;
use channels::Channels;
use preface::{Opened, read_preface};

pub use grip::{CHANNEL_PREFIX as GRIP_CHANNEL_PREFIX, GripConfig};

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
    /// How long a connection may take to send a complete request header (through its blank
    /// line) before it is closed, without an answer, and counted in `header_timeouts`. So a
    /// client that stalls mid-header cannot hold a connection for ever.
    ///
    /// The clock (hyper's `header_read_timeout`) starts whenever the connection waits for a
    /// request header: at accept for the first request, and once the previous response is
    /// written for every later one, so an idle keep-alive connection is closed after this
    /// long too. It stops when the header is complete: a slow request body, a long poll
    /// being held and an upgraded WebSocket connection are not covered. A new connection
    /// must also show within this long whether it speaks HTTP/2 (its preface); an HTTP/2
    /// connection is then not covered (hyper has no header timeout for HTTP/2).
    pub header_timeout: Duration,
    /// Messages kept per channel; the oldest is evicted first.
    pub history: usize,
    /// Per-channel WebSocket broadcast capacity: a subscriber further behind is dropped.
    pub ws_queue: usize,
    /// tungstenite read buffer per WebSocket connection (keep it <= 4 KiB: it is allocated
    /// eagerly for every connection).
    pub ws_read_buffer_bytes: usize,
    /// A comment (`:` and a blank line) on an event stream idle this long; `None`: never.
    pub sse_keepalive: Option<Duration>,
    /// Test hook: an event stream that is not a resume (no `Last-Event-ID`) is closed after
    /// this many events, so that every SSE client must reconnect and resume once.
    pub sse_close_after: Option<u64>,
    /// Also accept TLS (a connection whose first byte opens a TLS handshake) with a
    /// self-signed certificate generated at start; cleartext stays served on the same port.
    pub tls: bool,
    /// Act as a GRIP origin behind Pushpin: long polls are answered or held by position,
    /// and every published message is forwarded to this publish API.
    pub grip: Option<GripConfig>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            profile: HeaderProfile::Minimal,
            longpoll_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            history: 1024,
            ws_queue: 1024,
            ws_read_buffer_bytes: 512,
            sse_keepalive: None,
            sse_close_after: None,
            tls: false,
            grip: None,
        }
    }
}

/// A snapshot of the hub's counters. Shards' snapshots add up field by field.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    derive_more::Add,
    derive_more::AddAssign,
    derive_more::Sum,
)]
pub struct HubStats {
    pub connections_accepted: u64,
    /// Connections closed because a request header was not complete within
    /// `header_timeout` (idle keep-alive connections included).
    pub header_timeouts: u64,
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
    /// Event streams opened, and those of them resumed with a `Last-Event-ID`.
    pub sse_sessions: u64,
    pub sse_resumed: u64,
    pub sse_events_sent: u64,
    pub sse_keepalives_sent: u64,
    /// Event streams closed because their subscriber fell out of the channel's history.
    pub sse_dropped_slow: u64,
}

/// The running hub. Dropping it stops the accept loop and every connection it serves.
pub struct Hub {
    local_addr: SocketAddr,
    state: Arc<HubState>,
    accept: JoinHandle<()>,
    /// The certificate it presents over TLS, when it accepts TLS.
    identity: Option<Arc<Identity>>,
    /// Never sent on: dropping it wakes every connection's `changed()`, which ends it.
    _shutdown: watch::Sender<()>,
}

impl Hub {
    /// Binds `listen`, spawns the accept loop on the current tokio runtime, returns once
    /// listening.
    pub async fn start(listen: SocketAddr, config: HubConfig) -> anyhow::Result<Hub> {
        let listener = bind(listen).with_context(|| format!("hub: listening on {listen}"))?;
        let local_addr = listener.local_addr()?;
        let identity = match config.tls {
            true => Some(Identity::generate(local_addr.ip())?),
            false => None,
        };
        let tls = match &identity {
            Some(identity) => Some(TlsAcceptor::from(identity.server_config()?)),
            None => None,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let state = Arc::new(HubState::new(config, tls, shutdown_rx));
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(Hub {
            local_addr,
            state,
            accept,
            identity: identity.map(Arc::new),
            _shutdown: shutdown_tx,
        })
    }

    /// The self-signed certificate (DER) clients must trust, when the hub accepts TLS.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.identity.as_ref().map(|i| i.certificate_der.as_slice())
    }

    /// Its TLS identity, for a broker beside it in the same process (one certificate).
    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.identity.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> HubStats {
        self.state.counters.snapshot()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A listener with a deep backlog, so that bursts of connects are not refused.
fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
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
    header_timeouts: AtomicU64,
    published: AtomicU64,
    poll_messages: AtomicU64,
    poll_not_modified: AtomicU64,
    longpoll_messages: AtomicU64,
    longpoll_timeouts: AtomicU64,
    ws_sessions: AtomicU64,
    ws_frames_sent: AtomicU64,
    ws_dropped_slow: AtomicU64,
    sse_sessions: AtomicU64,
    sse_resumed: AtomicU64,
    sse_events_sent: AtomicU64,
    sse_keepalives_sent: AtomicU64,
    sse_dropped_slow: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> HubStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HubStats {
            connections_accepted: get(&self.connections_accepted),
            header_timeouts: get(&self.header_timeouts),
            published: get(&self.published),
            poll_messages: get(&self.poll_messages),
            poll_not_modified: get(&self.poll_not_modified),
            longpoll_messages: get(&self.longpoll_messages),
            longpoll_timeouts: get(&self.longpoll_timeouts),
            ws_sessions: get(&self.ws_sessions),
            ws_frames_sent: get(&self.ws_frames_sent),
            ws_dropped_slow: get(&self.ws_dropped_slow),
            sse_sessions: get(&self.sse_sessions),
            sse_resumed: get(&self.sse_resumed),
            sse_events_sent: get(&self.sse_events_sent),
            sse_keepalives_sent: get(&self.sse_keepalives_sent),
            sse_dropped_slow: get(&self.sse_dropped_slow),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What every connection task of one hub shares.
struct HubState {
    config: HubConfig,
    /// `Last-Modified` of a position that has no stored message.
    started: SystemTime,
    channels: Channels,
    counters: Counters,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<()>,
}

impl HubState {
    fn new(config: HubConfig, tls: Option<TlsAcceptor>, shutdown: watch::Receiver<()>) -> HubState {
        HubState {
            tls,
            channels: Channels::new(config.ws_queue),
            config,
            started: SystemTime::now(),
            counters: Counters::default(),
            shutdown,
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<HubState>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                bump(&state.counters.connections_accepted);
                tokio::spawn(serve_connection(stream, Arc::clone(&state)));
            }
            Err(_) => tokio::time::sleep(ACCEPT_RETRY_DELAY).await,
        }
    }
}

/// Serves one connection until it closes, upgrades, stalls on a request header, or the hub
/// is dropped.
async fn serve_connection(stream: TcpStream, state: Arc<HubState>) {
    // Latency is measured: do not let Nagle hold small answers back.
    let _ = stream.set_nodelay(true);
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        _ = serve_tls_or_not(stream, &state) => {}
        _ = shutdown.changed() => {}
    }
}

/// The first byte of a TLS connection: a handshake record (RFC 8446 §5.1). No HTTP/1.1
/// method and no HTTP/2 preface starts with it.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Serves a TLS connection over its handshake, any other as cleartext.
async fn serve_tls_or_not(stream: TcpStream, state: &Arc<HubState>) {
    let Some(acceptor) = &state.tls else {
        return serve_http(stream, state).await;
    };
    let timeout = state.config.header_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => return serve_http(stream, state).await,
        Ok(_) => return,
        Err(_) => return bump(&state.counters.header_timeouts),
    }
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_http(tls, state).await,
        Ok(Err(_)) => {}
        Err(_) => bump(&state.counters.header_timeouts),
    }
}

/// Serves the connection in the HTTP version its first bytes show.
async fn serve_http<S>(stream: S, state: &Arc<HubState>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = state.config.header_timeout;
    let (opened, stream) = match tokio::time::timeout(timeout, read_preface(stream)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(_)) => return,
        Err(_) => return bump(&state.counters.header_timeouts),
    };
    let cursor = Arc::new(Cursor::default());
    let service = {
        let state = Arc::clone(state);
        service_fn(move |req| routes::handle(req, Arc::clone(&state), Arc::clone(&cursor)))
    };
    let io = TokioIo::new(stream);
    match opened {
        Opened::Http1 => {
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .title_case_headers(true)
                .keep_alive(true)
                .serve_connection(io, service)
                .with_upgrades()
                .await;
            // hyper's only timeout on a server connection is the header read timeout.
            if served.is_err_and(|e| e.is_timeout()) {
                bump(&state.counters.header_timeouts);
            }
        }
        Opened::Http2 => {
            // The connection's end, clean or not, is the client's business.
            let _ = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, service)
                .await;
        }
    }
}
