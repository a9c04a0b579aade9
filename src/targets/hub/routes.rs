//! What a request asks for, and the answers that are neither polls nor pushes: publishing
//! and the counters.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::answers::{Cursor, PollKind, poll};
use super::grip;
use super::push::websocket;
use super::sse::event_stream;
use super::{HubState, bump};
use crate::profile::ARTICLE_POLL_PATH;

/// What a request asks for.
enum Route {
    Publish(String),
    Poll(String, PollKind),
    WebSocket(String),
    EventStream(String),
    Stats,
    NotFound,
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
            ("/sub/sse", true, _) => Route::EventStream(channel),
            _ => Route::NotFound,
        }
    }
}

/// A response body: whole, or an endless event stream.
pub(super) type HubBody = Either<Full<Bytes>, UnsyncBoxBody<Bytes, Infallible>>;

/// Answers one request of a connection whose poll position is `cursor`.
pub(super) async fn handle(
    req: Request<Incoming>,
    state: Arc<HubState>,
    cursor: Arc<Cursor>,
) -> Result<Response<HubBody>, Infallible> {
    let whole = match Route::parse(req.method(), req.uri().path()) {
        Route::EventStream(channel) => return Ok(event_stream(req.headers(), &state, &channel)),
        Route::Publish(channel) => publish(req, &state, &channel).await,
        Route::Poll(channel, PollKind::Long) if state.config.grip.is_some() => {
            grip::longpoll(req.headers(), &state, &channel)
        }
        Route::Poll(channel, kind) => poll(req.headers(), &state, &cursor, &channel, kind).await,
        Route::WebSocket(channel) => websocket(req, &state, &channel),
        Route::Stats => stats(&state),
        Route::NotFound => empty(StatusCode::NOT_FOUND),
    };
    Ok(whole.map(Either::Left))
}

/// A response with no body; hyper adds `Date` and, where allowed, `Content-Length: 0`.
pub(super) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

async fn publish(req: Request<Incoming>, state: &HubState, channel: &str) -> Response<Full<Bytes>> {
    let Ok(body) = req.into_body().collect().await else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let stored = state
        .channels
        .get(channel)
        .publish(body.to_bytes(), state.config.history);
    bump(&state.counters.published);
    if let Some(config) = &state.config.grip
        && let Err(e) = grip::forward(config, channel, &stored).await
    {
        // Stored but not forwarded: Pushpin's clients recover it from the origin once the next
        // message's `prev-id` shows Pushpin the gap.
        let mut response = Response::new(Full::new(Bytes::from(format!("{e:#}\n"))));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        return response;
    }
    empty(StatusCode::ACCEPTED)
}

fn stats(state: &HubState) -> Response<Full<Bytes>> {
    let Ok(json) = serde_json::to_vec(&state.counters.snapshot()) else {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut response = Response::new(Full::new(Bytes::from(json)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
