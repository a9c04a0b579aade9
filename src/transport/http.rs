//! Interval polling and long polling over one keep-alive HTTP/1.1 connection, nchan style:
//! the client echoes `Etag`/`Last-Modified` as `If-None-Match`/`If-Modified-Since`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{
    ETAG, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{ClientSpec, Received, Transport};
use crate::plan::TransportPlan;
use crate::profile::HeaderProfile;
use crate::wire::{ConnCounter, CountingStream, WireCounts};

/// Path prefixes of the hub's (and nchan's conventional) subscriber locations.
const POLL_PREFIX: &str = "/sub/poll";
const LONGPOLL_PREFIX: &str = "/sub/longpoll";

/// Most polls a subscribing interval poller makes to catch up with a server's backlog
/// (the hub keeps 1,024 messages per channel by default).
const CATCH_UP_POLLS: usize = 1025;

/// One HTTP/1.1 connection that asks a subscriber location for the next message.
struct HttpSubscriber {
    sender: SendRequest<Empty<Bytes>>,
    counter: Arc<ConnCounter>,
    connection: JoinHandle<()>,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    validators: Option<Validators>,
}

/// The server's position markers, echoed back so it answers with what is newer.
struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Drop for HttpSubscriber {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl HttpSubscriber {
    async fn connect(
        spec: &ClientSpec,
        prefix: &str,
        profile: &HeaderProfile,
    ) -> anyhow::Result<Self> {
        let stream = CountingStream::connect(spec.endpoint.addr).await?;
        let counter = stream.counter();
        let (sender, conn) = http1::Builder::new()
            .title_case_headers(true)
            .handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        let connection = tokio::spawn(async move {
            // The connection's end shows up as an error on the next request.
            let _ = conn.await;
        });
        let headers = request_headers(profile, &spec.endpoint.authority)?;
        Ok(HttpSubscriber {
            sender,
            counter,
            connection,
            path: profile.poll_path(prefix, &spec.channel),
            headers,
            validators: profile.sends_validators().then_some(Validators {
                etag: None,
                last_modified: None,
            }),
        })
    }

    /// One request and its whole response; returns the body of a 200.
    async fn exchange(&mut self) -> anyhow::Result<Option<Bytes>> {
        let mut request = Request::get(self.path.as_str()).body(Empty::<Bytes>::new())?;
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        if let Some(v) = &self.validators {
            if let Some(etag) = &v.etag {
                headers.append(IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = &v.last_modified {
                headers.append(IF_MODIFIED_SINCE, modified.clone());
            }
        }
        self.sender.ready().await.context("connection closed")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .context("poll request")?;
        if let Some(v) = &mut self.validators {
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
            .context("reading response body")?;
        match status {
            StatusCode::OK => Ok(Some(body.to_bytes())),
            StatusCode::NOT_MODIFIED => Ok(None),
            other => bail!("subscriber location answered {other}"),
        }
    }
}

/// The profile's request headers for a target at `authority`, ready to send.
pub(super) fn request_headers(
    profile: &HeaderProfile,
    authority: &str,
) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    profile
        .request_headers(authority)
        .into_iter()
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
        let TransportPlan::HttpPoll { interval, headers } = spec.plan.as_ref() else {
            bail!("http-poll client given a {} plan", spec.plan.kind());
        };
        let mut subscriber = HttpSubscriber::connect(spec, POLL_PREFIX, headers).await?;
        // The first polls establish the client's position, "now": they are part of
        // subscribing. The hub answers a poll without validators 304 at once; a server that
        // answers it with its oldest buffered message instead (nginx + nchan's default) is
        // followed until it has nothing newer, so that messages published before the client
        // subscribed are never counted as delivered.
        for _ in 0..CATCH_UP_POLLS {
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
        delivered.extend(self.subscriber.exchange().await?.map(Received::now));
        Ok(())
    }

    fn wire(&self) -> WireCounts {
        self.subscriber.counter.snapshot()
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
        let TransportPlan::HttpLongpoll { headers, .. } = spec.plan.as_ref() else {
            bail!("http-longpoll client given a {} plan", spec.plan.kind());
        };
        let subscriber = HttpSubscriber::connect(spec, LONGPOLL_PREFIX, headers).await?;
        Ok(HttpLongpoll { subscriber })
    }

    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        delivered.extend(self.subscriber.exchange().await?.map(Received::now));
        Ok(())
    }

    fn wire(&self) -> WireCounts {
        self.subscriber.counter.snapshot()
    }
}
