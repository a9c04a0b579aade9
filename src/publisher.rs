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
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::adapter::{Adapter, HttpPublish, Publish, Vars, WebSocketPublish};
use crate::payload::{Stamp, unix_us};
use crate::plan::MqttPlan;
use crate::targets::Endpoint;
use crate::transport::mqtt::{self, Connection};
use crate::transport::websocket;

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
    /// MQTT options when the target is a broker; the adapter's publish otherwise.
    pub mqtt: Option<MqttPlan>,
    /// Publish the stamp's text form (`Stamp::encode_text`), for transports whose framing
    /// carries only UTF-8 (SSE's `data:` lines): the server passes it through as it is.
    pub text: bool,
    /// How messages get into a target that is not an MQTT broker.
    pub adapter: Arc<Adapter>,
}

/// What the publisher did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct PublishOutcome {
    pub published: u64,
    pub errors: u64,
    /// Messages sent more than one interval after their intended time.
    pub late: u64,
    /// Sum over channels of messages per second actually achieved.
    pub achieved_rate_per_s: f64,
    /// Time from sending `window_opens_after` to sending the last message (first channel).
    pub window: Option<Duration>,
    /// The highest sequence number any channel tried to publish (sent or failed).
    pub highest_attempted: Option<u64>,
    /// When, after the start of publishing, the first publish failed, and why.
    pub first_error_at: Option<Duration>,
    pub first_error: Option<String>,
    /// When, after the start of publishing, the target last accepted a message.
    pub last_ok_at: Option<Duration>,
    /// Every channel's last attempt failed: the target had stopped answering.
    pub ended_failing: bool,
    /// Times the broker closed an MQTT publisher connection while publishing (a PUBLISH is
    /// only queued by the client, so this is how a refused one shows), and the first error.
    pub connections_broken: u64,
    pub connection_error: Option<String>,
    /// Of `errors`, those while a scheduled `restart` had the target down: the fault's
    /// doing, not the target's.
    #[serde(default)]
    pub scheduled_errors: u64,
    /// Of `connections_broken`, those a scheduled `restart` broke (each restart breaks each
    /// publisher connection once).
    #[serde(default)]
    pub scheduled_broken: u64,
}

/// Broken MQTT publisher connections, counted by the tasks that poll them.
#[derive(Debug, Default)]
struct Broken {
    count: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Broken {
    fn note(&self, error: &anyhow::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| format!("{error:#}"));
    }
}

impl PublishOutcome {
    /// Adds another channel's outcome.
    fn merge(&mut self, o: PublishOutcome) {
        self.ended_failing = (self.ended_failing || self.published + self.errors == 0)
            && (o.ended_failing || o.published + o.errors == 0);
        self.published += o.published;
        self.errors += o.errors;
        self.late += o.late;
        self.achieved_rate_per_s += o.achieved_rate_per_s;
        self.window = self.window.or(o.window);
        self.highest_attempted = self.highest_attempted.max(o.highest_attempted);
        if o.first_error_at.is_some()
            && earliest(self.first_error_at, o.first_error_at) != self.first_error_at
        {
            self.first_error_at = o.first_error_at;
            self.first_error = o.first_error;
        }
        self.last_ok_at = self.last_ok_at.max(o.last_ok_at);
    }
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The publisher's live counts and timetable: for progress display, and for the faults to
/// tell which messages were due while they lasted.
#[derive(Debug, Default)]
pub struct Progress {
    pub published: AtomicU64,
    /// Publishes that failed so far (what a scheduled fault made fail is counted from it).
    pub failed: AtomicU64,
    /// When message 0 is due, and the time between two messages: set as publishing starts.
    timetable: std::sync::OnceLock<(Instant, Duration)>,
}

impl Progress {
    /// The first sequence number due at or after `at`; `None` before publishing started.
    pub fn first_due_from(&self, at: Instant) -> Option<u64> {
        let (start, interval) = self.timetable.get()?;
        let since = at.saturating_duration_since(*start).as_secs_f64();
        Some((since / interval.as_secs_f64()).ceil() as u64)
    }
}

/// Publishes the schedule to every endpoint (each endpoint is a separate server holding its
/// own subscribers) and returns when done or stopped.
pub async fn publish(
    endpoints: &[Arc<Endpoint>],
    schedule: &Schedule,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> PublishOutcome {
    let mut total = PublishOutcome::default();
    let broken = Arc::new(Broken::default());
    // Connections first: a slow connect must not eat into the schedule and burst it.
    let mut sinks = Vec::new();
    for endpoint in endpoints {
        for channel in 0..schedule.channels {
            match Sink::open(endpoint, channel, schedule, &broken, &stop).await {
                Ok(sink) => sinks.push(sink),
                Err(e) => {
                    total.errors += 1;
                    total.first_error_at = Some(Duration::ZERO);
                    total.first_error.get_or_insert_with(|| format!("{e:#}"));
                    total.ended_failing = true;
                }
            }
        }
    }
    let lead = Duration::from_millis(50);
    let start = (
        Instant::now() + lead,
        crate::clock::skewed(SystemTime::now()) + lead,
    );
    let interval = Duration::from_secs_f64(1.0 / schedule.rate_per_s);
    let _ = progress.timetable.set((start.0, interval));
    let mut tasks = JoinSet::new();
    for (i, sink) in sinks.into_iter().enumerate() {
        let schedule = schedule.clone();
        let (progress, stop) = (Arc::clone(&progress), stop.clone());
        tasks.spawn(async move {
            let mut outcome = publish_channel(sink, &schedule, start, &progress, &stop).await;
            if i > 0 {
                outcome.window = None;
            }
            outcome
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok(o) = joined {
            total.merge(o);
        }
    }
    total.connections_broken = broken.count.load(Ordering::Relaxed);
    total.connection_error = broken
        .first
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    total
}

async fn publish_channel(
    mut sink: Sink,
    schedule: &Schedule,
    (start, start_wall): (Instant, SystemTime),
    progress: &Progress,
    stop: &CancellationToken,
) -> PublishOutcome {
    let interval = Duration::from_secs_f64(1.0 / schedule.rate_per_s);
    let mut outcome = PublishOutcome::default();
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
        let body = if schedule.text {
            Bytes::from(stamp.encode_text(schedule.payload_bytes))
        } else {
            Bytes::from(stamp.encode(schedule.payload_bytes))
        };
        outcome.highest_attempted = Some(seq);
        let result = sink.send(body).await;
        let at = Some(Instant::now().duration_since(start));
        outcome.ended_failing = result.is_err();
        match result {
            Ok(()) => {
                outcome.published += 1;
                outcome.last_ok_at = at;
                progress.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                outcome.errors += 1;
                progress.failed.fetch_add(1, Ordering::Relaxed);
                if outcome.first_error_at.is_none() {
                    outcome.first_error_at = at;
                    outcome.first_error = Some(format!("{e:#}"));
                }
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

/// Where one channel's messages go.
enum Sink {
    /// The adapter's HTTP request on a keep-alive connection (the hub: POST `/pub/{channel}`).
    Http {
        conn: Option<SendRequest<Full<Bytes>>>,
        request: HttpPublish,
        /// Where the requests go: the endpoint, or the publish URL's own server.
        to: Endpoint,
        path: String,
        channel: String,
        content_type: &'static str,
    },
    /// One frame per message on a publisher WebSocket connection (NATS: `PUB`).
    WebSocket {
        sender: websocket::Publisher,
        publish: WebSocketPublish,
        channel: String,
    },
    /// PUBLISH to the broker; a task polls the connection until the run stops, so that the
    /// acknowledgement flows of the last messages complete.
    Mqtt {
        client: mqtt::Client,
        topic: String,
        qos: u8,
        retain: bool,
    },
}

impl Sink {
    async fn open(
        endpoint: &Endpoint,
        channel: u32,
        schedule: &Schedule,
        broken: &Arc<Broken>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Sink> {
        let Some(plan) = schedule.mqtt.as_ref() else {
            return Sink::open_adapted(endpoint, channel, schedule, stop).await;
        };
        let id = format!("pb-pub-{:08x}-{channel}", rand::random::<u32>());
        let Connection {
            client,
            mut eventloop,
            claim,
        } = Connection::open(mqtt::options(&id, endpoint, plan, None)?, endpoint.addr).await?;
        let (stop, broken, broker) = (stop.clone(), Arc::clone(broken), endpoint.addr);
        tokio::spawn(async move {
            // Held while the socket is: a closed one's fd number may soon be a client's.
            let mut claim = Some(claim);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    polled = eventloop.poll() => match polled {
                        Err(e) => {
                            broken.note(&e);
                            claim = None;
                            // rumqttc reconnects on the next poll; do not spin meanwhile.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(mqtt::Step::ConnAck(_)) if claim.is_none() => {
                            claim = mqtt::Claim::search(broker).ok();
                        }
                        Ok(_) => {}
                    }
                }
            }
        });
        Ok(Sink::Mqtt {
            client,
            topic: plan.topic_of(&channel.to_string()),
            qos: plan.qos,
            retain: plan.retain,
        })
    }

    /// The adapter's way in: an HTTP request or a WebSocket frame per message.
    async fn open_adapted(
        endpoint: &Endpoint,
        channel: u32,
        schedule: &Schedule,
        stop: &CancellationToken,
    ) -> anyhow::Result<Sink> {
        let channel = channel.to_string();
        let vars = Vars {
            channel: &channel,
            client: 0,
            payload: &[],
        };
        match &schedule.adapter.publish {
            Publish::Http(request) => {
                let (to, path) = destination(endpoint, &request.url.render_text(&vars))?;
                Ok(Sink::Http {
                    conn: None,
                    request: request.clone(),
                    to,
                    path,
                    channel,
                    // Saying binary is binary lets a server that picks the WebSocket frame
                    // type from the message's type (nginx + nchan: text unless
                    // `application/octet-stream`) send binary frames, since a text frame must
                    // be UTF-8.
                    content_type: if schedule.text {
                        "text/plain; charset=utf-8"
                    } else {
                        "application/octet-stream"
                    },
                })
            }
            Publish::WebSocket(publish) => {
                let (to, path) = destination(endpoint, &publish.url.render_text(&vars))?;
                let sender = websocket::Publisher::open(
                    &to,
                    &path,
                    &publish.frames,
                    &vars,
                    Arc::clone(&schedule.adapter),
                    stop.clone(),
                )
                .await?;
                Ok(Sink::WebSocket {
                    sender,
                    publish: publish.clone(),
                    channel,
                })
            }
        }
    }

    async fn send(&mut self, body: Bytes) -> anyhow::Result<()> {
        match self {
            Sink::Http {
                conn,
                request,
                to,
                path,
                channel,
                content_type,
            } => {
                let payload = request.payload.place(&body);
                let vars = Vars {
                    channel,
                    client: 0,
                    payload: &payload,
                };
                let result = post(conn, to, path, request, &vars, content_type).await;
                if result.is_err() {
                    *conn = None;
                }
                result
            }
            Sink::WebSocket {
                sender,
                publish,
                channel,
            } => {
                let payload = publish.payload.place(&body);
                let vars = Vars {
                    channel,
                    client: 0,
                    payload: &payload,
                };
                sender.send(&publish.message, &vars).await
            }
            Sink::Mqtt {
                client,
                topic,
                qos,
                retain,
            } => client
                .publish(topic, *qos, *retain, body)
                .await
                .context("queueing PUBLISH"),
        }
    }
}

/// A publish URL's server and path: a path goes to the endpoint itself, an absolute
/// `http://host:port/path` (or `ws://`) to that server.
fn destination(endpoint: &Endpoint, url: &str) -> anyhow::Result<(Endpoint, String)> {
    let clear = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"));
    let secure = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("wss://"));
    let (rest, tls) = match (clear, secure) {
        (Some(rest), _) => (rest, None),
        // The same trust as the clients': the scenario's [tls] for this target.
        (None, Some(rest)) => match &endpoint.tls {
            Some(tls) => (rest, Some(tls.clone())),
            None => bail!("publish URL {url} needs TLS: add a [tls] table to the scenario"),
        },
        (None, None) => return Ok((endpoint.clone(), url.to_string())),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("publish URL {url}"))?
        .next()
        .with_context(|| format!("publish URL {url} names no address"))?;
    let path = if path.is_empty() { "/" } else { path };
    Ok((
        Endpoint {
            addr,
            authority: authority.to_string(),
            tls,
        },
        path.to_string(),
    ))
}

/// Sends one publish request on the channel's keep-alive connection, opening it when needed.
async fn post(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    endpoint: &Endpoint,
    path: &str,
    template: &HttpPublish,
    vars: &Vars<'_>,
    content_type: &str,
) -> anyhow::Result<()> {
    // A keep-alive connection the server closed meanwhile (it restarted) sent nothing of
    // this request: one new connection is tried, as any HTTP client's pool does.
    if let Some(sender) = conn.as_mut()
        && sender.ready().await.is_err()
    {
        *conn = None;
    }
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
    let mut request = Request::builder()
        .method(template.method.as_str())
        .uri(path)
        .header(hyper::header::HOST, endpoint.authority.as_str());
    let headers = crate::adapter::render_headers(&template.headers, vars);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        request = request.header(hyper::header::CONTENT_TYPE, content_type);
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let body = template.body.render(vars);
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body)))?)
        .await
        .context("publishing")?;
    let status = response.status();
    // A server that closes after each publish (Pushpin's API answers `Connection: close`)
    // gets a new connection for the next one instead of a failed send.
    if response
        .headers()
        .get(hyper::header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
    {
        *conn = None;
    }
    let answer = response
        .into_body()
        .collect()
        .await
        .context("reading publish answer")?
        .to_bytes();
    if !status.is_success() {
        bail!(
            "publisher location answered {status}: {}",
            crate::adapter::quote(&answer)
        );
    }
    Ok(())
}

async fn open(endpoint: &Endpoint) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    // Over TLS when the target speaks it (an external https:// URL).
    let sessions = crate::tls::Sessions::default();
    let alpn = crate::tls::Alpn::Http1;
    let stream = crate::tls::connect(endpoint.addr, endpoint.tls.as_ref(), &sessions, alpn)
        .await
        .with_context(|| format!("publisher connecting to {}", endpoint.addr))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
