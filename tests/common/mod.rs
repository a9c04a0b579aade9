//! Helpers shared by the integration tests: plans built in code and a raw publisher.

#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::time::Duration;

use pushbench::plan::{
    MqttClient, MqttOver, MqttPlan, MqttVersion, Plan, TargetPlan, TransportPlan,
};
use pushbench::result::RunResult;
use pushbench::runner::{self, RunOptions};
use pushbench::targets::Launch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A small plan against the embedded hub: `clients` clients, 10 messages/s, 5 warm-up and
/// 10 measured messages.
pub fn small_plan(clients: u32, payload_bytes: usize, transport: TransportPlan) -> Plan {
    Plan {
        name: "test".into(),
        description: String::new(),
        clients,
        channels: 1,
        connect_rate_per_s: 2000.0,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(5),
        message_rate_per_s: 10.0,
        payload_bytes,
        target: TargetPlan::Embedded,
        transports: vec![transport.into()],
        thresholds: Vec::new(),
        project_rate_per_s: None,
        scale: Default::default(),
        network: None,
        adapter: Default::default(),
    }
}

/// Runs the plan's only transport with the hub inside this process.
pub async fn run_in_process(plan: &Plan) -> RunResult {
    let options = RunOptions {
        launch: Launch::InProcess,
        interrupt: CancellationToken::new(),
    };
    runner::run_transport(plan, &plan.transports[0], &options, &())
        .await
        .expect("run completes")
}

/// Publishes `body` on `channel` with a raw HTTP/1.1 POST and waits for the answer.
pub async fn publish(addr: SocketAddr, channel: &str, body: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /pub/{channel} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("publish answered in time")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 2"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// A mosquitto started by `scripts/targets/mosquitto.sh` on free loopback ports, stopped on drop.
pub struct Mosquitto {
    pub tcp_port: u16,
    pub ws_port: u16,
    /// Its MQTT-over-TLS listener's port, when started with one.
    pub tls_port: Option<u16>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_listening(None)
    }

    /// With a TLS listener too (a certificate signed by a CA the script makes).
    pub fn start_with_tls() -> Mosquitto {
        Mosquitto::start_listening(Some(free_port()))
    }

    fn start_listening(tls_port: Option<u16>) -> Mosquitto {
        let broker = Mosquitto {
            tcp_port: free_port(),
            ws_port: free_port(),
            tls_port,
        };
        let mut args = vec![
            "start".to_string(),
            broker.tcp_port.to_string(),
            broker.ws_port.to_string(),
        ];
        args.extend(tls_port.map(|p| p.to_string()));
        let status = std::process::Command::new(script("targets/mosquitto.sh"))
            .args(&args)
            .status()
            .expect("running scripts/targets/mosquitto.sh (is bash there?)");
        assert!(
            status.success(),
            "mosquitto did not start: install it (apt-get install mosquitto)"
        );
        broker
    }

    /// The pidfile `scripts/targets/mosquitto.sh` wrote for this broker.
    pub fn pidfile(&self) -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("pushbench-mosquitto-{}", self.tcp_port))
            .join("mosquitto.pid")
    }

    /// The CA certificate of its TLS listener.
    pub fn ca(&self) -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("pushbench-mosquitto-{}", self.tcp_port))
            .join("tls/ca.pem")
    }

    /// External target URLs of this broker.
    pub fn urls(&self) -> Vec<String> {
        vec![
            format!("mqtt://127.0.0.1:{}", self.tcp_port),
            format!("ws://127.0.0.1:{}", self.ws_port),
        ]
        .into_iter()
        .chain(self.tls_port.map(|p| format!("mqtts://127.0.0.1:{p}")))
        .collect()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script("targets/mosquitto.sh"))
            .args(["stop", &self.tcp_port.to_string()])
            .status();
    }
}

/// A NATS server with its MQTT listener, started by `scripts/targets/nats.sh` on free
/// loopback ports, stopped on drop.
pub struct Nats {
    pub mqtt_port: u16,
    /// Its WebSocket listener (the NATS text protocol).
    pub ws_port: u16,
}

impl Nats {
    pub fn start() -> Nats {
        let (mqtt_port, client_port, ws_port) = (free_port(), free_port(), free_port());
        let status = std::process::Command::new(script("targets/nats.sh"))
            .args([
                "start",
                &mqtt_port.to_string(),
                &client_port.to_string(),
                &ws_port.to_string(),
            ])
            .status()
            .expect("running scripts/targets/nats.sh (is bash there?)");
        assert!(
            status.success(),
            "nats-server did not start: install it (apt-get install nats-server)"
        );
        Nats { mqtt_port, ws_port }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
    }

    /// The pidfile `scripts/targets/nats.sh` wrote for this server.
    pub fn pidfile(&self) -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("pushbench-nats-{}", self.mqtt_port))
            .join("nats.pid")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script("targets/nats.sh"))
            .args(["stop", &self.mqtt_port.to_string()])
            .status();
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// MQTT 3.1.1 subscribers of topic `bench/t` (7 bytes) with a keep-alive far longer than the
/// run, so that no PINGREQ falls into a byte window.
pub fn mqtt(qos: u8, over: MqttOver) -> TransportPlan {
    TransportPlan::Mqtt(MqttPlan {
        qos,
        version: MqttVersion::V311,
        over,
        topic: "bench/t".into(),
        keep_alive: Duration::from_secs(600),
        clean_session: true,
        retain: false,
        inflight: 10,
        client: MqttClient::Rumqttc,
        last_will: None,
    })
}

/// One interval-poll connection (`interval`, `profile`, `http`) to a fresh in-process hub that
/// answers with the same profile.
pub async fn hub_poller(
    profile: pushbench::profile::HeaderProfile,
    http: pushbench::plan::HttpVersion,
    interval: Duration,
) -> (pushbench::targets::hub::Hub, pushbench::transport::HttpPoll) {
    use pushbench::transport::Transport;
    let config = pushbench::targets::hub::HubConfig {
        profile: profile.clone(),
        ..Default::default()
    };
    let hub = pushbench::targets::hub::Hub::start(([127, 0, 0, 1], 0).into(), config)
        .await
        .unwrap();
    let spec = pushbench::transport::ClientSpec {
        endpoint: std::sync::Arc::new(pushbench::targets::Endpoint {
            addr: hub.local_addr(),
            authority: hub.local_addr().to_string(),
            tls: None,
        }),
        channel: "0".into(),
        plan: std::sync::Arc::new(TransportPlan::HttpPoll {
            interval,
            headers: profile,
            http,
        }),
        index: 0,
        client_id: "poller".into(),
        last_event_id: Default::default(),
        validators: Default::default(),
        adapter: Default::default(),
        tls_sessions: Default::default(),
        qos2_session: Default::default(),
    };
    let poller = pushbench::transport::HttpPoll::connect(&spec)
        .await
        .unwrap();
    (hub, poller)
}
