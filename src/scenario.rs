//! Scenario files (TOML) → validated `Plan`.
//!
//! The file is parsed into toml's spanned document tree and walked by hand rather than
//! deserialized with serde: serde loses positions (tagged enums, missing fields), and every
//! error here must point at the exact key or value and name its dotted path, such as
//! `transports[2].interval`.

use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeArray, DeString, DeTable, DeValue};

use crate::payload::HEADER_BYTES;
use crate::plan::{
    LastWillPlan, MqttOver, MqttPlan, MqttVersion, Plan, ScalePlan, TargetPlan, TransportPlan,
    WillCut,
};
use crate::profile::HeaderProfile;
use crate::thresholds::{self, Threshold};

/// Why a scenario file could not become a `Plan`.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or not a valid scenario. `line` and `column` are 1-based
    /// and point at the offending value (or key); `field` is its dotted path, empty for
    /// TOML syntax errors.
    #[error(
        "{path}:{line}:{column}: {}{message}\n{}",
        field_prefix(.field),
        snippet(*.line, *.column, .source_line)
    )]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        field: String,
        message: String,
        /// The offending line of the file, shown under the message with a caret.
        source_line: String,
    },
}

type Result<T> = std::result::Result<T, ScenarioError>;

const MAX_CLIENTS: u64 = 1_000_000;
/// Above this the publisher, not the transport, would be what is measured.
const MAX_MESSAGE_RATE_PER_S: f64 = 100_000.0;
const PAYLOAD_BYTES: RangeInclusive<u64> = HEADER_BYTES as u64..=1_048_576;
const READ_BUFFER_BYTES: RangeInclusive<u64> = 256..=1_048_576;

const DEFAULT_CONNECT_RATE_PER_S: f64 = 1000.0;
const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
const DEFAULT_PAYLOAD_BYTES: usize = 20;
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_LONGPOLL_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_READ_BUFFER_BYTES: usize = 4096;
const DEFAULT_MQTT_TOPIC: &str = "bench/{channel}";
/// Long enough that no PINGREQ falls into a typical measured window; 60 s is what clients
/// commonly use.
const DEFAULT_MQTT_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// rumqttc pre-sizes per-client state from it: small keeps 100k clients affordable.
const DEFAULT_MQTT_INFLIGHT: u16 = 10;

const TOP_LEVEL_FIELDS: &[&str] = &[
    "name",
    "description",
    "clients",
    "channels",
    "connect_rate",
    "warmup",
    "duration",
    "drain",
    "messages",
    "target",
    "transports",
    "thresholds",
    "scale",
];
const MESSAGE_FIELDS: &[&str] = &["rate", "payload_bytes", "project_to"];
const SCALE_FIELDS: &[&str] = &["clients_per_worker", "clients_per_shard"];
const TARGET_FIELDS: &[&str] = &["kind", "urls"];

const DURATION_FORMS: &str = "a duration such as \"500ms\", \"30s\", \"2m\" or \"1h\"";
const RATE_FORMS: &str = "a rate such as \"1/s\", \"0.5/s\", \"500/s\", \"60/min\" or \"3600/h\"";

/// Header names pushbench writes itself; a custom copy would duplicate them or break framing.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "if-none-match",
    "if-modified-since",
];

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> std::result::Result<Plan, ScenarioError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text, &shown)
}

/// Validates scenario `source`; `path` names the file in errors and gives the default name.
pub fn parse(source: &str, path: &str) -> std::result::Result<Plan, ScenarioError> {
    let src = Source { text: source, path };
    let doc = DeTable::parse(source).map_err(|e| src.syntax_error(&e))?;
    let root = Section {
        src: &src,
        table: doc.get_ref(),
        span: doc.span(),
        path: String::new(),
    };
    root.reject_unknown(TOP_LEVEL_FIELDS)?;

    // In the order the fields are usually written, so the first error is the topmost one.
    let name = name(&root)?;
    let description = match root.get("description") {
        Some(item) => item.string("a description")?.to_string(),
        None => String::new(),
    };
    let clients = root
        .required(
            "clients",
            "the number of simulated clients, e.g. clients = 1000",
        )?
        .whole("client count", 1..=MAX_CLIENTS)?;
    let channels = match root.get("channels") {
        Some(item) => item.whole("channel count (at most the client count)", 1..=clients)?,
        None => 1,
    };
    let connect_rate_per_s = match root.get("connect_rate") {
        Some(item) => item.rate(f64::INFINITY)?,
        None => DEFAULT_CONNECT_RATE_PER_S,
    };
    let warmup = optional_duration(&root, "warmup", DEFAULT_WARMUP, Zero::Allowed)?;
    let duration = root
        .required("duration", "the measured window, e.g. duration = \"30s\"")?
        .duration(Zero::Forbidden)?;
    let drain = optional_duration(&root, "drain", DEFAULT_DRAIN, Zero::Allowed)?;
    let (message_rate_per_s, payload_bytes) = messages(&root)?;
    let project_rate_per_s = project_to(&root, message_rate_per_s)?;
    let scale = scale(&root)?;
    let transports = transports(&root, channels)?;
    let thresholds = thresholds(&root, &transports)?;
    Ok(Plan {
        name,
        description,
        clients: to_u32(clients),
        channels: to_u32(channels),
        connect_rate_per_s,
        warmup,
        duration,
        drain,
        message_rate_per_s,
        payload_bytes,
        target: target(&root)?,
        transports,
        thresholds,
        project_rate_per_s,
        scale,
    })
}

/// `messages.project_to`: the per-client rate a rate-scaled run's bandwidth is projected to.
fn project_to(root: &Section, rate: f64) -> Result<Option<f64>> {
    let Some(item) = root
        .get("messages")
        .map(|m| m.table())
        .transpose()?
        .and_then(|m| m.get("project_to"))
    else {
        return Ok(None);
    };
    let target = item.rate(MAX_MESSAGE_RATE_PER_S)?;
    if target <= rate {
        return Err(item.error(format!(
            "project_to must be faster than messages.rate ({}): a rate-scaled run measures at a \
             lower rate and projects to a higher one",
            per_second(rate)
        )));
    }
    Ok(Some(target))
}

/// `[scale]`: clients per worker process and per target shard.
fn scale(root: &Section) -> Result<ScalePlan> {
    let Some(item) = root.get("scale") else {
        return Ok(ScalePlan::default());
    };
    let section = item.table()?;
    section.reject_unknown(SCALE_FIELDS)?;
    let count = |key: &str| -> Result<Option<u32>> {
        section
            .get(key)
            .map(|i| {
                i.whole("client count per process", 1..=MAX_CLIENTS)
                    .map(to_u32)
            })
            .transpose()
    };
    Ok(ScalePlan {
        clients_per_worker: count("clients_per_worker")?,
        clients_per_shard: count("clients_per_shard")?,
    })
}

/// A short human summary of a plan for `pushbench validate`: what will run, and roughly
/// how long all transport runs take (each ramps, warms up, measures and drains in turn).
pub fn describe(plan: &Plan) -> String {
    // Saturating: absurd but valid values (a rate of 1e-9/s, durations of years) must not panic.
    let ramp = Duration::try_from_secs_f64(f64::from(plan.clients) / plan.connect_rate_per_s)
        .unwrap_or(Duration::MAX);
    let per_run = [plan.warmup, plan.duration, plan.drain]
        .into_iter()
        .fold(ramp, Duration::saturating_add);
    let runs = plan.transports.len();
    let total = per_run.saturating_mul(to_u32(runs as u64));
    let title = if plan.description.is_empty() {
        plan.name.clone()
    } else {
        format!("{}: {}", plan.name, plan.description)
    };
    let mut lines = vec![
        title,
        format!(
            "  clients:    {} over {} channel{}, connecting at {}/s (ramp ≈ {})",
            plan.clients,
            plan.channels,
            plural(plan.channels as usize),
            per_second(plan.connect_rate_per_s),
            seconds(ramp),
        ),
        format!(
            "  messages:   {}/s per channel, {}-byte payload \
             ({} warm-up + {} measured per channel)",
            per_second(plan.message_rate_per_s),
            plan.payload_bytes,
            plan.warmup_messages(),
            plan.window_messages(),
        ),
        format!(
            "  window:     warmup {}, duration {}, drain {}",
            seconds(plan.warmup),
            seconds(plan.duration),
            seconds(plan.drain),
        ),
        format!("  target:     {}", describe_target(&plan.target)),
    ];
    if let Some(rate) = plan.project_rate_per_s {
        lines.push(format!(
            "  projected:  rate-scaled run; bandwidth also projected to {}/s per client",
            per_second(rate)
        ));
    }
    let (workers, shards) = (plan.scale.clients_per_worker, plan.scale.clients_per_shard);
    if workers.is_some() || shards.is_some() {
        let size =
            |n: Option<u32>| n.map_or("from the open-files limit".to_string(), |n| n.to_string());
        lines.push(format!(
            "  scale:      {} clients per worker, {} per target shard",
            size(workers),
            size(shards)
        ));
    }
    lines.push("  transports:".to_string());
    lines.extend(
        plan.transports
            .iter()
            .enumerate()
            .map(|(i, transport)| format!("    {}. {}", i + 1, describe_transport(transport))),
    );
    lines.extend(describe_thresholds(&plan.thresholds));
    lines.push(format!(
        "  run time:   about {} ({runs} run{} × {} each: ramp + warmup + duration + drain)",
        seconds(total),
        plural(runs),
        seconds(per_run),
    ));
    lines.join("\n") + "\n"
}

fn describe_target(target: &TargetPlan) -> String {
    match target {
        TargetPlan::Embedded => "embedded hub (started by pushbench for each run)".to_string(),
        TargetPlan::External { urls } => format!("external: {}", urls.join(", ")),
    }
}

fn describe_transport(transport: &TransportPlan) -> String {
    let options = match transport {
        TransportPlan::HttpPoll { interval, headers } => {
            format!("interval {}{}", seconds(*interval), custom_names(headers))
        }
        TransportPlan::HttpLongpoll { headers, timeout } => {
            format!("timeout {}{}", seconds(*timeout), custom_names(headers))
        }
        TransportPlan::Websocket { read_buffer_bytes } => {
            format!("read buffer {read_buffer_bytes} bytes")
        }
        TransportPlan::Mqtt(m) => {
            let will = match &m.last_will {
                Some(w) => format!(", last will on {:?} ({:?} cut)", w.topic, w.cut),
                None => String::new(),
            };
            format!(
                "topic {:?}, keep-alive {}, clean session {}, retain {}, inflight {}{will}",
                m.topic,
                seconds(m.keep_alive),
                m.clean_session,
                m.retain,
                m.inflight
            )
        }
    };
    format!("{}: {options}", transport.label())
}

/// One line per threshold, under a heading; nothing when the plan has none.
fn describe_thresholds(list: &[Threshold]) -> Vec<String> {
    if list.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["  thresholds: (a run that breaks one exits with code 99)".to_string()];
    lines.extend(list.iter().map(|t| format!("    {}: {t}", t.scope)));
    lines
}

/// The names of custom headers, so a summary shows what a `custom` profile sends.
fn custom_names(headers: &HeaderProfile) -> String {
    match headers {
        HeaderProfile::Custom(list) if !list.is_empty() => {
            let names: Vec<&str> = list.iter().map(|(name, _)| name.as_str()).collect();
            format!(", headers {}", names.join(", "))
        }
        _ => String::new(),
    }
}

/// A per-second rate with at most three decimals: "1/min" is 0.017/s, not 0.016666666666666666.
fn per_second(rate: f64) -> String {
    let rounded = format!("{rate:.3}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "0" {
        format!("{rate:.3e}")
    } else {
        trimmed.to_string()
    }
}

/// A duration rounded to milliseconds: finer digits are noise in a summary.
fn seconds(duration: Duration) -> String {
    let millis = Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(millis).to_string()
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Counts are range-checked against limits far below `u32::MAX` before this is called.
fn to_u32(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn name(root: &Section) -> Result<String> {
    const RULE: &str = "use only a-z, 0-9, '.', '_' and '-' (it names a results folder)";
    match root.get("name") {
        Some(item) => {
            let name = item.string("a name")?;
            if is_valid_name(name) {
                Ok(name.to_string())
            } else {
                Err(item.error(format!("{name:?} is not a valid name: {RULE}")))
            }
        }
        None => {
            let stem = Path::new(root.src.path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if is_valid_name(&stem) {
                Ok(stem)
            } else {
                Err(root.src.error(
                    &root.span,
                    "name",
                    format!(
                        "the file name gives the name {stem:?}, which is not valid: \
                         add name = \"...\" and {RULE}"
                    ),
                ))
            }
        }
    }
}

/// `[a-z0-9._-]+`, and not `.` or `..`, which would escape the results folder.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().any(|c| c != '.')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn optional_duration(
    section: &Section,
    key: &str,
    default: Duration,
    zero: Zero,
) -> Result<Duration> {
    match section.get(key) {
        Some(item) => item.duration(zero),
        None => Ok(default),
    }
}

/// `[messages]`: the per-channel rate and the payload size.
fn messages(root: &Section) -> Result<(f64, usize)> {
    let section = root
        .required(
            "messages",
            "a [messages] table with at least rate = \"1/s\"",
        )?
        .table()?;
    section.reject_unknown(MESSAGE_FIELDS)?;
    let rate = section
        .required(
            "rate",
            "messages published per second on each channel, e.g. rate = \"1/s\"",
        )?
        .rate(MAX_MESSAGE_RATE_PER_S)?;
    let payload_bytes = match section.get("payload_bytes") {
        Some(item) => {
            let noun = "payload size (16 bytes carry the sequence number and timestamp)";
            item.whole(noun, PAYLOAD_BYTES)? as usize
        }
        None => DEFAULT_PAYLOAD_BYTES,
    };
    Ok((rate, payload_bytes))
}

fn target(root: &Section) -> Result<TargetPlan> {
    let Some(item) = root.get("target") else {
        return Ok(TargetPlan::Embedded);
    };
    let section = item.table()?;
    section.reject_unknown(TARGET_FIELDS)?;
    let external = match section.get("kind") {
        Some(kind) => kind.choice("target kind", &[("embedded", false), ("external", true)])?,
        None => false,
    };
    match (external, section.get("urls")) {
        (false, None) => Ok(TargetPlan::Embedded),
        (false, Some(urls)) => Err(urls.key_error(
            "`urls` only applies to kind = \"external\": an embedded target is a hub \
             pushbench starts itself; remove `urls` or set kind = \"external\"",
        )),
        (true, None) => Err(section.missing(
            "urls",
            "an external target needs the servers' base URLs, \
             e.g. urls = [\"http://127.0.0.1:8080\"]",
        )),
        (true, Some(urls)) => Ok(TargetPlan::External {
            urls: target_urls(&urls)?,
        }),
    }
}

fn target_urls(item: &Item) -> Result<Vec<String>> {
    let list = item.array("an array of URLs such as [\"http://127.0.0.1:8080\"]")?;
    if list.is_empty() {
        return Err(item.error(
            "no URLs: an external target needs at least one, e.g. [\"http://127.0.0.1:8080\"]",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, value)| {
            let url_item = item.element(i, value);
            let url = url_item.string("a URL such as \"http://127.0.0.1:8080\"")?;
            check_url(url).map_err(|problem| {
                url_item.error(format!(
                    "{url:?} is not a valid target URL: {problem}; \
                     expected SCHEME://HOST:PORT such as \"http://127.0.0.1:8080\" \
                     (or mqtt://, ws:// for MQTT brokers)"
                ))
            })?;
            Ok(url.to_string())
        })
        .collect()
}

/// Checks `SCHEME://host:port[/...]`: `http://` for the HTTP and WebSocket transports,
/// `mqtt://` for MQTT over TCP, `ws://` for MQTT over WebSocket.
fn check_url(url: &str) -> std::result::Result<(), &'static str> {
    let rest = ["http://", "mqtt://", "ws://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or("it must start with http://, mqtt:// or ws://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').ok_or("it has no port")?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) {
        return Err("it has no host");
    }
    if host.contains(|c: char| c == '@' || c.is_whitespace()) {
        return Err("its host is not a plain host name or address");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("its port is not a number from 1 to 65535"),
    }
}

/// The kinds of `[[transports]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HttpPoll,
    HttpLongpoll,
    Websocket,
    Mqtt,
}

const KINDS: &[Kind] = &[
    Kind::HttpPoll,
    Kind::HttpLongpoll,
    Kind::Websocket,
    Kind::Mqtt,
];

/// Every transport field and the kinds that accept it.
const TRANSPORT_FIELDS: &[(&str, &[Kind])] = &[
    (
        "kind",
        &[
            Kind::HttpPoll,
            Kind::HttpLongpoll,
            Kind::Websocket,
            Kind::Mqtt,
        ],
    ),
    ("interval", &[Kind::HttpPoll]),
    ("headers", &[Kind::HttpPoll, Kind::HttpLongpoll]),
    ("custom_headers", &[Kind::HttpPoll, Kind::HttpLongpoll]),
    ("timeout", &[Kind::HttpLongpoll]),
    ("read_buffer_bytes", &[Kind::Websocket]),
    ("qos", &[Kind::Mqtt]),
    ("version", &[Kind::Mqtt]),
    ("over", &[Kind::Mqtt]),
    ("topic", &[Kind::Mqtt]),
    ("keep_alive", &[Kind::Mqtt]),
    ("clean_session", &[Kind::Mqtt]),
    ("retain", &[Kind::Mqtt]),
    ("inflight", &[Kind::Mqtt]),
    ("last_will", &[Kind::Mqtt]),
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::HttpPoll => "http-poll",
            Kind::HttpLongpoll => "http-longpoll",
            Kind::Websocket => "websocket",
            Kind::Mqtt => "mqtt",
        }
    }

    fn fields(self) -> Vec<&'static str> {
        TRANSPORT_FIELDS
            .iter()
            .filter(|(_, kinds)| kinds.contains(&self))
            .map(|(field, _)| *field)
            .collect()
    }
}

fn transports(root: &Section, channels: u64) -> Result<Vec<TransportPlan>> {
    let item = root.required(
        "transports",
        "at least one [[transports]] table, e.g. [[transports]] kind = \"websocket\"",
    )?;
    let list = item.array("an array of tables, written as [[transports]] sections")?;
    if list.is_empty() {
        return Err(item.error("no transports: expected at least one [[transports]] table"));
    }
    list.iter()
        .enumerate()
        .map(|(i, value)| transport(&item.element(i, value).table()?, channels))
        .collect()
}

fn transport(section: &Section, channels: u64) -> Result<TransportPlan> {
    let kinds: Vec<(&str, Kind)> = KINDS.iter().map(|kind| (kind.name(), *kind)).collect();
    let names: Vec<String> = KINDS
        .iter()
        .map(|kind| format!("{:?}", kind.name()))
        .collect();
    let kind = section
        .required("kind", &format!("one of {}", names.join(", ")))?
        .choice("transport kind", &kinds)?;
    check_transport_fields(section, kind)?;
    Ok(match kind {
        Kind::HttpPoll => TransportPlan::HttpPoll {
            interval: optional_duration(
                section,
                "interval",
                DEFAULT_POLL_INTERVAL,
                Zero::Forbidden,
            )?,
            headers: headers(section, channels)?,
        },
        Kind::HttpLongpoll => TransportPlan::HttpLongpoll {
            headers: headers(section, channels)?,
            timeout: optional_duration(
                section,
                "timeout",
                DEFAULT_LONGPOLL_TIMEOUT,
                Zero::Forbidden,
            )?,
        },
        Kind::Websocket => TransportPlan::Websocket {
            read_buffer_bytes: match section.get("read_buffer_bytes") {
                Some(item) => item.whole("read buffer size", READ_BUFFER_BYTES)? as usize,
                None => DEFAULT_READ_BUFFER_BYTES,
            },
        },
        Kind::Mqtt => TransportPlan::Mqtt(mqtt(section, channels)?),
    })
}

/// The options of an `mqtt` transport.
fn mqtt(section: &Section, channels: u64) -> Result<MqttPlan> {
    let qos = match section.get("qos") {
        Some(item) => item.whole("QoS level", 0..=2)? as u8,
        None => 0,
    };
    let version = match section.get("version") {
        Some(item) => item.choice(
            "MQTT version",
            &[("3.1.1", MqttVersion::V311), ("5", MqttVersion::V5)],
        )?,
        None => MqttVersion::V311,
    };
    let over = match section.get("over") {
        Some(item) => item.choice(
            "MQTT carrier",
            &[("tcp", MqttOver::Tcp), ("websocket", MqttOver::Websocket)],
        )?,
        None => MqttOver::Tcp,
    };
    let topic = match section.get("topic") {
        Some(item) => mqtt_topic(&item, channels)?,
        None => DEFAULT_MQTT_TOPIC.to_string(),
    };
    let keep_alive = match section.get("keep_alive") {
        Some(item) => {
            let keep_alive = item.duration(Zero::Allowed)?;
            if !keep_alive.is_zero()
                && (keep_alive.subsec_nanos() != 0 || keep_alive.as_secs() > 65_535)
            {
                return Err(item.error(
                    "MQTT keep-alive is a whole number of seconds up to 65535 (\"0s\" turns it off)",
                ));
            }
            keep_alive
        }
        None => DEFAULT_MQTT_KEEP_ALIVE,
    };
    Ok(MqttPlan {
        qos,
        version,
        over,
        topic,
        keep_alive,
        clean_session: optional_bool(section, "clean_session", true)?,
        retain: optional_bool(section, "retain", false)?,
        inflight: match section.get("inflight") {
            Some(item) => item.whole("inflight window", 1..=65_535)? as u16,
            None => DEFAULT_MQTT_INFLIGHT,
        },
        last_will: match section.get("last_will") {
            Some(item) => Some(last_will(&item)?),
            None => None,
        },
    })
}

/// A topic to publish to: no wildcards, and `{channel}` in it when there are several channels.
fn mqtt_topic(item: &Item, channels: u64) -> Result<String> {
    let topic = item.string("a topic such as \"bench/{channel}\"")?;
    if topic.is_empty() || topic.contains(['+', '#']) {
        return Err(item.error(format!(
            "{topic:?} is not a topic to publish to: it must be non-empty, without + or # wildcards"
        )));
    }
    if channels > 1 && !topic.contains("{channel}") {
        return Err(item.error(format!(
            "{topic:?} names no channel, but there are {channels} channels: put {{channel}} in it, \
             e.g. \"bench/{{channel}}\""
        )));
    }
    Ok(topic.to_string())
}

/// `last_will = { topic = "...", cut = "close" | "silence" }`.
fn last_will(item: &Item) -> Result<LastWillPlan> {
    let section = item.table()?;
    section.reject_unknown(&["topic", "cut"])?;
    let topic = match section.get("topic") {
        Some(topic) => topic
            .string("a topic such as \"wills/{client}\"")?
            .to_string(),
        None => "pushbench/will/{client}".to_string(),
    };
    let cut = match section.get("cut") {
        Some(cut) => cut.choice(
            "cut",
            &[("close", WillCut::Close), ("silence", WillCut::Silence)],
        )?,
        None => WillCut::Silence,
    };
    Ok(LastWillPlan { topic, cut })
}

fn optional_bool(section: &Section, key: &str, default: bool) -> Result<bool> {
    match section.get(key) {
        Some(item) => match item.value.get_ref() {
            DeValue::Boolean(flag) => Ok(*flag),
            other => Err(item.error(format!("expected true or false, found {}", shown(other)))),
        },
        None => Ok(default),
    }
}

/// Rejects unknown fields, and fields that belong to another kind of transport.
fn check_transport_fields(section: &Section, kind: Kind) -> Result<()> {
    for item in section.items() {
        let Some((_, kinds)) = TRANSPORT_FIELDS.iter().find(|(f, _)| *f == item.key) else {
            return Err(item.key_error(format!(
                "unknown field `{}`; valid fields for a {} transport are {}",
                item.key,
                kind.name(),
                kind.fields().join(", ")
            )));
        };
        if !kinds.contains(&kind) {
            let accepting: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            return Err(item.key_error(format!(
                "`{}` does not apply to a {} transport: only {} transports accept it",
                item.key,
                kind.name(),
                accepting.join(" and ")
            )));
        }
    }
    Ok(())
}

/// `[thresholds]`: per scope (`all`, a kind or a label of a listed transport), an array of
/// expressions such as "latency_p99_us < 50000".
fn thresholds(root: &Section, transports: &[TransportPlan]) -> Result<Vec<Threshold>> {
    let Some(item) = root.get("thresholds") else {
        return Ok(Vec::new());
    };
    let mut scopes = vec![thresholds::ALL.to_string()];
    for transport in transports {
        for name in [transport.kind().to_string(), transport.label()] {
            if !scopes.contains(&name) {
                scopes.push(name);
            }
        }
    }
    let mut list = Vec::new();
    for entry in item.table()?.items() {
        if !scopes.iter().any(|s| s == entry.key) {
            return Err(entry.key_error(format!(
                "`{}` names no transport of this scenario: expected one of {}",
                entry.key,
                scopes.join(", ")
            )));
        }
        let expressions =
            entry.array("an array of expressions such as [\"latency_p99_us < 50000\"]")?;
        for (i, value) in expressions.iter().enumerate() {
            let element = entry.element(i, value);
            let text = element.string("an expression such as \"latency_p99_us < 50000\"")?;
            list.push(
                thresholds::parse(entry.key, text).map_err(|e| element.error(e.to_string()))?,
            );
        }
    }
    Ok(list)
}

/// `headers` and `custom_headers` of an HTTP transport.
fn headers(section: &Section, channels: u64) -> Result<HeaderProfile> {
    const NOT_CUSTOM: &str = "`custom_headers` is only sent with headers = \"custom\"; \
                              set headers = \"custom\" or remove `custom_headers`";
    let profiles = [
        ("minimal", HeaderProfile::Minimal),
        ("browser", HeaderProfile::Browser),
        ("websocket-org-2010", HeaderProfile::WebsocketOrg2010),
        ("custom", HeaderProfile::Custom(Vec::new())),
    ];
    let custom = section.get("custom_headers");
    let Some(chosen) = section.get("headers") else {
        return match custom {
            Some(custom) => Err(custom.key_error(NOT_CUSTOM)),
            None => Ok(HeaderProfile::Minimal),
        };
    };
    match (chosen.choice("header profile", &profiles)?, custom) {
        (HeaderProfile::Custom(_), Some(custom)) => {
            Ok(HeaderProfile::Custom(custom_headers(&custom)?))
        }
        (HeaderProfile::Custom(_), None) => Err(chosen.error(
            "headers = \"custom\" needs a `custom_headers` table, \
             e.g. custom_headers = { \"X-Api-Key\" = \"abc\" }",
        )),
        (_, Some(custom)) => Err(custom.key_error(NOT_CUSTOM)),
        (HeaderProfile::WebsocketOrg2010, None) if channels > 1 => Err(chosen.error(format!(
            "\"websocket-org-2010\" requests the article's fixed path, which names no \
             channel, so it can only poll channel 0: it needs channels = 1, \
             but this scenario has channels = {channels}"
        ))),
        (profile, None) => Ok(profile),
    }
}

/// The custom header table, in file order (the request sends them in that order).
fn custom_headers(item: &Item) -> Result<Vec<(String, String)>> {
    let table = item.table()?;
    table
        .items()
        .into_iter()
        .map(|entry| {
            let name = entry.key;
            if !is_token(name) {
                return Err(entry.key_error(format!(
                    "{name:?} is not a valid HTTP header name: expected letters, digits \
                     and any of !#$%&'*+-.^_`|~"
                )));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(entry.key_error(format!(
                    "{name:?} is set by pushbench itself and cannot be a custom header"
                )));
            }
            let value = entry.string("a header value")?;
            if !value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
                return Err(entry.error(format!(
                    "{value:?} is not a valid header value: expected printable ASCII \
                     (no control characters or non-ASCII text)"
                )));
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// An RFC 9110 `token`, the grammar of header names.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Whether a duration may be zero (`warmup`, `drain`) or must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zero {
    Allowed,
    Forbidden,
}

/// The scenario text and its path, for turning spans into positioned errors.
struct Source<'a> {
    text: &'a str,
    path: &'a str,
}

impl Source<'_> {
    fn error(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> ScenarioError {
        let start = span.start.min(self.text.len());
        let before = self.text.get(..start).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let source_line = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        ScenarioError::Invalid {
            path: self.path.to_string(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            field: field.to_string(),
            message: message.into(),
            source_line,
        }
    }

    fn syntax_error(&self, error: &toml::de::Error) -> ScenarioError {
        let span = error.span().unwrap_or(0..0);
        self.error(&span, "", format!("invalid TOML: {}", error.message()))
    }
}

/// One table of the scenario, with the dotted path that names it in errors.
struct Section<'a> {
    src: &'a Source<'a>,
    table: &'a DeTable<'a>,
    /// Where a missing field is reported: the table's header, or the file start for the root.
    span: Range<usize>,
    path: String,
}

impl<'a> Section<'a> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<Item<'a>> {
        let (key, value) = self.table.get_key_value(key)?;
        Some(self.item(key, value))
    }

    fn item(&self, key: &'a Spanned<DeString<'a>>, value: &'a Spanned<DeValue<'a>>) -> Item<'a> {
        Item {
            src: self.src,
            key: key.get_ref(),
            field: self.field(key.get_ref()),
            key_span: key.span(),
            value,
        }
    }

    /// Entries in file order (the parsed table is sorted by key).
    fn items(&self) -> Vec<Item<'a>> {
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
            .into_iter()
            .map(|(key, value)| self.item(key, value))
            .collect()
    }

    fn required(&self, key: &str, hint: &str) -> Result<Item<'a>> {
        self.get(key).ok_or_else(|| self.missing(key, hint))
    }

    fn missing(&self, key: &str, hint: &str) -> ScenarioError {
        self.src.error(
            &self.span,
            &self.field(key),
            format!("missing required field `{key}`: {hint}"),
        )
    }

    fn reject_unknown(&self, valid: &[&str]) -> Result<()> {
        match self
            .items()
            .into_iter()
            .find(|item| !valid.contains(&item.key))
        {
            Some(item) => Err(item.key_error(format!(
                "unknown field `{}`; valid fields here are {}",
                item.key,
                valid.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// One value of the scenario with its key, position and dotted path.
struct Item<'a> {
    src: &'a Source<'a>,
    key: &'a str,
    field: String,
    key_span: Range<usize>,
    value: &'a Spanned<DeValue<'a>>,
}

impl<'a> Item<'a> {
    fn error(&self, message: impl Into<String>) -> ScenarioError {
        self.src.error(&self.value.span(), &self.field, message)
    }

    fn key_error(&self, message: impl Into<String>) -> ScenarioError {
        self.src.error(&self.key_span, &self.field, message)
    }

    /// The `index`th element of this array, named `field[index]`.
    fn element(&self, index: usize, value: &'a Spanned<DeValue<'a>>) -> Item<'a> {
        Item {
            src: self.src,
            key: self.key,
            field: format!("{}[{index}]", self.field),
            key_span: value.span(),
            value,
        }
    }

    fn table(&self) -> Result<Section<'a>> {
        match self.value.get_ref() {
            DeValue::Table(table) => Ok(Section {
                src: self.src,
                table,
                span: self.value.span(),
                path: self.field.clone(),
            }),
            other => Err(self.error(format!("expected a table, found {}", shown(other)))),
        }
    }

    fn array(&self, expected: &str) -> Result<&'a DeArray<'a>> {
        match self.value.get_ref() {
            DeValue::Array(array) => Ok(array),
            other => Err(self.error(format!("expected {expected}, found {}", shown(other)))),
        }
    }

    fn string(&self, expected: &str) -> Result<&'a str> {
        match self.value.get_ref() {
            DeValue::String(text) => Ok(text),
            other => Err(self.error(format!(
                "expected {expected} (a quoted string), found {}",
                shown(other)
            ))),
        }
    }

    fn whole(&self, noun: &str, range: RangeInclusive<u64>) -> Result<u64> {
        let value = match self.value.get_ref() {
            DeValue::Integer(int) => i64::from_str_radix(int.as_str(), int.radix()).ok(),
            _ => None,
        };
        match value.and_then(|v| u64::try_from(v).ok()) {
            Some(v) if range.contains(&v) => Ok(v),
            _ => Err(self.error(format!(
                "{} is not a valid {noun}: expected a whole number from {} to {}",
                shown(self.value.get_ref()),
                range.start(),
                range.end()
            ))),
        }
    }

    fn choice<T: Clone>(&self, noun: &str, options: &[(&str, T)]) -> Result<T> {
        let text = self.value.get_ref().as_str();
        match options.iter().find(|(name, _)| Some(*name) == text) {
            Some((_, value)) => Ok(value.clone()),
            None => {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
                Err(self.error(format!(
                    "{} is not a valid {noun}: expected one of {}",
                    shown(self.value.get_ref()),
                    names.join(", ")
                )))
            }
        }
    }

    fn duration(&self, zero: Zero) -> Result<Duration> {
        let text = self.string(DURATION_FORMS)?;
        let duration = humantime::parse_duration(text).map_err(|_| {
            self.error(format!(
                "{text:?} is not a valid duration: expected {DURATION_FORMS}"
            ))
        })?;
        if zero == Zero::Forbidden && duration.is_zero() {
            return Err(self.error(format!("{text:?} is too short: expected more than zero")));
        }
        Ok(duration)
    }

    /// A rate in events per second, `> 0` and `<= max`.
    fn rate(&self, max: f64) -> Result<f64> {
        let text = self.string(RATE_FORMS)?;
        let per_s = parse_rate(text).ok_or_else(|| {
            self.error(format!(
                "{text:?} is not a valid rate: expected a positive number per unit, {RATE_FORMS}"
            ))
        })?;
        if per_s > max {
            return Err(self.error(format!("{text:?} is too fast: expected at most {max}/s")));
        }
        Ok(per_s)
    }
}

/// `"<number>/<unit>"` in events per second; `None` unless positive and finite.
fn parse_rate(text: &str) -> Option<f64> {
    let (count, unit) = text.split_once('/')?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return None,
    };
    let count: f64 = count.trim().parse().ok()?;
    let per_s = count / seconds;
    (per_s.is_finite() && per_s > 0.0).then_some(per_s)
}

/// A value as it appears in an error message.
fn shown(value: &DeValue) -> String {
    match value {
        DeValue::String(text) => format!("{text:?}"),
        DeValue::Integer(int) => int.to_string(),
        DeValue::Float(float) => float.to_string(),
        DeValue::Boolean(flag) => flag.to_string(),
        DeValue::Datetime(datetime) => datetime.to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("`{field}`: ")
    }
}

/// The offending line with a caret under `column`; tabs are kept so the caret lines up.
fn snippet(line: usize, column: usize, source_line: &str) -> String {
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    let pad: String = source_line
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("  {number} | {source_line}\n  {gutter} | {pad}^")
}
