//! Server-Sent Events: one streamed `text/event-stream` response per subscriber, each
//! message one event `id: <message id>` + `data: <payload as text>`, resumed after the
//! `Last-Event-ID` a reconnecting client sends.
//!
//! A subscriber reads the channel's history by position, as a long poll does, so it needs no
//! queue of its own: the history is the bounded queue. One that falls out of it (it read too
//! slowly for `history` messages) is dropped and counted, since it has missed messages.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap};
use hyper::{Response, StatusCode};
use tokio::sync::watch;

use super::channels::{Channel, Stored};
use super::routes::{HubBody, empty};
use super::{HubState, bump};

/// The comment a keep-alive sends: a line starting with a colon, then the blank line.
const KEEPALIVE: &[u8] = b":\n\n";

/// Answers `GET /sub/sse/{channel}`: the subscription starts now, before the response head
/// goes out, so nothing published after the client sees the 200 is missed.
pub(super) fn event_stream(
    headers: &HeaderMap,
    state: &Arc<HubState>,
    channel: &str,
) -> Response<HubBody> {
    let channel = state.channels.get(channel);
    let resume = headers
        .get("last-event-id")
        .and_then(|id| id.to_str().ok()?.trim().parse::<u64>().ok());
    bump(&state.counters.sse_sessions);
    if resume.is_some() {
        bump(&state.counters.sse_resumed);
    }
    // An id from beyond this channel's newest was given by an earlier run of this hub (it
    // restarted under its client): everything stored now came after it, so the stream
    // resumes at the start of the history.
    let newest = channel.newest_id();
    let subscriber = Subscriber {
        position: resume.map_or(newest, |id| if id > newest { 0 } else { id }),
        newest: channel.watch_newest(),
        channel,
        sent: 0,
        close_after: state.config.sse_close_after.filter(|_| resume.is_none()),
        state: Arc::clone(state),
        shutdown: state.shutdown.clone(),
    };
    let frames = stream::unfold(subscriber, |mut s| async move {
        let frame = s.next_frame().await?;
        Some((Ok::<_, Infallible>(Frame::data(frame)), s))
    });
    let body: UnsyncBoxBody<Bytes, Infallible> = StreamBody::new(frames).boxed_unsync();
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .body(Either::Right(body))
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR).map(Either::Left))
}

/// One event stream's position in its channel.
struct Subscriber {
    channel: Arc<Channel>,
    /// Id of the last message sent (or resumed after).
    position: u64,
    newest: watch::Receiver<u64>,
    /// Events sent on this stream.
    sent: u64,
    /// The test hook's limit for this stream (`HubConfig::sse_close_after`).
    close_after: Option<u64>,
    state: Arc<HubState>,
    shutdown: watch::Receiver<()>,
}

impl Subscriber {
    /// The next chunk of the stream: an event, or a keep-alive once the stream has been idle
    /// for `sse_keepalive`; `None` ends the stream (hyper then sends the last chunk over
    /// HTTP/1.1, an empty DATA frame with END_STREAM over HTTP/2).
    async fn next_frame(&mut self) -> Option<Bytes> {
        let counters = &self.state.counters;
        loop {
            if self.close_after.is_some_and(|limit| self.sent >= limit) {
                return None;
            }
            if let Some(message) = self.channel.oldest_after(self.position) {
                // The first event may skip what a late resume can no longer get; a gap later
                // means the subscriber fell out of the history while it read.
                if self.sent > 0 && message.id > self.position + 1 {
                    bump(&counters.sse_dropped_slow);
                    return None;
                }
                self.position = message.id;
                self.sent += 1;
                bump(&counters.sse_events_sent);
                return Some(event(&message));
            }
            let keepalive = self.state.config.sse_keepalive;
            tokio::select! {
                changed = self.newest.changed() => changed.ok()?,
                () = idle(keepalive) => {
                    bump(&counters.sse_keepalives_sent);
                    return Some(Bytes::from_static(KEEPALIVE));
                }
                _ = self.shutdown.changed() => return None,
            }
        }
    }
}

/// Sleeps `keepalive`, or for ever without one.
async fn idle(keepalive: Option<Duration>) {
    match keepalive {
        Some(every) => tokio::time::sleep(every).await,
        None => std::future::pending().await,
    }
}

/// `id: <id>\ndata: <body>\n\n`, one `data:` line per line of the body. SSE carries UTF-8
/// lines, so an SSE run's publisher publishes the stamp's text form, which passes through as
/// it is (as through any SSE server); a body that is not UTF-8 is shown lossily.
fn event(message: &Stored) -> Bytes {
    let mut out = format!("id: {}\n", message.id);
    for line in String::from_utf8_lossy(&message.body).lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}
