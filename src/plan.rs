//! The validated, defaults-resolved form of a scenario: what a run executes.
//!
//! `scenario/` turns a TOML file into a `Plan`; everything downstream reads only this.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::adapter::Adapter;
use crate::profile::HeaderProfile;
use crate::thresholds::Threshold;

/// A scenario after validation: every field is present and within range.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Short name, used for the results folder (`results/<name>/<stamp>/`).
    pub name: String,
    pub description: String,
    /// Simulated clients per transport run.
    pub clients: u32,
    /// Channels the clients are spread over (client `i` subscribes to channel `i % channels`).
    pub channels: u32,
    /// Connections opened per second while ramping up.
    pub connect_rate_per_s: f64,
    /// Messages published before the measured window, so that every client is in steady state.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
    /// How long to wait after the last publish for the last deliveries.
    pub drain: Duration,
    /// Messages published per second on each channel.
    pub message_rate_per_s: f64,
    /// Size of every published payload (at least `payload::HEADER_BYTES`).
    pub payload_bytes: usize,
    pub target: TargetPlan,
    /// The runs, in order: each transport with the TLS it runs over.
    pub transports: Vec<RunPlan>,
    /// Limits the results must keep (`[thresholds]`); a run that breaks one exits with
    /// `EXIT_THRESHOLDS_BROKEN`.
    pub thresholds: Vec<Threshold>,
    /// A rate-scaled run: the per-client message rate its bandwidth is projected to
    /// (`messages.project_to`), when the machine cannot hold that rate for all clients.
    pub project_rate_per_s: Option<f64>,
    pub scale: ScalePlan,
    /// `[network]`: a link with conditions and faults instead of loopback (needs root).
    pub network: Option<NetworkPlan>,
    /// How pushbench speaks to the target (`[target]`'s preset and overrides); the hub's
    /// own layout for an embedded target.
    pub adapter: Adapter,
}

/// One transport run of a scenario: the transport and the TLS under it, resolved from its
/// `tls = true/false` and `[tls]`. The run carries its TLS, so that every copy of it (a
/// shard's, a merge's) runs and is labelled the same.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub transport: TransportPlan,
    /// `None`: cleartext.
    pub tls: Option<TlsPlan>,
}

impl RunPlan {
    /// The run's label: the transport's, with TLS named (`websocket+tls`) on a TLS run. Runs
    /// of one scenario are told apart (and shard results matched) by it.
    pub fn label(&self) -> String {
        match &self.tls {
            Some(tls) => format!("{}{}", self.transport.label(), tls.label_suffix()),
            None => self.transport.label(),
        }
    }
}

impl From<TransportPlan> for RunPlan {
    /// A cleartext run of `transport`.
    fn from(transport: TransportPlan) -> RunPlan {
        RunPlan {
            transport,
            tls: None,
        }
    }
}

/// How a run is spread over processes (`[scale]`); `None` sizes from the open-files limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalePlan {
    /// Clients per worker process of the fleet.
    pub clients_per_worker: Option<u32>,
    /// Clients per process of the embedded target (hub or broker shard).
    pub clients_per_shard: Option<u32>,
}

/// Where the clients connect and the publisher publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetPlan {
    /// pushbench starts its own hub for each transport run.
    Embedded,
    /// A server that is already running: base URLs such as `http://127.0.0.1:8080`, and
    /// optionally its processes, whose CPU and memory the run then measures.
    External {
        urls: Vec<String>,
        processes: Option<TargetProcesses>,
        /// `target.name`; `None`: the first URL's host:port.
        name: Option<String>,
    },
}

impl TargetPlan {
    /// The target's short name, for labels where runs of several targets meet.
    pub fn name(&self) -> String {
        match self {
            TargetPlan::Embedded => "embedded".to_string(),
            TargetPlan::External {
                name: Some(name), ..
            } => name.clone(),
            TargetPlan::External { urls, .. } => urls
                .first()
                .and_then(|url| url.split("://").nth(1))
                .map_or_else(String::new, |rest| {
                    rest.split('/').next().unwrap_or(rest).to_string()
                }),
        }
    }
}

/// Which processes an external target is (`target.pid`, `target.pidfile`, `target.process`).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetProcesses {
    Pid(u32),
    /// Read at the start of every transport run (a restarted server writes a new one).
    Pidfile(std::path::PathBuf),
    /// Every process of that command name (nginx: its master and workers).
    Name(String),
}

/// One transport to measure, with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TransportPlan {
    /// Interval polling: one request every `interval`, at a fixed rate with a random phase.
    HttpPoll {
        interval: Duration,
        headers: HeaderProfile,
        http: HttpVersion,
    },
    /// Long polling: the server holds each request until a message is newer than the client's.
    HttpLongpoll {
        headers: HeaderProfile,
        http: HttpVersion,
        /// How long the (embedded) server holds a request before answering 304.
        timeout: Duration,
    },
    /// Server-Sent Events: one streamed `text/event-stream` response, one event per message;
    /// a broken stream is resumed with `Last-Event-ID`.
    Sse {
        headers: HeaderProfile,
        #[serde(default)]
        http: HttpVersion,
        /// How often the (embedded) server sends a comment on an idle stream; `None`: never.
        keepalive: Option<Duration>,
    },
    /// WebSocket: the server pushes every message as one binary frame.
    Websocket {
        /// Client read buffer; tungstenite's 128 KiB default costs ~134 KB per connection.
        read_buffer_bytes: usize,
        /// The client's liveness check, as applications run one over WebSocket: after this
        /// long without a frame it sends a ping, and after as long again without any frame
        /// it gives the connection up as dead and reconnects. `None`: it waits for TCP.
        #[serde(default)]
        ping: Option<Duration>,
    },
    /// MQTT: every client subscribes to its channel's topic; the publisher publishes to it.
    Mqtt(MqttPlan),
}

/// The HTTP version of a polling or event-stream transport's connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    #[default]
    Http11,
    /// Cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3): the client opens with the
    /// connection preface, no upgrade.
    Http2,
}

impl HttpVersion {
    /// The version as written in scenario files (`http = "2"`).
    pub fn name(self) -> &'static str {
        match self {
            HttpVersion::Http11 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }

    /// What a run label adds: nothing for HTTP/1.1, so older labels still match.
    fn label_suffix(self) -> &'static str {
        match self {
            HttpVersion::Http11 => "",
            HttpVersion::Http2 => ",h2",
        }
    }
}

/// Options of an MQTT transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MqttPlan {
    /// 0, 1 or 2; used by the subscribers and the publisher alike.
    pub qos: u8,
    pub version: MqttVersion,
    pub over: MqttOver,
    /// Topic pattern: `{channel}` stands for the channel number.
    pub topic: String,
    /// Keep-alive the clients announce; the broker drops a silent client after 1.5 times it.
    pub keep_alive: Duration,
    pub clean_session: bool,
    /// Whether the publisher sets the retain flag.
    pub retain: bool,
    /// Unacknowledged QoS 1/2 messages a client may have in flight; rumqttc sizes a per-client
    /// buffer from it, so it is kept small.
    pub inflight: u16,
    /// Last Will test: cut every client without DISCONNECT and measure the wills' arrival.
    pub last_will: Option<LastWillPlan>,
    /// Which client speaks for the subscribers (the publisher is always rumqttc's).
    #[serde(default)]
    pub client: MqttClient,
}

/// The subscribers' MQTT client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttClient {
    /// rumqttc's client and event loop: every version and carrier.
    #[default]
    Rumqttc,
    /// pushbench's own stream with rumqttc's codec: MQTT 3.1.1 over TCP or TLS, with less
    /// memory per client and bytes and TLS records counted at the stream.
    Lean,
}

/// A Last Will and Testament run instead of a message stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastWillPlan {
    /// Topic of the wills (`{client}` stands for the client number).
    pub topic: String,
    /// How the clients go away: closing the socket, or falling silent (the broker must then
    /// notice by its keep-alive timeout).
    pub cut: WillCut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WillCut {
    Close,
    Silence,
    /// The link drops every packet both ways (`[network]` needed): the clients keep trying,
    /// and only the broker's keep-alive timeout can notice.
    Blackhole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttVersion {
    V311,
    V5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttOver {
    Tcp,
    Websocket,
}

impl MqttPlan {
    /// The topic of channel `channel`.
    pub fn topic_of(&self, channel: &str) -> String {
        self.topic.replace("{channel}", channel)
    }
}

impl TransportPlan {
    /// The transport's kind as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportPlan::HttpPoll { .. } => "http-poll",
            TransportPlan::HttpLongpoll { .. } => "http-longpoll",
            TransportPlan::Sse { .. } => "sse",
            TransportPlan::Websocket { .. } => "websocket",
            TransportPlan::Mqtt(_) => "mqtt",
        }
    }

    /// A label that tells runs of the same kind apart, e.g. `http-poll(websocket-org-2010)`
    /// or `http-poll(minimal,h2)` (HTTP/1.1 is not named, so older labels still match).
    pub fn label(&self) -> String {
        match self {
            TransportPlan::HttpPoll { headers, http, .. }
            | TransportPlan::HttpLongpoll { headers, http, .. } => {
                format!("{}({}{})", self.kind(), headers.name(), http.label_suffix())
            }
            TransportPlan::Sse {
                headers,
                http,
                keepalive,
            } => {
                let keepalive = match keepalive {
                    Some(every) => format!(",keepalive={}", humantime::format_duration(*every)),
                    None => String::new(),
                };
                format!(
                    "{}({}{}{keepalive})",
                    self.kind(),
                    headers.name(),
                    http.label_suffix()
                )
            }
            TransportPlan::Websocket { ping, .. } => match ping {
                Some(every) => format!(
                    "{}(ping={})",
                    self.kind(),
                    humantime::format_duration(*every)
                ),
                None => self.kind().to_string(),
            },
            TransportPlan::Mqtt(m) => {
                let version = match m.version {
                    MqttVersion::V311 => "",
                    MqttVersion::V5 => "5",
                };
                let over = match m.over {
                    MqttOver::Tcp => "tcp",
                    MqttOver::Websocket => "ws",
                };
                let will = if m.last_will.is_some() { ",will" } else { "" };
                let session = if m.clean_session { "" } else { ",persistent" };
                let client = match m.client {
                    MqttClient::Rumqttc => "",
                    MqttClient::Lean => ",lean",
                };
                format!("mqtt{version}(qos{},{over}{session}{will}{client})", m.qos)
            }
        }
    }

    /// How a Last Will run cuts its clients off; `None` for a message stream.
    pub fn will_cut(&self) -> Option<WillCut> {
        match self {
            TransportPlan::Mqtt(m) => m.last_will.as_ref().map(|w| w.cut),
            _ => None,
        }
    }

    /// The header profile the embedded hub answers with for this transport.
    pub fn response_profile(&self) -> HeaderProfile {
        match self {
            TransportPlan::HttpPoll { headers, .. }
            | TransportPlan::HttpLongpoll { headers, .. }
            | TransportPlan::Sse { headers, .. } => headers.clone(),
            TransportPlan::Websocket { .. } | TransportPlan::Mqtt(_) => HeaderProfile::Minimal,
        }
    }
}

impl Plan {
    /// Messages each channel publishes during warm-up (at least one: its delivery opens the
    /// byte window of every client).
    pub fn warmup_messages(&self) -> u64 {
        ((self.warmup.as_secs_f64() * self.message_rate_per_s).round() as u64).max(1)
    }

    /// Messages each channel publishes inside the measured window (at least one).
    pub fn window_messages(&self) -> u64 {
        ((self.duration.as_secs_f64() * self.message_rate_per_s).round() as u64).max(1)
    }
}

/// `[network]` and `[[faults]]`: the link between fleet and target, and what happens to it
/// during the run. `None` on a plan: loopback, as without the tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkPlan {
    pub conditions: crate::link::Conditions,
    /// In the order they happen.
    pub faults: Vec<FaultPlan>,
    /// `network.serve`: the command that starts an external target in the link's namespace.
    pub serve: Option<String>,
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// When, counted from the first publish (the start of the warm-up).
    pub at: Duration,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FaultKind {
    /// Every packet dropped both ways for `duration`: only timeouts and keep-alives notice.
    Blackhole { duration: Duration },
    /// Every connection reset at once.
    Cut,
    /// The embedded target's processes killed and started again on the same addresses: what
    /// they held (history, subscriptions) is gone.
    Restart,
}

impl FaultKind {
    /// The fault's name as written in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Blackhole { .. } => "blackhole",
            FaultKind::Cut => "cut",
            FaultKind::Restart => "restart",
        }
    }

    /// How long the fault lasts (a cut is instantaneous).
    pub fn duration(&self) -> Duration {
        match self {
            FaultKind::Blackhole { duration } => *duration,
            FaultKind::Cut | FaultKind::Restart => Duration::ZERO,
        }
    }
}

/// TLS under a run: `[tls]`, or TLS 1.3 defaults for a transport's `tls = true` without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsPlan {
    pub version: TlsVersion,
    /// Whether a reconnecting client resumes its session (browsers do).
    pub resumption: bool,
    /// An external target's CA certificate (PEM), the only one the fleet trusts.
    pub ca: Option<std::path::PathBuf>,
    /// An external target whose certificate is not checked at all.
    pub insecure: bool,
    /// The one AEAD the clients offer; `None`: rustls' default order (AES-256-GCM first).
    pub cipher: Option<TlsCipher>,
}

/// The AEAD of the cipher suites a client offers (`tls.cipher`), in either TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsCipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl TlsCipher {
    pub const ALL: [TlsCipher; 3] = [
        TlsCipher::Aes128Gcm,
        TlsCipher::Aes256Gcm,
        TlsCipher::Chacha20Poly1305,
    ];

    /// As written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            TlsCipher::Aes128Gcm => "aes-128-gcm",
            TlsCipher::Aes256Gcm => "aes-256-gcm",
            TlsCipher::Chacha20Poly1305 => "chacha20-poly1305",
        }
    }
}

impl Default for TlsPlan {
    fn default() -> Self {
        TlsPlan {
            version: TlsVersion::V1_3,
            resumption: true,
            ca: None,
            insecure: false,
            cipher: None,
        }
    }
}

impl TlsPlan {
    /// What a run label adds: `+tls` (1.3) or `+tls1.2`, then the chosen cipher and
    /// `insecure` (nothing checked) in parentheses: `+tls1.2(chacha20-poly1305,insecure)`.
    pub fn label_suffix(&self) -> String {
        let version = match self.version {
            TlsVersion::V1_3 => "",
            TlsVersion::V1_2 => "1.2",
        };
        let cipher = self
            .cipher
            .map_or_else(String::new, |c| format!(",{}", c.name()));
        let insecure = if self.insecure { ",insecure" } else { "" };
        let options = format!("{cipher}{insecure}");
        let options = match options.strip_prefix(',') {
            Some(list) => format!("({list})"),
            None => String::new(),
        };
        format!("+tls{version}{options}")
    }
}

/// The one TLS version a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    /// As written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}
