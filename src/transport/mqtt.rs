//! MQTT subscribers on rumqttc (MQTT 3.1.1 or 5, over TCP or WebSocket).
//!
//! rumqttc opens and owns its socket, so the bytes come from the kernel's `TCP_INFO` alone.
//! The socket is found by the fd it must get: under a process-wide gate (one MQTT connect at a
//! time) the lowest free fd is noted before connecting, and after CONNACK that fd must be a
//! TCP socket whose peer is the broker; otherwise every open fd is searched for the one
//! unclaimed socket connected to the broker.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use rumqttc::v5;
use rumqttc::{NetworkOptions, Outgoing};

use super::{ClientSpec, Received, Transport};
use crate::plan::{MqttOver, MqttPlan, MqttVersion, TransportPlan};
use crate::targets::Endpoint;
use crate::tls::{Alpn, Sessions};
use crate::wire::{ConnCounter, WireCounts};

/// How long a connect and subscribe may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One MQTT connect at a time per process, so that the new socket's fd is known.
static CONNECT_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fds of live MQTT client sockets, so that a search never takes another client's.
static CLAIMED: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

fn claimed() -> std::sync::MutexGuard<'static, Option<HashSet<RawFd>>> {
    CLAIMED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The 3.1.1 QoS of a plan's level (rumqttc's codec type, also the lean client's).
pub(super) fn qos4(level: u8) -> rumqttc::QoS {
    match level {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(level: u8) -> v5::mqttbytes::QoS {
    match level {
        0 => v5::mqttbytes::QoS::AtMostOnce,
        1 => v5::mqttbytes::QoS::AtLeastOnce,
        _ => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// Socket options without Nagle's algorithm, which would hold small packets (an ack, a
/// PUBREL) until the previous segment is acknowledged: tens of ms per flow on loopback.
fn no_delay() -> NetworkOptions {
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

/// rumqttc options of either protocol version.
pub enum Options {
    V4(Box<rumqttc::MqttOptions>),
    V5(Box<v5::MqttOptions>),
}

/// A will: topic and message.
pub struct Will {
    pub topic: String,
    pub message: String,
}

/// rumqttc's transport for `plan` to `endpoint`: TLS by pushbench's own rustls
/// configuration (trusting exactly the endpoint's certificates) when the endpoint has TLS.
fn transport(endpoint: &Endpoint, plan: &MqttPlan) -> anyhow::Result<rumqttc::Transport> {
    let Some(tls) = &endpoint.tls else {
        return Ok(match plan.over {
            MqttOver::Tcp => rumqttc::Transport::Tcp,
            MqttOver::Websocket => rumqttc::Transport::Ws,
        });
    };
    // rumqttc reconnects on the same options: their store resumes its sessions.
    let config = tls.client_config(Alpn::None, &Sessions::default())?;
    let tls = rumqttc::TlsConfiguration::Rustls(config);
    Ok(match plan.over {
        MqttOver::Tcp => rumqttc::Transport::Tls(tls),
        MqttOver::Websocket => rumqttc::Transport::Wss(tls),
    })
}

/// rumqttc options for one client of `plan` connecting to `endpoint`.
pub fn options(
    client_id: &str,
    endpoint: &Endpoint,
    plan: &MqttPlan,
    will: Option<Will>,
) -> anyhow::Result<Options> {
    let scheme = if endpoint.tls.is_some() { "wss" } else { "ws" };
    let (host, port) = match plan.over {
        MqttOver::Tcp => (endpoint.addr.ip().to_string(), endpoint.addr.port()),
        MqttOver::Websocket => (
            format!("{scheme}://{}/mqtt", endpoint.authority),
            endpoint.addr.port(),
        ),
    };
    let transport = transport(endpoint, plan)?;
    Ok(match plan.version {
        MqttVersion::V311 => {
            let mut o = rumqttc::MqttOptions::new(client_id, host, port);
            o.set_transport(transport);
            o.set_keep_alive(plan.keep_alive)
                .set_clean_session(plan.clean_session)
                .set_inflight(plan.inflight)
                .set_max_packet_size(2 << 20, 2 << 20);
            if let Some(w) = will {
                o.set_last_will(rumqttc::LastWill::new(
                    w.topic,
                    w.message,
                    qos4(plan.qos),
                    false,
                ));
            }
            Options::V4(Box::new(o))
        }
        MqttVersion::V5 => {
            let mut o = v5::MqttOptions::new(client_id, host, port);
            o.set_transport(transport);
            o.set_keep_alive(plan.keep_alive)
                .set_clean_start(plan.clean_session)
                .set_outgoing_inflight_upper_limit(plan.inflight)
                .set_max_packet_size(Some(2 << 20))
                .set_network_options(no_delay());
            if let Some(w) = will {
                o.set_last_will(v5::mqttbytes::v5::LastWill::new(
                    w.topic,
                    w.message,
                    qos5(plan.qos),
                    false,
                    None,
                ));
            }
            Options::V5(Box::new(o))
        }
    })
}

/// A rumqttc client handle of either version.
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

impl Client {
    pub async fn subscribe(&self, topic: &str, level: u8) -> anyhow::Result<()> {
        match self {
            Client::V4(c) => c.subscribe(topic, qos4(level)).await?,
            Client::V5(c) => c.subscribe(topic, qos5(level)).await?,
        }
        Ok(())
    }

    /// Queues a PUBLISH (the event loop sends it).
    pub async fn publish(
        &self,
        topic: &str,
        level: u8,
        retain: bool,
        payload: Bytes,
    ) -> anyhow::Result<()> {
        match self {
            Client::V4(c) => c.publish_bytes(topic, qos4(level), retain, payload).await?,
            Client::V5(c) => c.publish_bytes(topic, qos5(level), retain, payload).await?,
        }
        Ok(())
    }
}

/// A rumqttc event loop of either version.
pub enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// What an event loop yielded, as far as pushbench cares.
pub enum Step {
    ConnAck(Result<(), String>),
    /// The QoS the broker granted, or `None` if it refused the subscription.
    SubAck(Option<u8>),
    /// An incoming PUBLISH at the QoS it travels with (at most the granted one).
    Publish {
        pkid: u16,
        qos: u8,
        payload: Bytes,
    },
    Sent(Outgoing),
    Other,
}

/// Plaintext bytes of one event's packet: (sent, received).
type PacketBytes = (u64, u64);

/// The header of a WebSocket frame carrying `payload` bytes (RFC 6455 §5.2): 2 bytes up to
/// 125, 4 up to 65,535, else 10; a client's frames add a 4-byte mask key.
fn ws_frame_header(payload: u64, masked: bool) -> u64 {
    let length = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    length + if masked { 4 } else { 0 }
}

/// What an outgoing packet of a subscriber's steady state weighs: an acknowledgement is a
/// 2-byte fixed header and a 2-byte packet id (MQTT 3.1.1 §3.4–3.7; MQTT 5 leaves out a
/// success reason code and empty properties, §3.4.2.1), PINGREQ a fixed header alone.
/// Others (CONNECT, SUBSCRIBE, PUBLISH) are not known from rumqttc's events: 0.
fn sent_bytes(outgoing: &Outgoing) -> u64 {
    match outgoing {
        Outgoing::PubAck(_) | Outgoing::PubRec(_) | Outgoing::PubRel(_) | Outgoing::PubComp(_) => 4,
        Outgoing::PingReq | Outgoing::Disconnect => 2,
        _ => 0,
    }
}

impl Loop {
    pub async fn poll(&mut self) -> anyhow::Result<Step> {
        Ok(self.poll_sized().await?.0)
    }

    /// The next event and the plaintext bytes of its packet.
    async fn poll_sized(&mut self) -> anyhow::Result<(Step, PacketBytes)> {
        use rumqttc::Event;
        let size = match self {
            Loop::V4(l) => {
                let event = l.poll().await?;
                let size = match &event {
                    Event::Incoming(p) => (0, p.size() as u64),
                    Event::Outgoing(o) => (sent_bytes(o), 0),
                };
                (Self::step4(event), size)
            }
            Loop::V5(l) => {
                let event = l.poll().await?;
                let size = match &event {
                    v5::Event::Incoming(p) => (0, p.size() as u64),
                    v5::Event::Outgoing(o) => (sent_bytes(o), 0),
                };
                (Self::step5(event), size)
            }
        };
        Ok(size)
    }

    fn step4(event: rumqttc::Event) -> Step {
        use rumqttc::{Event, Packet};
        match event {
            Event::Incoming(Packet::ConnAck(a)) => Step::ConnAck(match a.code {
                rumqttc::ConnectReturnCode::Success => Ok(()),
                code => Err(format!("{code:?}")),
            }),
            Event::Incoming(Packet::SubAck(a)) => Step::SubAck(match a.return_codes.first() {
                Some(rumqttc::SubscribeReasonCode::Success(q)) => Some(*q as u8),
                _ => None,
            }),
            Event::Incoming(Packet::Publish(p)) => Step::Publish {
                pkid: p.pkid,
                qos: p.qos as u8,
                payload: p.payload,
            },
            Event::Outgoing(o) => Step::Sent(o),
            Event::Incoming(_) => Step::Other,
        }
    }

    fn step5(event: v5::Event) -> Step {
        use v5::mqttbytes::v5::Packet as Packet5;
        match event {
            v5::Event::Incoming(Packet5::ConnAck(a)) => Step::ConnAck(match a.code {
                v5::mqttbytes::v5::ConnectReturnCode::Success => Ok(()),
                code => Err(format!("{code:?}")),
            }),
            v5::Event::Incoming(Packet5::SubAck(a)) => Step::SubAck(match a.return_codes.first() {
                Some(v5::mqttbytes::v5::SubscribeReasonCode::Success(q)) => Some(*q as u8),
                _ => None,
            }),
            v5::Event::Incoming(Packet5::Publish(p)) => Step::Publish {
                pkid: p.pkid,
                qos: p.qos as u8,
                payload: p.payload,
            },
            v5::Event::Outgoing(o) => Step::Sent(o),
            v5::Event::Incoming(_) => Step::Other,
        }
    }
}

/// An MQTT connection whose socket is known and claimed.
pub struct Connection {
    pub client: Client,
    pub eventloop: Loop,
    pub claim: Claim,
}

/// This process's claim on an MQTT client socket, released when dropped.
pub struct Claim(RawFd);

impl Claim {
    /// Claims the unclaimed socket connected to `broker`: a connection rumqttc opened again
    /// by itself (the publisher's, after the broker went away) has a new one.
    pub fn search(broker: SocketAddr) -> anyhow::Result<Claim> {
        Ok(Claim(claim_socket(None, broker)?))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(set) = claimed().as_mut() {
            set.remove(&self.0);
        }
    }
}

impl Connection {
    /// Connects (one connect at a time in this process) and finds the socket.
    pub async fn open(options: Options, broker: SocketAddr) -> anyhow::Result<Connection> {
        let (client, mut eventloop) = match options {
            Options::V4(o) => {
                let (c, mut l) = rumqttc::AsyncClient::new(*o, 10);
                l.set_network_options(no_delay());
                (Client::V4(c), Loop::V4(Box::new(l)))
            }
            Options::V5(o) => {
                let (c, l) = v5::AsyncClient::new(*o, 10);
                (Client::V5(c), Loop::V5(Box::new(l)))
            }
        };
        let _gate = CONNECT_GATE.lock().await;
        let predicted = lowest_free_fd();
        tokio::time::timeout(SUBSCRIBE_TIMEOUT, wait_connack(&mut eventloop))
            .await
            .context("no CONNACK within 10 s")??;
        let claim = Claim(claim_socket(predicted, broker)?);
        Ok(Connection {
            client,
            eventloop,
            claim,
        })
    }

    /// The kernel's counters of this connection's socket.
    pub fn counter(&self) -> Arc<ConnCounter> {
        ConnCounter::foreign(self.claim.0)
    }
}

/// A subscribed MQTT client.
pub struct Mqtt {
    conn: Connection,
    counter: Arc<ConnCounter>,
    /// The QoS the broker granted; the asked-for one until its SUBACK.
    granted: u8,
    /// QoS 1/2 messages received (with their QoS) whose acknowledgement flow has not ended.
    in_flow: HashMap<u16, (u8, Received)>,
    /// Messages whose flow ended before the SUBACK: a resumed persistent session's broker
    /// sends what it queued right after CONNACK, and they are deliveries like any other.
    early: Vec<Received>,
    /// The last counts read, and `plaintext` when they were read: once the socket is gone
    /// (rumqttc closes it before it reports the error), the packets handled since are added.
    last: Cell<(WireCounts, (u64, u64))>,
    /// Plaintext bytes (sent, received) of the packets this client handled: rumqttc owns the
    /// socket and its TLS, so they are derived from the packets, not counted at a stream.
    plaintext: (u64, u64),
    /// What carries the packets: over WebSocket each is one frame (its header is plaintext).
    over: MqttOver,
    dead: bool,
}

impl Mqtt {
    /// Connects a client with the given options, subscribes it to `topic`, and finds its socket.
    pub async fn subscribe(
        options: Options,
        broker: SocketAddr,
        topic: &str,
        level: u8,
    ) -> anyhow::Result<Mqtt> {
        let conn = Connection::open(options, broker).await?;
        conn.client
            .subscribe(topic, level)
            .await
            .context("queueing SUBSCRIBE")?;
        let mut mqtt = Mqtt {
            counter: conn.counter(),
            conn,
            granted: level,
            in_flow: HashMap::new(),
            early: Vec::new(),
            last: Cell::new((WireCounts::default(), (0, 0))),
            plaintext: (0, 0),
            over: MqttOver::Tcp,
            dead: false,
        };
        tokio::time::timeout(SUBSCRIBE_TIMEOUT, mqtt.wait_suback())
            .await
            .context("no SUBACK within 10 s")??;
        Ok(mqtt)
    }

    async fn wait_suback(&mut self) -> anyhow::Result<()> {
        loop {
            match self.poll().await? {
                Step::SubAck(granted) => {
                    self.granted =
                        granted.ok_or_else(|| anyhow!("the broker refused the subscription"))?;
                    return Ok(());
                }
                step => {
                    if let Some(received) = self.flow_step(step) {
                        self.early.push(received);
                    }
                }
            }
        }
    }

    /// The counts last read plus the packets handled since: on a live socket nothing, on a
    /// dead one the bytes between the last read and its end. Over TCP those are the exact
    /// wire bytes; over TLS their records' 22 B each, and every segment's headers, are not
    /// known once the socket is gone (a gap of the span from the last read to the break).
    fn since_last_read(&self) -> WireCounts {
        let (mut counts, (sent_then, received_then)) = self.last.get();
        let sent = self.plaintext.0 - sent_then;
        let received = self.plaintext.1 - received_then;
        counts.sent += sent;
        counts.kernel_sent += sent;
        counts.received += received;
        counts.kernel_received += received;
        counts
    }

    /// The QoS the broker granted the subscription (MQTT 3.1.1 §3.9.3: it may be lower than
    /// asked).
    pub fn granted(&self) -> u8 {
        self.granted
    }

    /// The next event; on error the socket is gone, so its counts are frozen first.
    pub async fn poll(&mut self) -> anyhow::Result<Step> {
        match self.conn.eventloop.poll_sized().await {
            Ok((event, (sent, received))) => {
                let framed = |bytes: u64, masked: bool| match (self.over, bytes) {
                    (_, 0) | (MqttOver::Tcp, _) => bytes,
                    (MqttOver::Websocket, _) => bytes + ws_frame_header(bytes, masked),
                };
                self.plaintext.0 += framed(sent, true);
                self.plaintext.1 += framed(received, false);
                Ok(event)
            }
            Err(e) => {
                self.dead = true;
                Err(e).context("MQTT connection")
            }
        }
    }

    /// Delivers a message when its flow ends, per the QoS it travels with: at once (0), with
    /// the subscriber's PUBACK (1) or its PUBCOMP (2).
    fn flow_step(&mut self, step: Step) -> Option<Received> {
        match step {
            Step::Publish {
                qos: 0, payload, ..
            } => Some(Received::now(payload)),
            Step::Publish { pkid, qos, payload } => {
                self.in_flow.insert(pkid, (qos, Received::now(payload)));
                None
            }
            Step::Sent(Outgoing::PubAck(pkid)) => self.end_flow(pkid, 1),
            Step::Sent(Outgoing::PubComp(pkid)) => self.end_flow(pkid, 2),
            _ => None,
        }
    }

    fn end_flow(&mut self, pkid: u16, qos: u8) -> Option<Received> {
        match self.in_flow.get(&pkid) {
            Some((level, _)) if *level == qos => self.in_flow.remove(&pkid).map(|(_, r)| r),
            _ => None,
        }
    }
}

impl Transport for Mqtt {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::Mqtt(plan) = spec.plan.as_ref() else {
            bail!("mqtt client given a {} plan", spec.plan.kind());
        };
        let will = plan.last_will.as_ref().map(|w| Will {
            topic: w.topic.replace("{client}", &spec.index.to_string()),
            message: spec.client_id.clone(),
        });
        let opts = options(&spec.client_id, &spec.endpoint, plan, will)?;
        let mut mqtt = Mqtt::subscribe(
            opts,
            spec.endpoint.addr,
            &plan.topic_of(&spec.channel),
            plan.qos,
        )
        .await?;
        mqtt.over = plan.over;
        Ok(mqtt)
    }

    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        if !self.early.is_empty() {
            delivered.append(&mut self.early);
            return Ok(());
        }
        loop {
            let event = self.poll().await?;
            if let Some(received) = self.flow_step(event) {
                delivered.push(received);
                return Ok(());
            }
        }
    }

    fn granted_qos(&self) -> Option<u8> {
        Some(self.granted)
    }

    fn wire(&self) -> WireCounts {
        if !self.dead {
            self.last.set((self.counter.snapshot(), self.plaintext));
        }
        let (sent, received) = self.plaintext;
        WireCounts {
            plaintext_sent: sent,
            plaintext_received: received,
            ..self.since_last_read()
        }
    }
}

async fn wait_connack(eventloop: &mut Loop) -> anyhow::Result<()> {
    loop {
        if let Step::ConnAck(answer) = eventloop.poll().await.context("connecting")? {
            return answer.map_err(|code| anyhow!("the broker refused the connection: {code}"));
        }
    }
}

/// The fd the next socket of this process will get (Linux hands out the lowest free one).
fn lowest_free_fd() -> Option<RawFd> {
    let file = std::fs::File::open("/dev/null").ok()?;
    Some(std::os::fd::AsRawFd::as_raw_fd(&file))
}

/// Finds and claims this client's socket: the predicted fd if it checks out, else a search.
fn claim_socket(predicted: Option<RawFd>, broker: SocketAddr) -> anyhow::Result<RawFd> {
    let mut guard = claimed();
    let set = guard.get_or_insert_with(HashSet::new);
    let fits = |fd: RawFd| !set.contains(&fd) && peer_of(fd) == Some(broker);
    let fd = match predicted.filter(|fd| fits(*fd)) {
        Some(fd) => fd,
        None => open_fds()?
            .into_iter()
            .find(|fd| fits(*fd))
            .ok_or_else(|| anyhow!("cannot find the MQTT client's socket to {broker}"))?,
    };
    set.insert(fd);
    Ok(fd)
}

fn open_fds() -> anyhow::Result<Vec<RawFd>> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .context("listing /proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// The peer address of socket `fd`, if it is a connected IP socket.
fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is a writable sockaddr_storage of `len` bytes.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => None,
    }
}
