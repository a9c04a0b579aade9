//! Interval polling and long polling over one keep-alive connection, nchan style: the client
//! echoes `Etag`/`Last-Modified` as `If-None-Match`/`If-Modified-Since`. The connection speaks
//! HTTP/1.1 or cleartext HTTP/2 with prior knowledge (one connection per client, as a browser
//! keeps one per origin); the poll loop is the same for both.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::{
    ETAG, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::adapted::{self, Unwrapper};
use super::{ClientSpec, Received, Transport};
use crate::plan::{HttpVersion, TransportPlan};
use crate::profile::{self, HeaderProfile};
use crate::tls::Alpn;
use crate::wire::{ConnCounter, WireCounts};

/// Most polls a subscribing interval poller makes to catch up with a server's backlog
/// (the hub keeps 1,024 messages per channel by default).
const CATCH_UP_POLLS: usize = 1025;

/// How long an HTTP/2 connection may take to exchange its SETTINGS acknowledgements.
const H2_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection that asks a subscriber location for the next message.
struct HttpSubscriber {
    connection: Connection,
    uri: Uri,
    validators: Option<Validators>,
    unwrapper: Unwrapper,
}

/// The request half of a connection, by HTTP version.
pub(super) enum Sender {
    Http1(http1::SendRequest<Empty<Bytes>>),
    Http2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    pub(super) async fn send(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let response = match self {
            Sender::Http1(sender) => {
                sender.ready().await.context("connection closed")?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                sender.ready().await.context("connection closed")?;
                sender.send_request(request).await
            }
        };
        response.context("request")
    }
}

/// One client connection, HTTP/1.1 or HTTP/2, on a counted stream: what polling and event
/// streams share, so that both open (and count) their connections the same way.
pub(super) struct Connection {
    pub(super) sender: Sender,
    pub(super) counter: Arc<ConnCounter>,
    /// hyper's connection driver; aborted when the client drops the connection.
    pub(super) driver: JoinHandle<()>,
    /// The request headers, `Host` taken out to become `:authority` over HTTP/2.
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    /// Over HTTP/2, `http://` + the authority that request targets are made absolute with
    /// (they give `:scheme` and `:authority`); over HTTP/1.1 request targets are paths.
    origin: Option<String>,
}

impl Connection {
    /// Connects and handshakes; an HTTP/2 connection returns once both SETTINGS are
    /// acknowledged, so the preface, both SETTINGS and their ACKs are setup, also for a
    /// client whose first request is held (a long poll, an event stream).
    pub(super) async fn open(
        spec: &ClientSpec,
        profile: &HeaderProfile,
        http: HttpVersion,
    ) -> anyhow::Result<Connection> {
        let alpn = match http {
            HttpVersion::Http11 => Alpn::Http1,
            HttpVersion::Http2 => Alpn::H2,
        };
        let stream = spec.open(alpn).await?;
        let mut headers = profile.request_headers(&spec.endpoint.authority);
        // The connection's end shows up as an error on the next request or read.
        let (sender, counter, driver, origin) = match http {
            HttpVersion::Http11 => {
                let counter = stream.counter();
                let (sender, conn) = http1::Builder::new()
                    .title_case_headers(true)
                    .handshake(TokioIo::new(stream))
                    .await
                    .context("HTTP/1.1 handshake")?;
                let driver = tokio::spawn(async move {
                    let _ = conn.await;
                });
                (Sender::Http1(sender), counter, driver, None)
            }
            HttpVersion::Http2 => {
                let stream = stream.scanning_h2();
                let counter = stream.counter();
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .handshake(TokioIo::new(stream))
                    .await
                    .context("HTTP/2 handshake")?;
                let driver = tokio::spawn(async move {
                    let _ = conn.await;
                });
                if tokio::time::timeout(H2_SETTLE_TIMEOUT, counter.h2_settled())
                    .await
                    .is_err()
                {
                    driver.abort();
                    bail!("HTTP/2 SETTINGS not acknowledged within {H2_SETTLE_TIMEOUT:?}");
                }
                let authority = profile::into_http2(&mut headers)
                    .unwrap_or_else(|| spec.endpoint.authority.clone());
                (
                    Sender::Http2(sender),
                    counter,
                    driver,
                    Some(format!("{}://{authority}", spec.http_scheme())),
                )
            }
        };
        Ok(Connection {
            sender,
            counter,
            driver,
            headers: typed_headers(headers)?,
            origin,
        })
    }

    /// The request target for `path`: the path itself over HTTP/1.1, absolute over HTTP/2.
    pub(super) fn uri(&self, path: &str) -> anyhow::Result<Uri> {
        match &self.origin {
            None => Uri::try_from(path).context("request path"),
            Some(origin) => Uri::try_from(format!("{origin}{path}")).context("request URI"),
        }
    }

    /// Appends the adapter's subscribe headers (auth tokens, cookies) to every request.
    pub(super) fn add_adapter_headers(&mut self, spec: &ClientSpec) -> anyhow::Result<()> {
        let extra = typed_headers(adapted::subscribe_headers(spec))?;
        self.headers.extend(extra);
        Ok(())
    }

    /// Whether the connection speaks HTTP/1.1 (whose heads the client counts itself).
    pub(super) fn is_http1(&self) -> bool {
        matches!(self.sender, Sender::Http1(_))
    }
}

/// The server's position markers, echoed back so it answers with what is newer. They belong
/// to the client, not to one connection (as SSE's `LastEventId`): a poller that connects anew
/// after a break resumes where it was.
#[derive(Debug, Clone, Default)]
pub struct Validators(Arc<std::sync::Mutex<Markers>>);

#[derive(Debug, Default)]
struct Markers {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Validators {
    fn markers(&self) -> std::sync::MutexGuard<'_, Markers> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an earlier connection of the client was given a position.
    fn held(&self) -> bool {
        let m = self.markers();
        m.etag.is_some() || m.last_modified.is_some()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpSubscriber {
    async fn connect(
        spec: &ClientSpec,
        profile: &HeaderProfile,
        http: HttpVersion,
    ) -> anyhow::Result<Self> {
        let mut connection = Connection::open(spec, profile, http).await?;
        connection.add_adapter_headers(spec)?;
        let uri = connection.uri(&profile.poll_path(adapted::subscribe_path(spec)))?;
        Ok(HttpSubscriber {
            connection,
            uri,
            validators: profile.sends_validators().then(|| spec.validators.handle()),
            unwrapper: Unwrapper::new(spec),
        })
    }

    /// One exchange, its messages unwrapped from the body of a 200.
    async fn deliver(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        if let Some(body) = self.exchange().await? {
            self.unwrapper.unwrap(body, delivered);
        }
        Ok(())
    }

    /// One request and its whole response; returns the body of a 200.
    async fn exchange(&mut self) -> anyhow::Result<Option<Bytes>> {
        let mut request = Request::get(self.uri.clone()).body(Empty::<Bytes>::new())?;
        let headers = request.headers_mut();
        for (name, value) in &self.connection.headers {
            headers.append(name.clone(), value.clone());
        }
        if let Some(v) = &self.validators {
            let v = v.markers();
            if let Some(etag) = &v.etag {
                headers.append(IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = &v.last_modified {
                headers.append(IF_MODIFIED_SINCE, modified.clone());
            }
        }
        let counter = &self.connection.counter;
        let before = counter.stream_bytes();
        let response = self.connection.sender.send(request).await.context("poll")?;
        if let Some(v) = &self.validators {
            let mut v = v.markers();
            v.etag = response.headers().get(ETAG).cloned().or(v.etag.take());
            v.last_modified = response
                .headers()
                .get(LAST_MODIFIED)
                .cloned()
                .or(v.last_modified.take());
        }
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading response body")?
            .to_bytes();
        if self.connection.is_http1() {
            // A GET has no body, so all it sent is its head; the response's head is what came
            // before its body. (HTTP/2 header frames are counted by the stream itself.)
            let counter = &self.connection.counter;
            let after = counter.stream_bytes();
            counter.count_headers(
                after.0 - before.0,
                (after.1 - before.1).saturating_sub(body.len() as u64),
            );
        }
        match status {
            StatusCode::OK => Ok(Some(body)),
            StatusCode::NOT_MODIFIED => Ok(None),
            other => bail!(
                "subscriber location answered {other}: {}",
                crate::adapter::quote(&body)
            ),
        }
    }
}

/// Header names and values as hyper takes them; an invalid one is an error, not a panic.
fn typed_headers(list: Vec<(String, String)>) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    list.into_iter()
        .map(|(name, value)| {
            Ok((
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(&value)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .context("building request headers")
}

/// Interval polling at a fixed rate, with a random phase per client.
pub struct HttpPoll {
    subscriber: HttpSubscriber,
    schedule: Interval,
}

impl Transport for HttpPoll {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::HttpPoll {
            interval,
            headers,
            http,
        } = spec.plan.as_ref()
        else {
            bail!("http-poll client given a {} plan", spec.plan.kind());
        };
        let resuming = spec.validators.made().is_some_and(Validators::held);
        let mut subscriber = HttpSubscriber::connect(spec, headers, *http).await?;
        // A client that resumes a position (it reconnected) polls from it: what it missed is
        // delivered by its next polls, not skipped here.
        // The first polls establish the client's position, "now": they are part of
        // subscribing. The hub answers a poll without validators 304 at once; a server that
        // answers it with its oldest buffered message instead (nginx + nchan's default) is
        // followed until it has nothing newer, so that messages published before the client
        // subscribed are never counted as delivered.
        let catch_up = if resuming { 0 } else { CATCH_UP_POLLS };
        for _ in 0..catch_up {
            if subscriber.exchange().await?.is_none() {
                break;
            }
        }
        Ok(HttpPoll {
            subscriber,
            schedule: fixed_rate(*interval),
        })
    }

    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        self.schedule.tick().await;
        self.subscriber.deliver(delivered).await
    }

    fn wire(&self) -> WireCounts {
        self.subscriber.connection.counter.snapshot()
    }

    fn unrecognised(&self) -> Option<String> {
        self.subscriber.unwrapper.unrecognised()
    }
}

/// Ticks every `interval` from a random phase; a tick missed by a slow exchange is skipped
/// rather than bursted, so a late client does not hammer the server.
fn fixed_rate(interval: Duration) -> Interval {
    let phase = interval.mul_f64(rand::random_range(0.0..1.0));
    let mut schedule = tokio::time::interval_at(Instant::now() + phase, interval);
    schedule.set_missed_tick_behavior(MissedTickBehavior::Skip);
    schedule
}

/// Long polling: a new request as soon as the previous answer arrives.
pub struct HttpLongpoll {
    subscriber: HttpSubscriber,
}

impl Transport for HttpLongpoll {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::HttpLongpoll { headers, http, .. } = spec.plan.as_ref() else {
            bail!("http-longpoll client given a {} plan", spec.plan.kind());
        };
        let subscriber = HttpSubscriber::connect(spec, headers, *http).await?;
        Ok(HttpLongpoll { subscriber })
    }

    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        self.subscriber.deliver(delivered).await
    }

    fn wire(&self) -> WireCounts {
        self.subscriber.connection.counter.snapshot()
    }

    fn unrecognised(&self) -> Option<String> {
        self.subscriber.unwrapper.unrecognised()
    }
}
