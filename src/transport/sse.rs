//! Server-Sent Events (WHATWG HTML §9.2): one GET answered by an endless `text/event-stream`
//! response, one event per message, its `data` the payload's text form. The connection is
//! HTTP/1.1 (a chunked response) or cleartext HTTP/2 (a stream of DATA frames), opened as
//! polling opens its own.
//! A broken stream is resumed with `Last-Event-ID`, so the id outlives the connection.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use sse_stream::{Sse as Event, SseStream};

use super::adapted::{self, Unwrapper};
use super::http::Connection;
use super::{ClientSpec, Received, Transport};
use crate::plan::TransportPlan;
use crate::wire::WireCounts;

const EVENT_STREAM: &str = "text/event-stream";

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The id of the last event a client saw. It belongs to the client, not to one connection:
/// the client loop connects anew after a break and the next stream must resume after it.
#[derive(Debug, Clone, Default)]
pub struct LastEventId(Arc<Mutex<Option<String>>>);

impl LastEventId {
    fn get(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, id: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
    }
}

/// One subscribed event stream.
pub struct Sse {
    events: SseStream<Incoming>,
    /// Kept (its sender too) so that hyper keeps the connection for the streamed response.
    connection: Connection,
    last_event_id: LastEventId,
    unwrapper: Unwrapper,
}

impl Transport for Sse {
    /// Returns with the response head read: the server subscribed the client before it.
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::Sse { headers, http, .. } = spec.plan.as_ref() else {
            bail!("sse client given a {} plan", spec.plan.kind());
        };
        let mut connection = Connection::open(spec, headers, *http).await?;
        connection.add_adapter_headers(spec)?;
        let uri = connection.uri(&adapted::subscribe_path(spec))?;
        let mut request = Request::get(uri).body(Empty::<Bytes>::new())?;
        let fields = request.headers_mut();
        for (name, value) in &connection.headers {
            if name != ACCEPT {
                fields.append(name.clone(), value.clone());
            }
        }
        fields.insert(ACCEPT, HeaderValue::from_static(EVENT_STREAM));
        if let Some(id) = spec.last_event_id.made().and_then(LastEventId::get) {
            let id = HeaderValue::from_str(&id).context("Last-Event-ID from the server")?;
            fields.insert(LAST_EVENT_ID, id);
        }
        let response = connection
            .sender
            .send(request)
            .await
            .context("event-stream request")?;
        if response.status() != StatusCode::OK {
            bail!("event-stream location answered {}", response.status());
        }
        let content_type = response.headers().get(CONTENT_TYPE);
        if !content_type.is_some_and(|t| t.as_bytes().starts_with(EVENT_STREAM.as_bytes())) {
            bail!("event-stream location answered Content-Type {content_type:?}");
        }
        Ok(Sse {
            events: SseStream::new(response.into_body()),
            connection,
            last_event_id: spec.last_event_id.handle(),
            unwrapper: Unwrapper::new(spec),
        })
    }

    /// One event, waited for, then every event already decoded: as for WebSocket, an
    /// exchange ends with the bytes read so far delivered. Comment keep-alives are skipped by
    /// the parser, so their bytes are carried by the next event's exchange.
    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        while delivered.is_empty() {
            let event = self.events.next().await;
            self.take(event, delivered)?;
        }
        while let Some(event) = self.events.next().now_or_never() {
            self.take(event, delivered)?;
        }
        Ok(())
    }

    fn wire(&self) -> WireCounts {
        self.connection.counter.snapshot()
    }

    fn unrecognised(&self) -> Option<String> {
        self.unwrapper.unrecognised()
    }
}

impl Sse {
    /// Keeps an event's id and the payloads in its data; a block without data (only an id or
    /// a retry) delivers nothing.
    fn take(
        &mut self,
        event: Option<Result<Event, sse_stream::Error>>,
        delivered: &mut Vec<Received>,
    ) -> anyhow::Result<()> {
        let event = event
            .context("event stream ended")?
            .context("reading event stream")?;
        if let Some(id) = event.id {
            self.last_event_id.set(id);
        }
        if let Some(data) = event.data {
            self.unwrapper.unwrap(Bytes::from(data), delivered);
        }
        Ok(())
    }
}
