//! Targets: the server under test. The embedded hub runs as a child process of pushbench's
//! own binary (so that its CPU and memory are measured apart from the clients'), or inside
//! the calling process (for tests, where there is no pushbench binary to re-execute).

pub mod broker;
pub mod hub;
mod process;
pub mod tls_front;

use std::net::{Ipv4Addr, SocketAddr};
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

use crate::plan::{MqttOver, MqttVersion, TargetPlan, TargetProcesses, TlsPlan, TransportPlan};
use crate::profile::HeaderProfile;
use crate::sys;
use crate::tls::{EMBEDDED_SERVER_NAME, EndpointTls, Identity, Trust};
use broker::BrokerAddrs;
use hub::{Hub, HubConfig, HubStats};

/// The line `pushbench serve` prints once it listens; the address follows it.
pub const READY_PREFIX: &str = "pushbench hub listening on http://";

/// The line `pushbench serve --broker` prints next: `mqtt://TCP ws://WS mqtt5://TCP5`.
pub const BROKER_READY_PREFIX: &str = "pushbench broker listening on ";

/// The line `pushbench serve --tls` prints after its address: its certificate, base64 DER.
pub const CERTIFICATE_PREFIX: &str = "pushbench hub certificate ";

/// How long a hub may take to answer `GET /stats`.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a child hub may take to say it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a client connects: one server (or shard) of the target.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `host:port` as the URL names it, for `Host` headers.
    pub authority: String,
    /// How to speak TLS to it; `None`: cleartext.
    #[serde(default)]
    pub tls: Option<crate::tls::EndpointTls>,
}

/// How an embedded target is started.
#[derive(Debug, Clone)]
pub enum Launch {
    /// Re-execute this binary as `pushbench serve` (the CLI's way).
    ChildProcess { exe: PathBuf },
    /// Run the hub on the caller's runtime (tests, library use).
    InProcess,
}

/// Where an embedded target runs when the run has a link (`[network]`): inside namespace
/// `netns`, listening on every address there; its endpoints name the `backstage` address,
/// which bypasses the link (the fleet's addresses through the link are the runner's).
#[derive(Debug, Clone)]
pub struct Placement {
    pub netns: String,
    pub backstage: Ipv4Addr,
    /// `network.serve`: the command that starts an external target in `netns`.
    pub serve: Option<String>,
}

/// A target ready for one transport run.
pub struct RunningTarget {
    /// One per server (shard): each holds its share of the clients and gets every message.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// `embedded` or the external URLs, for the result.
    pub label: String,
    server: Server,
    /// The endpoints are MQTT brokers: there is no hub to ask for its counters.
    broker: bool,
    /// TLS fronts of in-process brokers, stopped with the target.
    _tls_fronts: Vec<tls_front::TlsFront>,
}

enum Server {
    /// Its processes, when the scenario names them.
    External(Option<process::Watched>),
    /// An external server that pushbench started behind the link (`network.serve`), stopped
    /// with the target; its processes are watched (the scenario's, else the command's).
    Served {
        child: Child,
        watched: Option<process::Watched>,
    },
    InProcess(Vec<Hub>),
    Children(Box<Children>),
}

/// The embedded target's child shards. Locked only while a scheduled `restart` replaces
/// them, which happens while the target is borrowed for publishing.
struct Children {
    shards: tokio::sync::Mutex<Vec<Shard>>,
    respawn: Respawn,
}

/// One child shard, and the cost of the processes it replaced (a `restart`), so that the
/// shard's CPU and peak memory cover the whole run.
struct Shard {
    child: Child,
    retired_cpu_s: f64,
    retired_peak_rss: u64,
}

impl Shard {
    fn cost(&self) -> Option<(f64, u64)> {
        let pid = self.child.id()?;
        let cpu = sys::cpu_s(pid)? + self.retired_cpu_s;
        let peak = sys::peak_rss_bytes(&pid.to_string())?.max(self.retired_peak_rss);
        Some((cpu, peak))
    }
}

/// What starting a shard again needs: the same command on the same address and port.
struct Respawn {
    exe: PathBuf,
    config: HubConfig,
    single_thread: bool,
    netns: Option<String>,
    /// Per shard, the address it listens on.
    listen: Vec<SocketAddr>,
    /// Per shard, where its broker listens (an MQTT run's).
    brokers: Vec<BrokerAddrs>,
}

impl Respawn {
    async fn spawn(&self, k: usize) -> anyhow::Result<Child> {
        let listen = self.listen[k];
        let netns = self.netns.as_deref();
        let broker = self.brokers.get(k).copied();
        let mut child = spawn_serve(
            &self.exe,
            &self.config,
            listen,
            broker.map_or(BrokerPorts::None, BrokerPorts::Fixed),
            self.single_thread,
            netns,
        )?;
        let mut lines = ready_lines(&mut child)?;
        read_ready(&mut lines, READY_PREFIX).await?;
        if let Some(expected) = broker {
            let got = parse_broker_line(&read_ready(&mut lines, BROKER_READY_PREFIX).await?)?;
            if got != expected {
                bail!("the restarted broker listens on {got:?}, not on {expected:?}");
            }
        }
        Ok(child)
    }
}

/// Whether `pushbench serve` starts the broker too, and on which ports.
#[derive(Clone, Copy)]
enum BrokerPorts {
    None,
    Free,
    Fixed(BrokerAddrs),
}

/// The hub configuration a transport run needs: its response headers, its long-poll timeout,
/// and a header timeout that an interval poller idle between two polls never reaches.
pub fn hub_config_for(transport: &TransportPlan) -> HubConfig {
    let mut config = HubConfig {
        profile: match transport.response_profile() {
            HeaderProfile::Custom(_) => HeaderProfile::Minimal,
            profile => profile,
        },
        ..HubConfig::default()
    };
    match transport {
        TransportPlan::HttpLongpoll { timeout, .. } => config.longpoll_timeout = *timeout,
        TransportPlan::HttpPoll { interval, .. } => {
            config.header_timeout = config.header_timeout.max(interval.saturating_mul(2));
        }
        TransportPlan::Sse { keepalive, .. } => config.sse_keepalive = *keepalive,
        TransportPlan::Websocket { .. } | TransportPlan::Mqtt(_) => {}
    }
    config
}

/// The loopback address of shard `k`: each shard on its own address, so that every
/// (destination address, port) keeps well within the ~28k ephemeral source ports.
fn shard_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (k % 250) as u8)
}

impl RunningTarget {
    /// Starts (embedded) or resolves (external) the target; an embedded target runs as
    /// `shards` processes.
    pub async fn start(
        target: &TargetPlan,
        transport: &TransportPlan,
        launch: &Launch,
        shards: usize,
        tls: Option<&TlsPlan>,
    ) -> anyhow::Result<Self> {
        Self::start_placed(target, transport, launch, shards, None, tls).await
    }

    /// As `start`, with an embedded target placed in a link's namespace.
    pub async fn start_placed(
        target: &TargetPlan,
        transport: &TransportPlan,
        launch: &Launch,
        shards: usize,
        placement: Option<&Placement>,
        tls: Option<&TlsPlan>,
    ) -> anyhow::Result<Self> {
        let TargetPlan::External {
            urls, processes, ..
        } = target
        else {
            return Self::start_embedded(transport, launch, shards.max(1), placement, tls).await;
        };
        let mut served = match placement {
            Some(Placement {
                netns,
                backstage,
                serve: Some(command),
            }) => Some((serve_in(netns, command)?, *backstage)),
            Some(_) => bail!(
                "[network] places the target in a namespace of its own; for an external \
                 server, give network.serve (the command that starts it there), or hold a link \
                 with `pushbench link up`, start the server in the namespace it names, and \
                 point target.urls at the address it prints"
            ),
            None => None,
        };
        let scheme = scheme_for(transport, tls.is_some());
        let mut endpoints = Vec::new();
        for url in urls.iter().filter(|u| u.starts_with(&scheme)) {
            let mut endpoint = resolve(url).await?;
            if let Some((child, backstage)) = &mut served {
                // The URL's port, on the side path into the server's namespace.
                endpoint.addr = (*backstage, endpoint.addr.port()).into();
                endpoint.authority = endpoint.addr.to_string();
                wait_served(child, endpoint.addr).await?;
            }
            if let Some(plan) = tls {
                let host = endpoint
                    .authority
                    .rsplit_once(':')
                    .map_or(endpoint.authority.as_str(), |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                endpoint.tls = Some(EndpointTls::external(plan, host)?);
            }
            endpoints.push(Arc::new(endpoint));
        }
        if endpoints.is_empty() {
            bail!(
                "the target has no {scheme} URL for {}: add one to target.urls",
                transport.label()
            );
        }
        let server = match served {
            Some((child, _)) => {
                let own = child.id().map(TargetProcesses::Pid);
                let watched = processes.as_ref().or(own.as_ref());
                Server::Served {
                    watched: watched.map(process::Watched::start).transpose()?,
                    child,
                }
            }
            None => Server::External(
                processes
                    .as_ref()
                    .map(process::Watched::start)
                    .transpose()?,
            ),
        };
        Ok(RunningTarget {
            endpoints,
            label: urls.join(" "),
            server,
            broker: matches!(transport, TransportPlan::Mqtt(_)),
            _tls_fronts: Vec::new(),
        })
    }

    async fn start_embedded(
        transport: &TransportPlan,
        launch: &Launch,
        shards: usize,
        placement: Option<&Placement>,
        tls: Option<&TlsPlan>,
    ) -> anyhow::Result<Self> {
        let config = HubConfig {
            tls: tls.is_some(),
            ..hub_config_for(transport)
        };
        // Each shard's own certificate, the only one its clients trust.
        let mut certificates: Vec<Option<Vec<u8>>> = Vec::new();
        let mut tls_fronts = Vec::new();
        let broker = matches!(transport, TransportPlan::Mqtt(_));
        let pick = |b: BrokerAddrs| broker_listener(transport, b);
        let mut addrs = Vec::new();
        let server = match launch {
            Launch::InProcess if placement.is_some() => bail!(
                "a [network] run starts its target as a `pushbench serve` process inside the \
                 link's namespace: run it with the pushbench binary, not in-process"
            ),
            Launch::InProcess => {
                let mut hubs = Vec::new();
                for k in 0..shards {
                    if broker {
                        let (b, certificate, fronts) =
                            in_process_broker(shard_ip(k), tls.is_some()).await?;
                        tls_fronts.extend(fronts);
                        certificates.push(certificate);
                        addrs.push(pick(b)?);
                    } else {
                        let hub = Hub::start((shard_ip(k), 0).into(), config.clone()).await?;
                        addrs.push(hub.local_addr());
                        certificates.push(hub.certificate_der().map(<[u8]>::to_vec));
                        hubs.push(hub);
                    }
                }
                Server::InProcess(hubs)
            }
            Launch::ChildProcess { exe } => {
                let mut children = Vec::new();
                let (mut listen, mut brokers) = (Vec::new(), Vec::new());
                let netns = placement.map(|p| p.netns.as_str());
                for k in 0..shards {
                    // Inside the link's own namespace every address is one pushbench made
                    // (the 32 link addresses, the backstage one, its loopback): the hub takes
                    // them all, so the fleet can spread over them.
                    let ip = placement.map_or(shard_ip(k), |_| Ipv4Addr::UNSPECIFIED);
                    let any_port = (ip, 0).into();
                    let ports = if broker {
                        BrokerPorts::Free
                    } else {
                        BrokerPorts::None
                    };
                    let mut child = spawn_serve(exe, &config, any_port, ports, shards > 1, netns)?;
                    let mut lines = ready_lines(&mut child)?;
                    let hub_line = read_ready(&mut lines, READY_PREFIX).await?;
                    if config.tls {
                        let line = read_ready(&mut lines, CERTIFICATE_PREFIX).await?;
                        certificates.push(Some(decode_certificate(&line)?));
                    }
                    let hub_addr: SocketAddr = hub_line
                        .parse()
                        .with_context(|| format!("parsing the hub's address from {hub_line:?}"))?;
                    // A restart starts the hub on its port, the broker on theirs.
                    listen.push((ip, hub_addr.port()).into());
                    let addr = if broker {
                        let b =
                            parse_broker_line(&read_ready(&mut lines, BROKER_READY_PREFIX).await?)?;
                        brokers.push(b);
                        pick(b)?
                    } else {
                        hub_addr
                    };
                    let addr: SocketAddr = match placement {
                        Some(p) => (p.backstage, addr.port()).into(),
                        None => addr,
                    };
                    addrs.push(addr);
                    children.push(Shard {
                        child,
                        retired_cpu_s: 0.0,
                        retired_peak_rss: 0,
                    });
                }
                Server::Children(Box::new(Children {
                    shards: tokio::sync::Mutex::new(children),
                    respawn: Respawn {
                        exe: exe.clone(),
                        config,
                        single_thread: shards > 1,
                        netns: netns.map(str::to_string),
                        listen,
                        brokers,
                    },
                }))
            }
        };
        Ok(RunningTarget {
            endpoints: addrs
                .into_iter()
                .enumerate()
                .map(|(k, addr)| {
                    let certificate = certificates.get(k).cloned().flatten();
                    Arc::new(Endpoint {
                        addr,
                        authority: addr.to_string(),
                        tls: tls.zip(certificate).map(|(plan, der)| {
                            EndpointTls::new(
                                plan,
                                EMBEDDED_SERVER_NAME.to_string(),
                                Trust::Certificates(vec![der]),
                            )
                        }),
                    })
                })
                .collect(),
            label: "embedded".to_string(),
            server,
            broker,
            _tls_fronts: tls_fronts,
        })
    }

    /// CPU seconds and peak RSS of each child shard, or of an external target's processes
    /// (summed, as one); empty when there is nothing of ours or the scenario's to measure.
    pub fn shard_costs(&self) -> Vec<(f64, u64)> {
        match &self.server {
            Server::Children(children) => children
                .shards
                .try_lock()
                .map(|shards| shards.iter().filter_map(Shard::cost).collect())
                .unwrap_or_default(),
            Server::External(Some(watched))
            | Server::Served {
                watched: Some(watched),
                ..
            } => watched.cost().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Resident memory of the target's processes now, summed (before the clients connect:
    /// what the connections did not add); `None` where there is nothing to measure.
    pub fn rss_now(&self) -> Option<u64> {
        match &self.server {
            Server::Children(children) => children.shards.try_lock().ok().and_then(|shards| {
                shards
                    .iter()
                    .map(|shard| sys::rss_bytes(&shard.child.id()?.to_string()))
                    .sum()
            }),
            Server::External(Some(watched))
            | Server::Served {
                watched: Some(watched),
                ..
            } => watched.rss_now(),
            _ => None,
        }
    }

    /// The target processes that are no longer running: child shards as "shard K (pid P)
    /// exited: …", an external target's watched processes as "process P exited".
    pub fn exited_shards(&mut self) -> Vec<String> {
        match &mut self.server {
            Server::Children(children) => children
                .shards
                .get_mut()
                .iter_mut()
                .enumerate()
                .filter_map(|(k, Shard { child, .. })| {
                    let pid = child
                        .id()
                        .map_or_else(String::new, |p| format!(" (pid {p})"));
                    match child.try_wait() {
                        Ok(Some(status)) => Some(format!("shard {k}{pid} exited: {status}")),
                        _ => None,
                    }
                })
                .collect(),
            Server::External(Some(watched))
            | Server::Served {
                watched: Some(watched),
                ..
            } => watched
                .pids()
                .iter()
                .filter(|pid| sys::cpu_s(**pid).is_none())
                .map(|pid| format!("process {pid} exited"))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The embedded hubs' own counters, summed over shards.
    pub async fn hub_stats(&self) -> Option<HubStats> {
        if self.broker {
            return None;
        }
        match &self.server {
            Server::External(_) | Server::Served { .. } => None,
            Server::InProcess(hubs) if hubs.is_empty() => None,
            Server::InProcess(hubs) => Some(hubs.iter().map(Hub::stats).sum()),
            Server::Children(_) => {
                let mut sum = HubStats::default();
                for endpoint in &self.endpoints {
                    let fetched = tokio::time::timeout(STATS_TIMEOUT, fetch_stats(endpoint)).await;
                    sum += fetched.ok()?.ok()?;
                }
                Some(sum)
            }
        }
    }

    /// Kills every child shard and starts it again on the address and ports it had (the
    /// hub's and, in an MQTT run, the broker's: a scheduled `restart`): clients and publisher
    /// find the target where it was, with nothing of what the killed processes held (an MQTT
    /// broker's sessions included).
    pub async fn restart(&self) -> anyhow::Result<()> {
        let Server::Children(children) = &self.server else {
            bail!("only an embedded target started as `pushbench serve` can be restarted");
        };
        let mut shards = children.shards.lock().await;
        for shard in shards.iter_mut() {
            if let Some((cpu, peak)) = shard.cost() {
                (shard.retired_cpu_s, shard.retired_peak_rss) = (cpu, peak);
            }
            // Killed and reaped, so that its port is free again.
            shard.child.kill().await.context("killing a target shard")?;
        }
        for (k, shard) in shards.iter_mut().enumerate() {
            shard.child = children
                .respawn
                .spawn(k)
                .await
                .with_context(|| format!("starting target shard {k} again"))?;
        }
        Ok(())
    }

    pub async fn stop(self) {
        match self.server {
            Server::Children(children) => {
                for mut shard in children.shards.into_inner() {
                    let _ = shard.child.kill().await;
                }
            }
            Server::Served { mut child, .. } => {
                let _ = child.kill().await;
            }
            Server::External(_) | Server::InProcess(_) => {}
        }
    }
}

/// A broker in this process on `ip`; over TLS behind fronts, with their certificate.
async fn in_process_broker(
    ip: Ipv4Addr,
    tls: bool,
) -> anyhow::Result<(BrokerAddrs, Option<Vec<u8>>, Vec<tls_front::TlsFront>)> {
    let plain = tokio::task::spawn_blocking(move || broker::start(ip)).await??;
    if !tls {
        return Ok((plain, None, Vec::new()));
    }
    let identity = Identity::generate(ip.into())?;
    let (fronted, fronts) = tls_front::front_broker(plain, &identity).await?;
    Ok((fronted, Some(identity.certificate_der), fronts))
}

fn spawn_serve(
    exe: &PathBuf,
    config: &HubConfig,
    listen: SocketAddr,
    broker: BrokerPorts,
    single_thread: bool,
    netns: Option<&str>,
) -> anyhow::Result<Child> {
    // `ip netns exec` joins the namespace and then execs the command: the child's pid is
    // the server's, for its cost.
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command
        .args([
            "serve",
            "--listen",
            &listen.to_string(),
            "--headers",
            config.profile.name(),
        ])
        .arg("--longpoll-timeout")
        .arg(humantime::format_duration(config.longpoll_timeout).to_string())
        .arg("--header-timeout")
        .arg(humantime::format_duration(config.header_timeout).to_string());
    if let Some(every) = config.sse_keepalive {
        command
            .arg("--sse-keepalive")
            .arg(humantime::format_duration(every).to_string());
    }
    match broker {
        BrokerPorts::None => {}
        BrokerPorts::Free => {
            command.arg("--broker");
        }
        BrokerPorts::Fixed(b) => {
            let ports = [b.tcp, b.ws, b.v5].map(|a| a.port().to_string()).join(",");
            command.args(["--broker", "--broker-ports", &ports]);
        }
    }
    if config.tls {
        command.arg("--tls");
    }
    if single_thread {
        command.arg("--single-thread");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the embedded target ({} serve)", exe.display()))
}

/// Starts `command` (`sh -c`) inside namespace `netns`: an external server behind the link.
fn serve_in(netns: &str, command: &str) -> anyhow::Result<Child> {
    // `exec`, so that the child's pid is the server's, for its cost.
    Command::new("ip")
        .args(["netns", "exec", netns, "sh", "-c"])
        .arg(format!("exec {command}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting `{command}` in {netns}"))
}

/// Waits until the served server accepts connections at `addr`, or says why it will not.
async fn wait_served(child: &mut Child, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the served target exited before listening on {addr}: {status}");
        }
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the served target did not listen on {addr} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

/// The certificate a child hub printed (base64 DER).
fn decode_certificate(line: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .context("decoding the embedded hub's certificate")
}

/// The printed form of a broker's addresses.
pub fn broker_line(addrs: &BrokerAddrs) -> String {
    format!(
        "{BROKER_READY_PREFIX}mqtt://{} ws://{} mqtt5://{}",
        addrs.tcp, addrs.ws, addrs.v5
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
        v5: parse("mqtt5://")?,
    })
}

/// The embedded broker's listener for an MQTT transport's version and carrier.
fn broker_listener(
    transport: &TransportPlan,
    addrs: BrokerAddrs,
) -> anyhow::Result<std::net::SocketAddr> {
    let TransportPlan::Mqtt(m) = transport else {
        return Ok(addrs.tcp);
    };
    match (m.version, m.over) {
        (MqttVersion::V311, MqttOver::Tcp) => Ok(addrs.tcp),
        (MqttVersion::V311, MqttOver::Websocket) => Ok(addrs.ws),
        (MqttVersion::V5, MqttOver::Tcp) => Ok(addrs.v5),
        (MqttVersion::V5, MqttOver::Websocket) => bail!(
            "the embedded broker (rumqttd) speaks MQTT 5 only over TCP: use over = \"tcp\", \
             or an external broker such as mosquitto for MQTT 5 over WebSocket"
        ),
    }
}

/// The URL scheme of the servers a transport talks to, with TLS or without.
fn scheme_for(transport: &TransportPlan, tls: bool) -> String {
    let plain = match transport {
        TransportPlan::Mqtt(m) if m.over == MqttOver::Websocket => "ws",
        TransportPlan::Mqtt(_) => "mqtt",
        _ => "http",
    };
    format!("{plain}{}://", if tls { "s" } else { "" })
}

/// The schemes a target URL may have.
const SCHEMES: [&str; 6] = [
    "http://", "mqtt://", "ws://", "https://", "mqtts://", "wss://",
];

/// Resolves `SCHEME://host:port[/path]` to a socket address.
async fn resolve(url: &str) -> anyhow::Result<Endpoint> {
    let rest = SCHEMES
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| {
            anyhow!(
                "target URL {url:?} has none of the schemes {}",
                SCHEMES.join(", ")
            )
        })?;
    let authority = rest.split('/').next().unwrap_or(rest).to_string();
    let addr = tokio::net::lookup_host(&authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .ok_or_else(|| anyhow!("{authority} resolves to no address"))?;
    Ok(Endpoint {
        addr,
        authority,
        tls: None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_every(interval: Duration) -> TransportPlan {
        TransportPlan::HttpPoll {
            http: crate::plan::HttpVersion::Http11,
            interval,
            headers: HeaderProfile::Minimal,
        }
    }

    #[test]
    fn an_interval_poller_idle_between_polls_is_not_cut() {
        let default = HubConfig::default().header_timeout;
        let often = hub_config_for(&poll_every(Duration::from_secs(1)));
        assert_eq!(often.header_timeout, default);
        let rarely = hub_config_for(&poll_every(Duration::from_secs(60)));
        assert_eq!(rarely.header_timeout, Duration::from_secs(120));
    }

    #[test]
    fn an_sse_run_gets_its_keep_alive() {
        let every = Some(Duration::from_secs(15));
        let sse = TransportPlan::Sse {
            headers: HeaderProfile::Browser,
            http: Default::default(),
            keepalive: every,
        };
        assert_eq!(hub_config_for(&sse).sse_keepalive, every);
        let quiet = hub_config_for(&poll_every(Duration::from_secs(1)));
        assert_eq!(quiet.sse_keepalive, None);
    }

    #[test]
    fn shard_stats_add_up_in_every_field() {
        let one = HubStats {
            connections_accepted: 1,
            header_timeouts: 2,
            published: 3,
            poll_messages: 4,
            poll_not_modified: 5,
            longpoll_messages: 6,
            longpoll_timeouts: 7,
            ws_sessions: 8,
            ws_frames_sent: 9,
            ws_dropped_slow: 10,
            sse_sessions: 11,
            sse_resumed: 12,
            sse_events_sent: 13,
            sse_keepalives_sent: 14,
            sse_dropped_slow: 15,
        };
        let sum: HubStats = [one.clone(), one.clone()].into_iter().sum();
        let twice = HubStats {
            connections_accepted: 2,
            header_timeouts: 4,
            published: 6,
            poll_messages: 8,
            poll_not_modified: 10,
            longpoll_messages: 12,
            longpoll_timeouts: 14,
            ws_sessions: 16,
            ws_frames_sent: 18,
            ws_dropped_slow: 20,
            sse_sessions: 22,
            sse_resumed: 24,
            sse_events_sent: 26,
            sse_keepalives_sent: 28,
            sse_dropped_slow: 30,
        };
        assert_eq!(sum, twice);
    }
}
