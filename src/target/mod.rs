//! Targets: the server under test. The embedded hub runs as a child process of pushbench's
//! own binary (so that its CPU and memory are measured apart from the clients'), or inside
//! the calling process (for tests, where there is no pushbench binary to re-execute).

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

use crate::plan::{TargetPlan, TransportPlan};
use crate::profile::HeaderProfile;
use crate::sys;
use crate::transport::Endpoint;
use hub::{Hub, HubConfig, HubStats};

/// The line `pushbench serve` prints once it listens; the address follows it.
pub const READY_PREFIX: &str = "pushbench hub listening on http://";

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
                let mut endpoints = Vec::new();
                for url in urls {
                    endpoints.push(Arc::new(resolve(url).await?));
                }
                Ok(RunningTarget {
                    endpoints,
                    label: urls.join(" "),
                    server: Server::External,
                })
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
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--headers",
            config.profile.name(),
        ])
        .arg("--longpoll-timeout")
        .arg(humantime::format_duration(config.longpoll_timeout).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the embedded hub ({} serve)", exe.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("hub stdout not captured"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(READY_TIMEOUT, lines.next_line())
        .await
        .context("the embedded hub did not start listening within 10 s")??
        .ok_or_else(|| anyhow!("the embedded hub exited before listening"))?;
    let addr = line
        .strip_prefix(READY_PREFIX)
        .ok_or_else(|| anyhow!("unexpected first line from the embedded hub: {line:?}"))?
        .parse()
        .with_context(|| format!("parsing the hub's address from {line:?}"))?;
    Ok((addr, child))
}

/// Resolves `http://host:port[/path]` to a socket address.
async fn resolve(url: &str) -> anyhow::Result<Endpoint> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("target URL {url:?} does not start with http://"))?;
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
