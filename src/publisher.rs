//! Injects the message stream into the target at the scenario's rate: one task and one
//! keep-alive connection per channel and endpoint, each payload stamped with its sequence
//! number and *intended* publish time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::payload::{Stamp, unix_us};
use crate::transport::Endpoint;

/// What to publish.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub channels: u32,
    pub rate_per_s: f64,
    pub payload_bytes: usize,
    /// Messages per channel: sequence numbers `0..messages`.
    pub messages: u64,
    /// The sequence number whose send time opens the measured window.
    pub window_opens_after: u64,
}

/// What the publisher did.
#[derive(Debug, Default, Clone)]
pub struct PublishOutcome {
    pub published: u64,
    pub errors: u64,
    /// Messages sent more than one interval after their intended time.
    pub late: u64,
    /// Sum over channels of messages per second actually achieved.
    pub achieved_rate_per_s: f64,
    /// Time from sending `window_opens_after` to sending the last message (first channel).
    pub window: Option<Duration>,
}

/// Live count for progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub published: AtomicU64,
}

/// Publishes the schedule to every endpoint (each endpoint is a separate server holding its
/// own subscribers) and returns when done or stopped.
pub async fn publish(
    endpoints: &[Arc<Endpoint>],
    schedule: &Schedule,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> PublishOutcome {
    let lead = Duration::from_millis(50);
    let start = (Instant::now() + lead, SystemTime::now() + lead);
    let mut tasks = JoinSet::new();
    for (e, endpoint) in endpoints.iter().enumerate() {
        for channel in 0..schedule.channels {
            let (endpoint, schedule) = (Arc::clone(endpoint), schedule.clone());
            let (progress, stop) = (Arc::clone(&progress), stop.clone());
            let first = e == 0 && channel == 0;
            tasks.spawn(async move {
                let mut outcome =
                    publish_channel(&endpoint, channel, &schedule, start, &progress, &stop).await;
                if !first {
                    outcome.window = None;
                }
                outcome
            });
        }
    }
    let mut total = PublishOutcome::default();
    while let Some(joined) = tasks.join_next().await {
        let Ok(o) = joined else { continue };
        total.published += o.published;
        total.errors += o.errors;
        total.late += o.late;
        total.achieved_rate_per_s += o.achieved_rate_per_s;
        total.window = total.window.or(o.window);
    }
    total
}

async fn publish_channel(
    endpoint: &Endpoint,
    channel: u32,
    schedule: &Schedule,
    (start, start_wall): (Instant, SystemTime),
    progress: &Progress,
    stop: &CancellationToken,
) -> PublishOutcome {
    let interval = Duration::from_secs_f64(1.0 / schedule.rate_per_s);
    let path = format!("/pub/{channel}");
    let mut outcome = PublishOutcome::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    let (mut first_sent, mut last_sent, mut window_open) = (None, None, None);
    for seq in 0..schedule.messages {
        let offset = interval.mul_f64(seq as f64);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(start + offset) => {}
        }
        let sent = Instant::now();
        if sent.duration_since(start + offset) > interval {
            outcome.late += 1;
        }
        let stamp = Stamp {
            seq,
            intended_us: unix_us(start_wall + offset),
        };
        let body = Bytes::from(stamp.encode(schedule.payload_bytes));
        match post(&mut conn, endpoint, &path, body).await {
            Ok(()) => {
                outcome.published += 1;
                progress.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                outcome.errors += 1;
                conn = None;
            }
        }
        first_sent.get_or_insert(sent);
        last_sent = Some(sent);
        if seq == schedule.window_opens_after {
            window_open = Some(sent);
        }
    }
    if let (Some(first), Some(last)) = (first_sent, last_sent) {
        let span = last.duration_since(first).as_secs_f64();
        if outcome.published > 1 && span > 0.0 {
            outcome.achieved_rate_per_s = (outcome.published - 1) as f64 / span;
        }
        outcome.window = window_open.map(|open| last.duration_since(open));
    }
    outcome
}

/// POSTs one message on the channel's keep-alive connection, opening it when needed.
async fn post(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    endpoint: &Endpoint,
    path: &str,
    body: Bytes,
) -> anyhow::Result<()> {
    if conn.is_none() {
        *conn = Some(open(endpoint).await?);
    }
    let Some(sender) = conn.as_mut() else {
        bail!("no publisher connection")
    };
    sender
        .ready()
        .await
        .context("publisher connection closed")?;
    // The payload is binary; saying so lets a server that picks the WebSocket frame type from
    // the message's type (nginx + nchan: text unless `application/octet-stream`) send binary
    // frames, since a text frame must be UTF-8 and clients reject one that is not.
    let request = Request::post(path)
        .header(hyper::header::HOST, endpoint.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await.context("publishing")?;
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .context("reading publish answer")?;
    if !status.is_success() {
        bail!("publisher location answered {status}");
    }
    Ok(())
}

async fn open(endpoint: &Endpoint) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(endpoint.addr)
        .await
        .with_context(|| format!("publisher connecting to {}", endpoint.addr))?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
