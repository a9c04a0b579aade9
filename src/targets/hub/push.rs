//! WebSocket push: the RFC 6455 handshake, one binary frame per message, and dropping a
//! subscriber that falls too far behind so that it cannot make the hub buffer without limit.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderMap, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::routes::empty;
use super::{HubState, bump};

/// Largest message a WebSocket client may send: it only ever sends control frames, and a
/// bigger limit would let one client make the hub buffer megabytes.
const MAX_CLIENT_MESSAGE_BYTES: usize = 4096;

/// Answers the RFC 6455 handshake and spawns the push task. The subscription is taken now,
/// before the 101 goes out, so nothing published after the client sees the 101 is missed.
pub(super) fn websocket(
    mut req: Request<Incoming>,
    state: &Arc<HubState>,
    channel: &str,
) -> Response<Full<Bytes>> {
    let Some(accept) = accept_key(req.headers()) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let channel = state.channels.get(channel);
    let subscription = Subscription {
        frames: channel.subscribe_push(),
        newest: channel.watch_newest(),
        limit: state.config.ws_queue.max(1),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(run_websocket(upgrade, subscription, Arc::clone(state)));
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

type Socket = WebSocketStream<TokioIo<Upgraded>>;

async fn run_websocket(upgrade: OnUpgrade, subscription: Subscription, state: Arc<HubState>) {
    let Ok(upgraded) = upgrade.await else {
        return;
    };
    bump(&state.counters.ws_sessions);
    let config = WebSocketConfig::default()
        .read_buffer_size(state.config.ws_read_buffer_bytes)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE_BYTES));
    let socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        _ = push_frames(socket, subscription, &state) => {}
        _ = shutdown.changed() => {}
    }
}

/// Sends every message of the channel as one binary frame until the client leaves or falls
/// more than `limit` messages behind; then the connection is simply dropped, since a client
/// that does not read would not read a close frame either.
async fn push_frames(mut socket: Socket, mut sub: Subscription, state: &HubState) {
    let counters = &state.counters;
    loop {
        tokio::select! {
            biased;
            frame = sub.frames.recv() => match frame {
                Ok(body) => match send_frame(&mut socket, body, &mut sub).await {
                    SendOutcome::Sent => bump(&counters.ws_frames_sent),
                    SendOutcome::Lagging => return bump(&counters.ws_dropped_slow),
                    SendOutcome::Failed => return,
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

/// How sending one frame ended.
enum SendOutcome {
    Sent,
    /// Given up: the client fell more than `limit` messages behind while the send waited.
    Lagging,
    /// The socket failed or closed.
    Failed,
}

/// Sends one frame; gives up when the client falls too far behind while the send is
/// blocked on a full socket (the broadcast alone would only say so once the send is done).
async fn send_frame(socket: &mut Socket, body: Bytes, sub: &mut Subscription) -> SendOutcome {
    // Biased: a send that completes at once (the usual case) never registers the lag
    // watcher, whose registration takes a lock shared by every subscriber of the channel.
    tokio::select! {
        biased;
        sent = socket.send(Message::Binary(body)) => match sent {
            Ok(()) => SendOutcome::Sent,
            Err(_) => SendOutcome::Failed,
        },
        () = fallen_behind(&sub.frames, &mut sub.newest, sub.limit) => SendOutcome::Lagging,
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
