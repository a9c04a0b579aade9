//! The hub as a GRIP origin behind Pushpin (`pushbench serve --grip URL`): long polls that
//! lose nothing between one answer and the next request.
//!
//! A GRIP long poll has a gap: after Pushpin delivers a message and before the client's next
//! request is held again, a publish reaches no held request of that client. The origin closes
//! it with the client's position (its `If-None-Match`, the `Etag` of its last answer): a client
//! that is behind gets the next message at once, one that has seen everything is held with
//! `Grip-Channel: <channel>; prev-id=<its position>`. Every message is forwarded to Pushpin
//! with its `id` and `prev-id`, so a hold whose `prev-id` is older than what Pushpin last
//! published makes Pushpin ask the origin again (its "last ID inconsistency" retry), and the
//! origin then answers with what the client missed.
//!
//! That retry alone leaves a hole: Pushpin forgets the channel's last id on the first
//! conflict, so further holds that were answered just before a publish and reach Pushpin just
//! after it are held without a retry, until the next message's `prev-id` shows the gap; after
//! the last message of a stream that is never. So each hold also subscribes to its position's
//! own channel (`<channel>@<position>`), and every message is published there again a few
//! times after the main publish: only holds still at the message's predecessor listen there,
//! and they get the message they missed.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::HubState;
use super::answers::{profiled, requested_position};
use super::channels::Stored;
use super::routes::empty;
use crate::profile::Answer;

/// Pushpin's channel for hub channel `c`: `bench.c`, as the nginx origin of
/// `scripts/targets/pushpin.sh` and the `pushpin` preset name them.
pub const CHANNEL_PREFIX: &str = "bench.";

/// How long forwarding one message to Pushpin may take before the publish fails.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// When, after a message's main publish, it goes again to its predecessor's position channel:
/// soon for holds delayed by a moment, later for holds that a loaded proxy took seconds over.
const CATCH_UP_DELAYS: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// Where the hub forwards what is published to it: Pushpin's HTTP publish API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GripConfig {
    /// `host:port` of the publish API.
    pub authority: String,
    /// Its path, e.g. `/publish/`.
    pub path: String,
}

impl GripConfig {
    /// Parses `http://host:port/path` (Pushpin's API is cleartext on loopback).
    pub fn parse(url: &str) -> anyhow::Result<GripConfig> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("GRIP publish URL {url:?} must start with http://");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            bail!("GRIP publish URL {url:?} names no host");
        }
        Ok(GripConfig {
            authority: authority.to_string(),
            path: if path.is_empty() { "/" } else { path }.to_string(),
        })
    }
}

/// A long poll through Pushpin: the next message at once when the client is behind,
/// otherwise a hold on the channel from the client's position.
pub(super) fn longpoll(headers: &HeaderMap, state: &HubState, id: &str) -> Response<Full<Bytes>> {
    let channel = state.channels.get(id);
    let newest = channel.newest_id();
    // Only the request says where the client is: every client's requests reach the origin
    // over Pushpin's few shared connections, so the connection's cursor means nothing here.
    let position = match requested_position(headers) {
        Some(position) if position > newest => 0,
        Some(position) => position,
        None => newest,
    };
    let profile = &state.config.profile;
    if let Some(message) = channel.oldest_after(position) {
        super::bump(&state.counters.longpoll_messages);
        let answer = Answer::Message {
            body_len: message.body.len(),
        };
        return profiled(profile, answer, message.id, message.published, message.body);
    }
    let modified = channel.published_at(position).unwrap_or(state.started);
    // What Pushpin answers if nothing is published within the timeout: the hub's own 304.
    let mut response = profiled(
        profile,
        Answer::NotModified,
        position,
        modified,
        Bytes::new(),
    );
    let timeout = state.config.longpoll_timeout.as_secs().max(1);
    let grip = [
        ("Grip-Hold", "response".to_string()),
        (
            "Grip-Channel",
            format!("{CHANNEL_PREFIX}{id}; prev-id={position}"),
        ),
        ("Grip-Channel", position_channel(id, position)),
        ("Grip-Timeout", timeout.to_string()),
    ];
    for (name, value) in grip {
        let Ok(value) = HeaderValue::from_str(&value) else {
            return empty(StatusCode::BAD_REQUEST);
        };
        response.headers_mut().append(name, value);
    }
    response
}

/// The channel that only holds at `position` of hub channel `id` listen on.
fn position_channel(id: &str, position: u64) -> String {
    format!("{CHANNEL_PREFIX}{id}@{position}")
}

/// Pushpin's publish request for `message` of hub channel `id`: one item with the message's
/// id and its predecessor's, in the three formats Pushpin may hold a connection in. The
/// long-poll answer carries the headers the origin's own answer would (`Etag` is the
/// client's new position), so both ways of delivering cost the same bytes.
pub(super) fn publish_body(id: &str, message: &Stored) -> serde_json::Value {
    let etag = message.id.to_string();
    let modified = httpdate::fmt_http_date(message.published);
    let mut response = serde_json::json!({
        "code": 200,
        "headers": {"Last-Modified": modified, "Etag": etag},
    });
    let mut stream = serde_json::Map::new();
    let mut frame = serde_json::Map::new();
    match std::str::from_utf8(&message.body) {
        Ok(text) => {
            response["body"] = text.into();
            stream.insert("content".into(), format!("data: {text}\n\n").into());
            frame.insert("content".into(), text.into());
        }
        // Binary payloads travel base64-encoded; an event stream carries text only.
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&message.body);
            response["body-bin"] = encoded.clone().into();
            frame.insert("content-bin".into(), encoded.into());
        }
    }
    let mut formats = serde_json::Map::new();
    formats.insert("http-response".into(), response);
    if !stream.is_empty() {
        formats.insert("http-stream".into(), stream.into());
    }
    formats.insert("ws-message".into(), frame.into());
    serde_json::json!({"items": [{
        "channel": format!("{CHANNEL_PREFIX}{id}"),
        "id": message.id.to_string(),
        "prev-id": (message.id - 1).to_string(),
        "formats": formats,
    }]})
}

/// The catch-up publish of `message` for the holds still at its predecessor: its long-poll
/// answer only, on the predecessor's position channel, without ids (nothing to order there).
fn catch_up_body(id: &str, message: &Stored) -> serde_json::Value {
    let mut body = publish_body(id, message);
    let item = &mut body["items"][0];
    item["channel"] = position_channel(id, message.id - 1).into();
    if let Some(item) = item.as_object_mut() {
        item.remove("id");
        item.remove("prev-id");
    }
    let response = item["formats"]["http-response"].take();
    item["formats"] = serde_json::json!({ "http-response": response });
    body
}

/// Forwards one published message to Pushpin and waits for its acceptance, so that a
/// publisher learns of a failure from the hub's answer; the catch-up publishes follow in the
/// background.
pub(super) async fn forward(grip: &GripConfig, id: &str, message: &Stored) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&publish_body(id, message))?;
    tokio::time::timeout(FORWARD_TIMEOUT, post(grip, body))
        .await
        .with_context(|| format!("Pushpin did not answer within {FORWARD_TIMEOUT:?}"))??;
    let catch_up = serde_json::to_vec(&catch_up_body(id, message))?;
    let grip = grip.clone();
    tokio::spawn(async move {
        let mut waited = Duration::ZERO;
        for delay in CATCH_UP_DELAYS {
            tokio::time::sleep(delay - waited).await;
            waited = delay;
            // Best effort: a hold it misses still learns of the gap from the next message.
            let _ = tokio::time::timeout(FORWARD_TIMEOUT, post(&grip, catch_up.clone())).await;
        }
    });
    Ok(())
}

/// One POST on a connection of its own: Pushpin's API closes each one after answering.
async fn post(grip: &GripConfig, body: Vec<u8>) -> anyhow::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host(&grip.authority)
        .await
        .with_context(|| format!("resolving {}", grip.authority))?
        .next()
        .with_context(|| format!("{} names no address", grip.authority))?;
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to Pushpin's publish API on {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::post(grip.path.as_str())
        .header(HOST, grip.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await.context("publishing")?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "Pushpin's publish API answered {status}: {}",
            crate::adapter::quote(&answer)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn stored(id: u64, body: &'static [u8]) -> Stored {
        Stored {
            id,
            body: Bytes::from_static(body),
            published: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn a_publish_carries_its_id_and_predecessor_in_every_format() {
        let body = publish_body("3", &stored(7, b"hello"));
        let item = &body["items"][0];
        assert_eq!(item["channel"], "bench.3");
        assert_eq!((&item["id"], &item["prev-id"]), (&"7".into(), &"6".into()));
        let formats = &item["formats"];
        assert_eq!(formats["http-response"]["body"], "hello");
        assert_eq!(formats["http-response"]["headers"]["Etag"], "7");
        assert_eq!(
            formats["http-response"]["headers"]["Last-Modified"],
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(formats["http-stream"]["content"], "data: hello\n\n");
        assert_eq!(formats["ws-message"]["content"], "hello");
    }

    #[test]
    fn a_catch_up_goes_to_the_predecessor_position_as_a_long_poll_answer_only() {
        let body = catch_up_body("3", &stored(7, b"hello"));
        let item = &body["items"][0];
        assert_eq!(item["channel"], "bench.3@6");
        assert!(item.get("id").is_none() && item.get("prev-id").is_none());
        let formats = item["formats"].as_object().unwrap();
        assert_eq!(formats.keys().collect::<Vec<_>>(), ["http-response"]);
        assert_eq!(formats["http-response"]["body"], "hello");
        assert_eq!(formats["http-response"]["headers"]["Etag"], "7");
    }

    #[test]
    fn binary_payloads_are_published_base64_and_not_as_events() {
        let body = publish_body("0", &stored(1, b"\xff\x00"));
        let formats = &body["items"][0]["formats"];
        assert_eq!(formats["http-response"]["body-bin"], "/wA=");
        assert_eq!(formats["ws-message"]["content-bin"], "/wA=");
        assert!(formats.get("http-stream").is_none());
        assert_eq!(body["items"][0]["prev-id"], "0");
    }

    #[test]
    fn the_publish_url_is_split_into_authority_and_path() {
        let grip = GripConfig::parse("http://127.0.0.1:5561/publish/").unwrap();
        assert_eq!(grip.authority, "127.0.0.1:5561");
        assert_eq!(grip.path, "/publish/");
        assert_eq!(GripConfig::parse("http://h:1").unwrap().path, "/");
        assert!(GripConfig::parse("https://h:1/").is_err());
        assert!(GripConfig::parse("http:///x").is_err());
    }
}
