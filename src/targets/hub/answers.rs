//! Interval-poll and long-poll answers: the client's position from its validators or its
//! connection, and responses whose headers are exactly the configured profile's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, IF_NONE_MATCH};
use hyper::{Response, StatusCode};

use super::channels::{Channel, Stored};
use super::routes::empty;
use super::{Counters, HubState, bump};
use crate::profile::{Answer, HeaderProfile};

/// Cursor value meaning "this connection has not asked yet".
const NO_POSITION: u64 = u64::MAX;

/// Which poll a request is: answered at once, or held until a message or the timeout.
#[derive(Clone, Copy)]
pub(super) enum PollKind {
    Interval,
    Long,
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

/// The position a connection was last answered with, for clients that send no validators.
pub(super) struct Cursor(AtomicU64);

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor(AtomicU64::new(NO_POSITION))
    }
}

impl Cursor {
    fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&p| p != NO_POSITION)
    }

    fn set(&self, position: u64) {
        self.0.store(position, Ordering::Relaxed);
    }
}

/// An interval or long poll: answers the oldest message newer than the client's position,
/// or 304, and remembers the new position for this connection.
pub(super) async fn poll(
    headers: &HeaderMap,
    state: &HubState,
    cursor: &Cursor,
    channel: &str,
    kind: PollKind,
) -> Response<Full<Bytes>> {
    let channel = state.channels.get(channel);
    let position = client_position(headers, cursor, &channel);
    let found = match kind {
        PollKind::Interval => channel.oldest_after(position),
        PollKind::Long => wait_newer(&channel, position, state.config.longpoll_timeout).await,
    };
    let (messages, not_modified) = kind.counters(&state.counters);
    let profile = &state.config.profile;
    match found {
        Some(message) => {
            cursor.set(message.id);
            bump(messages);
            let answer = Answer::Message {
                body_len: message.body.len(),
            };
            profiled(profile, answer, message.id, message.published, message.body)
        }
        None => {
            cursor.set(position);
            bump(not_modified);
            let modified = channel.published_at(position).unwrap_or(state.started);
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

/// The client's position: its `If-None-Match`, else this connection's last answer, else
/// the channel's newest id (a new subscriber only sees what is published after it asks).
/// A tag beyond the newest was given by an earlier run of this hub (it restarted under its
/// client): everything stored came after it, as for SSE's `Last-Event-ID`.
fn client_position(headers: &HeaderMap, cursor: &Cursor, channel: &Channel) -> u64 {
    let newest = channel.newest_id();
    match requested_position(headers).or_else(|| cursor.get()) {
        Some(position) if position > newest => 0,
        Some(position) => position,
        None => newest,
    }
}

/// `If-None-Match` as a message id; quotes and a weak marker are tolerated.
pub(super) fn requested_position(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(IF_NONE_MATCH)?.to_str().ok()?;
    let tag = value.trim().trim_start_matches("W/").trim_matches('"');
    tag.parse().ok().filter(|&id| id != NO_POSITION)
}

/// Waits up to `timeout` for a message newer than `position`. The watch is checked before
/// sleeping, so a publish between the caller's check and the wait is not lost.
async fn wait_newer(channel: &Channel, position: u64, timeout: Duration) -> Option<Stored> {
    let mut newest = channel.watch_newest();
    let _ = tokio::time::timeout(timeout, newest.wait_for(|&id| id > position)).await;
    channel.oldest_after(position)
}

/// A poll answer whose headers are exactly the profile's, in its order. Because the profile
/// sets `Date` and (for 200) `Content-Length`, hyper adds neither.
pub(super) fn profiled(
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
