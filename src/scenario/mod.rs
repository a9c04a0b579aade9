//! Scenario files (TOML) → validated `Plan`.
//!
//! The file is parsed into toml's spanned document tree and walked by hand rather than
//! deserialized with serde: serde loses positions (tagged enums, missing fields), and every
//! error here must point at the exact key or value and name its dotted path, such as
//! `transports[2].interval`.
//!
//! This file reads the top-level fields; `transports` reads `[[transports]]`, `source` turns
//! toml spans into positioned errors, and `describe` summarises a plan for `pushbench validate`.

mod adapter;
mod describe;
mod network;
mod source;
mod tls;
mod transports;

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use crate::payload::{HEADER_BYTES, TEXT_HEADER_BYTES};
use crate::plan::{Plan, RunPlan, ScalePlan, TargetPlan, TargetProcesses};
use crate::thresholds::{self, Threshold};

pub use describe::describe;
use describe::per_second;
use source::{Item, Section, Source, Zero, field_prefix, snippet};

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

const DEFAULT_CONNECT_RATE_PER_S: f64 = 1000.0;
const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
const DEFAULT_PAYLOAD_BYTES: usize = 20;

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
    "network",
    "faults",
    "tls",
];
const MESSAGE_FIELDS: &[&str] = &["rate", "payload_bytes", "project_to"];
const SCALE_FIELDS: &[&str] = &["clients_per_worker", "clients_per_shard"];
const TARGET_FIELDS: &[&str] = &[
    "kind",
    "urls",
    "name",
    "pid",
    "pidfile",
    "process",
    "preset",
    "subscribe",
    "publish",
    "envelope",
];

/// The fields that name an external target's processes, for its cost; at most one of them.
const TARGET_PROCESS_FIELDS: [&str; 3] = ["pid", "pidfile", "process"];

/// Linux's largest process id (`/proc/sys/kernel/pid_max` can be at most 2^22).
const MAX_PID: u64 = 4_194_304;

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
/// `${NAME}` in adapter templates reads the process environment.
pub fn parse(source: &str, path: &str) -> std::result::Result<Plan, ScenarioError> {
    parse_with_env(source, path, &|name| std::env::var(name).ok())
}

/// `parse` with `${NAME}` resolved by `env` instead of the process environment, so that a
/// caller (a test, an embedding tool) need not change the environment of every thread.
pub fn parse_with_env(
    source: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Plan, ScenarioError> {
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
    let transports = transports::parse(&root, channels)?;
    let target = target(&root)?;
    let tls = tls::parse(&root, &target)?;
    let transports: Vec<RunPlan> = transports
        .into_iter()
        .zip(tls::per_transport(&root, &target, tls.as_ref())?)
        .map(|(transport, tls)| RunPlan { transport, tls })
        .collect();
    let thresholds = thresholds(&root, &transports)?;
    let network = network::parse(
        &root,
        warmup + duration,
        restart_refused(&target, &transports),
        matches!(target, TargetPlan::External { .. }),
    )?;
    if network.is_none() {
        blackhole_needs_a_link(&root, &transports)?;
    }
    let adapter = target_adapter(&root, env)?;
    text_stamp_fits(&root, &adapter, payload_bytes)?;
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
        target,
        transports,
        thresholds,
        project_rate_per_s,
        scale,
        adapter,
        network,
    })
}

/// Why a `restart` fault cannot be carried out for this target, if it cannot: only pushbench's
/// own hub and broker can be started again on the address its clients know.
fn restart_refused(target: &TargetPlan, transports: &[RunPlan]) -> Option<&'static str> {
    if transports.iter().any(|run| run.tls.is_some()) {
        // A restarted hub makes a new self-signed certificate, which its clients do not trust.
        return Some(
            "a restarted embedded hub generates a new certificate that its clients were never \
             told to trust, so they could not come back; restart a cleartext run (remove [tls] \
             and every tls = true)",
        );
    }
    matches!(target, TargetPlan::External { .. }).then_some(
        "an external server is started and stopped by you, not by pushbench; restart it \
         yourself during the run, or use the embedded target",
    )
}

/// A Last Will run cut by a blackhole needs the link the blackhole happens on.
fn blackhole_needs_a_link(root: &Section, transports: &[RunPlan]) -> Result<()> {
    let Some(i) = transports
        .iter()
        .position(|run| run.transport.will_cut() == Some(crate::plan::WillCut::Blackhole))
    else {
        return Ok(());
    };
    let cut = root
        .get("transports")
        .and_then(|list| match list.value.get_ref() {
            toml::de::DeValue::Array(a) => a.get(i).map(|v| list.element(i, v)),
            _ => None,
        })
        .and_then(|t| t.table().ok()?.get("last_will")?.table().ok()?.get("cut"));
    let message = "cut = \"blackhole\" silences the clients on the link: add a [network] table \
                   (an empty one is a link with no delay, loss or rate limit)";
    Err(match cut {
        Some(item) => item.error(message),
        None => root.src.error(&root.span, "transports", message),
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
    let processes = target_processes(&section)?;
    if let (false, Some(item)) = (external, &processes) {
        return Err(item.0.key_error(
            "`pid`, `pidfile` and `process` name the processes of an external target \
             (kind = \"external\"); an embedded one is pushbench's own, measured without them",
        ));
    }
    if let (false, Some(item)) = (external, section.get("name")) {
        return Err(item.key_error(
            "`name` names an external target (kind = \"external\"); the embedded one is \
             called \"embedded\"",
        ));
    }
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
            processes: processes.map(|(_, which)| which),
            name: target_name(&section)?,
        }),
    }
}

/// The adapter `[target]` describes (the hub's own layout for an embedded target, which
/// takes none).
fn target_adapter(root: &Section, env: adapter::Env) -> Result<crate::adapter::Adapter> {
    let Some(section) = root.get("target").map(|t| t.table()).transpose()? else {
        return Ok(Default::default());
    };
    let external = section
        .get("kind")
        .is_some_and(|kind| kind.value.get_ref().as_str() == Some("external"));
    if !external && let Some(item) = adapter::FIELDS.iter().find_map(|key| section.get(key)) {
        return Err(item.key_error(format!(
            "`{}` describes how to speak to an external target (kind = \"external\"); the \
             embedded hub speaks its own layout",
            item.key
        )));
    }
    adapter::parse(&section, env)
}

/// A text stamp found inside an envelope needs its mark: `TEXT_HEADER_BYTES` of payload.
fn text_stamp_fits(root: &Section, adapter: &crate::adapter::Adapter, size: usize) -> Result<()> {
    if adapter.encoding != crate::adapter::PayloadEncoding::Text || size >= TEXT_HEADER_BYTES {
        return Ok(());
    }
    let message = format!(
        "payload_bytes = {size} is too small for a text stamp (preset {:?} or \
         payload_encoding = \"text\"): expected at least {TEXT_HEADER_BYTES}",
        adapter.preset
    );
    let messages = root.required("messages", "a [messages] table")?.table()?;
    Err(match messages.get("payload_bytes") {
        Some(item) => item.error(message),
        None => messages.missing("payload_bytes", &message),
    })
}

/// `name = "mosquitto"`: what labels call the target where runs of several targets meet.
fn target_name(section: &Section) -> Result<Option<String>> {
    let Some(item) = section.get("name") else {
        return Ok(None);
    };
    let name = item.string("a short name such as \"mosquitto\"")?;
    if !is_valid_name(name) {
        return Err(item.error(format!(
            "{name:?} is not a valid target name: expected lowercase letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(Some(name.to_string()))
}

/// `pid = 1234`, `pidfile = "run/server.pid"` (relative to the scenario file) or
/// `process = "mosquitto"`: the external target's processes, whose CPU and memory the run
/// then measures.
fn target_processes<'a>(section: &Section<'a>) -> Result<Option<(Item<'a>, TargetProcesses)>> {
    let mut given = TARGET_PROCESS_FIELDS
        .iter()
        .filter_map(|key| section.get(key));
    let Some(item) = given.next() else {
        return Ok(None);
    };
    if let Some(second) = given.next() {
        return Err(second.key_error(
            "name the target's processes one way: `pid`, `pidfile` or `process`, not several",
        ));
    }
    let which = match item.key {
        "pid" => TargetProcesses::Pid(to_u32(item.whole("process id", 1..=MAX_PID)?)),
        "pidfile" => {
            let file = item.string("the path of a file holding the server's process id")?;
            let scenario_dir = Path::new(section.src.path)
                .parent()
                .unwrap_or(Path::new(""));
            TargetProcesses::Pidfile(scenario_dir.join(file))
        }
        _ => {
            let name = item.string("a process name such as \"mosquitto\" or \"nginx\"")?;
            if name.is_empty() || name.contains('/') {
                return Err(item.error(format!(
                    "{name:?} is not a process name: expected a command name such as \"nginx\""
                )));
            }
            TargetProcesses::Name(name.to_string())
        }
    };
    Ok(Some((item, which)))
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
    let rest = [
        "http://", "mqtt://", "ws://", "https://", "mqtts://", "wss://",
    ]
    .iter()
    .find_map(|scheme| url.strip_prefix(scheme))
    .ok_or("it must start with http://, mqtt:// or ws:// (https://, mqtts://, wss://)")?;
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

/// `[thresholds]`: per scope (`all`, a kind or a label of a listed transport), an array of
/// expressions such as "latency_p99_us < 50000".
fn thresholds(root: &Section, transports: &[RunPlan]) -> Result<Vec<Threshold>> {
    let Some(item) = root.get("thresholds") else {
        return Ok(Vec::new());
    };
    let mut scopes = vec![thresholds::ALL.to_string()];
    for run in transports {
        for name in [run.transport.kind().to_string(), run.label()] {
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
