//! MQTT subscribers on rumqttc (MQTT 3.1.1, over TCP or WebSocket).
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
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, NetworkOptions,
    Outgoing, Packet, QoS, SubscribeReasonCode,
};

use super::{ClientSpec, Endpoint, Received, Transport};
use crate::plan::{MqttOver, MqttPlan, TransportPlan};
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

/// The QoS level of a plan's `qos` number.
pub fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// rumqttc options for one client of `plan` connecting to `endpoint`.
pub fn options(client_id: &str, endpoint: &Endpoint, plan: &MqttPlan) -> MqttOptions {
    let mut options = match plan.over {
        MqttOver::Tcp => MqttOptions::new(
            client_id,
            endpoint.addr.ip().to_string(),
            endpoint.addr.port(),
        ),
        MqttOver::Websocket => {
            let url = format!("ws://{}/mqtt", endpoint.authority);
            let mut o = MqttOptions::new(client_id, url, endpoint.addr.port());
            o.set_transport(rumqttc::Transport::Ws);
            o
        }
    };
    options
        .set_keep_alive(plan.keep_alive)
        .set_clean_session(plan.clean_session)
        .set_inflight(plan.inflight)
        .set_max_packet_size(2 << 20, 2 << 20);
    options
}

/// An MQTT connection whose socket is known and claimed.
pub struct Connection {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub claim: Claim,
}

/// This process's claim on an MQTT client socket, released when dropped.
pub struct Claim(RawFd);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(set) = claimed().as_mut() {
            set.remove(&self.0);
        }
    }
}

impl Connection {
    /// Connects (one connect at a time in this process) and finds the socket.
    pub async fn open(options: MqttOptions, broker: SocketAddr) -> anyhow::Result<Connection> {
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        // Without it, Nagle's algorithm holds small packets (an ack, a PUBREL) until the
        // previous segment is acknowledged: tens of ms per flow on loopback.
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
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
    qos: QoS,
    /// QoS 1/2 messages received whose acknowledgement flow has not ended yet.
    in_flow: HashMap<u16, Received>,
    /// The last counts read; what is reported once the socket is gone.
    last: Cell<WireCounts>,
    dead: bool,
}

impl Mqtt {
    /// Connects a client with the given options, subscribes it to `topic`, and finds its socket.
    pub async fn subscribe(
        options: MqttOptions,
        broker: SocketAddr,
        topic: &str,
        level: QoS,
    ) -> anyhow::Result<Mqtt> {
        let conn = Connection::open(options, broker).await?;
        conn.client
            .subscribe(topic, level)
            .await
            .context("queueing SUBSCRIBE")?;
        let mut mqtt = Mqtt {
            counter: conn.counter(),
            conn,
            qos: level,
            in_flow: HashMap::new(),
            last: Cell::new(WireCounts::default()),
            dead: false,
        };
        tokio::time::timeout(SUBSCRIBE_TIMEOUT, mqtt.wait_suback())
            .await
            .context("no SUBACK within 10 s")??;
        Ok(mqtt)
    }

    async fn wait_suback(&mut self) -> anyhow::Result<()> {
        loop {
            if let Event::Incoming(Packet::SubAck(ack)) = self.poll().await? {
                return match ack.return_codes.first() {
                    Some(SubscribeReasonCode::Success(_)) => Ok(()),
                    _ => bail!("the broker refused the subscription"),
                };
            }
        }
    }

    /// The next event; on error the socket is gone, so its counts are frozen first.
    pub async fn poll(&mut self) -> anyhow::Result<Event> {
        match self.conn.eventloop.poll().await {
            Ok(event) => Ok(event),
            Err(e) => {
                self.dead = true;
                Err(e).context("MQTT connection")
            }
        }
    }

    /// Delivers `received` when its flow ends, per the subscription's QoS.
    fn flow_step(&mut self, event: Event) -> Option<Received> {
        match (self.qos, event) {
            (QoS::AtMostOnce, Event::Incoming(Packet::Publish(p))) => {
                Some(Received::now(p.payload))
            }
            (_, Event::Incoming(Packet::Publish(p))) => {
                self.in_flow.insert(p.pkid, Received::now(p.payload));
                None
            }
            (QoS::AtLeastOnce, Event::Outgoing(Outgoing::PubAck(pkid)))
            | (QoS::ExactlyOnce, Event::Outgoing(Outgoing::PubComp(pkid))) => {
                self.in_flow.remove(&pkid)
            }
            _ => None,
        }
    }
}

impl Transport for Mqtt {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::Mqtt(plan) = spec.plan.as_ref() else {
            bail!("mqtt client given a {} plan", spec.plan.kind());
        };
        let mut opts = options(&spec.client_id, &spec.endpoint, plan);
        if let Some(will) = &plan.last_will {
            let topic = will.topic.replace("{client}", &spec.index.to_string());
            opts.set_last_will(LastWill::new(
                topic,
                spec.client_id.clone(),
                qos(plan.qos),
                false,
            ));
        }
        Mqtt::subscribe(
            opts,
            spec.endpoint.addr,
            &plan.topic_of(&spec.channel),
            qos(plan.qos),
        )
        .await
    }

    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        loop {
            let event = self.poll().await?;
            if let Some(received) = self.flow_step(event) {
                delivered.push(received);
                return Ok(());
            }
        }
    }

    fn wire(&self) -> WireCounts {
        if !self.dead {
            self.last.set(self.counter.snapshot());
        }
        self.last.get()
    }
}

async fn wait_connack(eventloop: &mut EventLoop) -> anyhow::Result<()> {
    loop {
        if let Event::Incoming(Packet::ConnAck(ack)) =
            eventloop.poll().await.context("connecting")?
        {
            return match ack.code {
                ConnectReturnCode::Success => Ok(()),
                code => bail!("the broker refused the connection: {code:?}"),
            };
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
