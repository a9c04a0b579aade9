//! The embedded MQTT broker: rumqttd, in the target process, with MQTT 3.1.1 over TCP and
//! over WebSocket and MQTT 5 over TCP, each on a listener of its own. rumqttd's `start()` blocks for good and only logs a failed bind, so
//! readiness is checked from outside: both ports must accept a connection.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// How long the broker may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a started broker listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerAddrs {
    /// MQTT 3.1.1 over TCP.
    pub tcp: SocketAddr,
    /// MQTT 3.1.1 over WebSocket (rumqttd's WebSocket listener speaks 3.1.1 only).
    pub ws: SocketAddr,
    /// MQTT 5 over TCP (rumqttd serves each version on its own listener).
    pub v5: SocketAddr,
}

/// Starts rumqttd on three free ports of address `ip` and returns once all accept
/// connections.
pub fn start(ip: Ipv4Addr) -> anyhow::Result<BrokerAddrs> {
    start_on(BrokerAddrs {
        tcp: free_port(ip)?,
        ws: free_port(ip)?,
        v5: free_port(ip)?,
    })
}

/// Starts rumqttd on exactly `addrs`: a restarted broker takes the ports its clients know.
pub fn start_on(addrs: BrokerAddrs) -> anyhow::Result<BrokerAddrs> {
    let config = config(addrs);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("error: the embedded MQTT broker stopped: {e}");
            }
        })
        .context("starting the broker thread")?;
    wait_listening(addrs.tcp)?;
    wait_listening(addrs.ws)?;
    wait_listening(addrs.v5)?;
    Ok(addrs)
}

/// A port that was free a moment ago (rumqttd cannot report the port it got for port 0).
fn free_port(ip: Ipv4Addr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((ip, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?)
}

fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the embedded MQTT broker did not listen on {addr} within 10 s")
}

fn config(addrs: BrokerAddrs) -> Config {
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.to_string(),
        listen,
        tls: None,
        // rumqttd sleeps this long after each accepted connection: no pacing here, the
        // scenario's connect rate paces.
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 2 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_string(), server("v4", addrs.tcp))])),
        ws: Some(HashMap::from([("ws".to_string(), server("ws", addrs.ws))])),
        v5: Some(HashMap::from([("v5".to_string(), server("v5", addrs.v5))])),
        ..Config::default()
    }
}
