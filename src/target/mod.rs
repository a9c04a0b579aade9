//! Targets: the server under test. The embedded hub runs as a child process of pushbench's
//! own binary (so that its CPU and memory are measured apart from the clients'), or inside
//! the calling process (for tests, where there is no pushbench binary to re-execute).

pub mod broker;
pub mod hub;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::plan::{MqttOver, TargetPlan, TransportPlan};
use crate::profile::HeaderProfile;
use crate::sys;
use crate::transport::Endpoint;
use broker::BrokerAddrs;
use hub::{Hub, HubConfig, HubStats};

/// The line `pushbench serve` prints once it listens; the address follows it.
pub const READY_PREFIX: &str = "pushbench hub listening on http://";

/// The line `pushbench serve --broker` prints next: `mqtt://TCP ws://WS`.
pub const BROKER_READY_PREFIX: &str = "pushbench broker listening on ";

/// How long a child hub may take to say it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How an embedded target is started.
#[derive(Debug, Clone)]
pub enum Launch {
    /// Re-execute this binary as `pushbench serve` (the CLI's way).
    ChildProcess { exe: PathBuf },
    /// Run the hub on the caller's runtime (tests, library use).
    InProcess,
}

/// A target ready for one transport run.
pub struct RunningTarget {
    pub endpoints: Vec<Arc<Endpoint>>,
    /// `embedded` or the external URLs, for the result.
    pub label: String,
    server: Server,
}

enum Server {
    External,
    InProcess(Hub),
    Child(Child),
}

/// The hub configuration a transport run needs: its response headers and long-poll timeout.
pub fn hub_config_for(transport: &TransportPlan) -> HubConfig {
    let mut config = HubConfig {
        profile: match transport.response_profile() {
            HeaderProfile::Custom(_) => HeaderProfile::Minimal,
            profile => profile,
        },
        ..HubConfig::default()
    };
    if let TransportPlan::HttpLongpoll { timeout, .. } = transport {
        config.longpoll_timeout = *timeout;
    }
    config
}

impl RunningTarget {
    pub async fn start(
        target: &TargetPlan,
        transport: &TransportPlan,
        launch: &Launch,
    ) -> anyhow::Result<Self> {
        match target {
            TargetPlan::External { urls } => {
                let scheme = scheme_for(transport);
                let mut endpoints = Vec::new();
                for url in urls.iter().filter(|u| u.starts_with(scheme)) {
                    endpoints.push(Arc::new(resolve(url).await?));
                }
                if endpoints.is_empty() {
                    bail!(
                        "the target has no {scheme} URL for {}: add one to target.urls",
                        transport.label()
                    );
                }
                Ok(RunningTarget {
                    endpoints,
                    label: urls.join(" "),
                    server: Server::External,
                })
            }
            TargetPlan::Embedded if matches!(transport, TransportPlan::Mqtt(_)) => {
                Self::start_broker(transport, launch).await
            }
            TargetPlan::Embedded => {
                let config = hub_config_for(transport);
                let (addr, server) = match launch {
                    Launch::InProcess => {
                        let hub = Hub::start(([127, 0, 0, 1], 0).into(), config).await?;
                        (hub.local_addr(), Server::InProcess(hub))
                    }
                    Launch::ChildProcess { exe } => {
                        let (addr, child) = spawn_child(exe, &config).await?;
                        (addr, Server::Child(child))
                    }
                };
                Ok(RunningTarget {
                    endpoints: vec![Arc::new(Endpoint {
                        addr,
                        authority: addr.to_string(),
                    })],
                    label: "embedded".to_string(),
                    server,
                })
            }
        }
    }

    /// The embedded MQTT broker, in this process or in a child `pushbench serve --broker`.
    async fn start_broker(transport: &TransportPlan, launch: &Launch) -> anyhow::Result<Self> {
        let (addrs, server) = match launch {
            Launch::InProcess => {
                let addrs = tokio::task::spawn_blocking(broker::start).await??;
                (addrs, Server::External)
            }
            Launch::ChildProcess { exe } => {
                let mut child = spawn_serve(exe, &HubConfig::default(), true)?;
                let mut lines = ready_lines(&mut child)?;
                read_ready(&mut lines, READY_PREFIX).await?;
                let line = read_ready(&mut lines, BROKER_READY_PREFIX).await?;
                (parse_broker_line(&line)?, Server::Child(child))
            }
        };
        let addr = match transport {
            TransportPlan::Mqtt(m) if m.over == MqttOver::Websocket => addrs.ws,
            _ => addrs.tcp,
        };
        Ok(RunningTarget {
            endpoints: vec![Arc::new(Endpoint {
                addr,
                authority: addr.to_string(),
            })],
            label: "embedded".to_string(),
            server,
        })
    }

    /// CPU seconds and peak RSS of a child hub; `None` for in-process or external targets.
    pub fn cost(&self) -> Option<(f64, u64)> {
        let Server::Child(child) = &self.server else {
            return None;
        };
        let pid = child.id()?;
        Some((sys::cpu_s(pid)?, sys::peak_rss_bytes(&pid.to_string())?))
    }

    /// The embedded hub's own counters.
    pub async fn hub_stats(&self) -> Option<HubStats> {
        match &self.server {
            Server::External => None,
            Server::InProcess(hub) => Some(hub.stats()),
            Server::Child(_) => fetch_stats(&self.endpoints[0]).await.ok(),
        }
    }

    pub async fn stop(self) {
        if let Server::Child(mut child) = self.server {
            let _ = child.kill().await;
        }
    }
}

/// Starts `exe serve` on an ephemeral loopback port and waits for its ready line.
async fn spawn_child(
    exe: &PathBuf,
    config: &HubConfig,
) -> anyhow::Result<(std::net::SocketAddr, Child)> {
    let mut child = spawn_serve(exe, config, false)?;
    let mut lines = ready_lines(&mut child)?;
    let line = read_ready(&mut lines, READY_PREFIX).await?;
    let addr = line
        .parse()
        .with_context(|| format!("parsing the hub's address from {line:?}"))?;
    Ok((addr, child))
}

fn spawn_serve(exe: &PathBuf, config: &HubConfig, with_broker: bool) -> anyhow::Result<Child> {
    let mut command = Command::new(exe);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--headers",
            config.profile.name(),
        ])
        .arg("--longpoll-timeout")
        .arg(humantime::format_duration(config.longpoll_timeout).to_string());
    if with_broker {
        command.arg("--broker");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the embedded target ({} serve)", exe.display()))
}

type ReadyLines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

fn ready_lines(child: &mut Child) -> anyhow::Result<ReadyLines> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("target stdout not captured"))?;
    Ok(BufReader::new(stdout).lines())
}

/// The next line of the child's stdout, which must start with `prefix`; returns the rest.
async fn read_ready(lines: &mut ReadyLines, prefix: &str) -> anyhow::Result<String> {
    let line = tokio::time::timeout(READY_TIMEOUT, lines.next_line())
        .await
        .context("the embedded target did not start listening within 10 s")??
        .ok_or_else(|| anyhow!("the embedded target exited before listening"))?;
    line.strip_prefix(prefix)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("unexpected line from the embedded target: {line:?}"))
}

/// The printed form of a broker's addresses.
pub fn broker_line(addrs: &BrokerAddrs) -> String {
    format!(
        "{BROKER_READY_PREFIX}mqtt://{} ws://{}",
        addrs.tcp, addrs.ws
    )
}

fn parse_broker_line(rest: &str) -> anyhow::Result<BrokerAddrs> {
    let parse = |scheme: &str| -> anyhow::Result<std::net::SocketAddr> {
        rest.split_whitespace()
            .find_map(|word| word.strip_prefix(scheme))
            .ok_or_else(|| anyhow!("no {scheme} address in {rest:?}"))?
            .parse()
            .with_context(|| format!("parsing the broker's {scheme} address from {rest:?}"))
    };
    Ok(BrokerAddrs {
        tcp: parse("mqtt://")?,
        ws: parse("ws://")?,
    })
}

/// The URL scheme of the servers a transport talks to.
fn scheme_for(transport: &TransportPlan) -> &'static str {
    match transport {
        TransportPlan::Mqtt(m) if m.over == MqttOver::Websocket => "ws://",
        TransportPlan::Mqtt(_) => "mqtt://",
        _ => "http://",
    }
}

/// Resolves `SCHEME://host:port[/path]` to a socket address.
async fn resolve(url: &str) -> anyhow::Result<Endpoint> {
    let rest = ["http://", "mqtt://", "ws://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| anyhow!("target URL {url:?} has no http://, mqtt:// or ws:// scheme"))?;
    let authority = rest.split('/').next().unwrap_or(rest).to_string();
    let addr = tokio::net::lookup_host(&authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .ok_or_else(|| anyhow!("{authority} resolves to no address"))?;
    Ok(Endpoint { addr, authority })
}

async fn fetch_stats(endpoint: &Endpoint) -> anyhow::Result<HubStats> {
    let tcp = TcpStream::connect(endpoint.addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::get("/stats")
        .header(hyper::header::HOST, endpoint.authority.as_str())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        bail!("/stats answered {}", response.status());
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}
