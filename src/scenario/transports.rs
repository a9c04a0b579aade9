//! `[[transports]]`: the transport kinds, the options each accepts, MQTT and its last will,
//! and the header profiles and custom headers of the HTTP transports.

use std::ops::RangeInclusive;
use std::time::Duration;

use toml::de::DeValue;

use super::source::{Item, Section, Zero, shown};
use super::{Result, optional_duration};
use crate::plan::{
    HttpVersion, LastWillPlan, MqttClient, MqttOver, MqttPlan, MqttVersion, TransportPlan, WillCut,
};
use crate::profile::HeaderProfile;

const READ_BUFFER_BYTES: RangeInclusive<u64> = 256..=1_048_576;

const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_LONGPOLL_TIMEOUT: Duration = Duration::from_secs(30);
/// Room for a few dozen small frames per read; it is held by every client for its whole life.
const DEFAULT_READ_BUFFER_BYTES: usize = 512;
const DEFAULT_MQTT_TOPIC: &str = "bench/{channel}";
/// Long enough that no PINGREQ falls into a typical measured window; 60 s is what clients
/// commonly use.
const DEFAULT_MQTT_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// rumqttc pre-sizes per-client state from it: small keeps 100k clients affordable.
const DEFAULT_MQTT_INFLIGHT: u16 = 10;

/// Header names pushbench writes itself; a custom copy would duplicate them or break framing.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "if-none-match",
    "if-modified-since",
];

/// The kinds of `[[transports]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HttpPoll,
    HttpLongpoll,
    Sse,
    Websocket,
    Mqtt,
}

const KINDS: &[Kind] = &[
    Kind::HttpPoll,
    Kind::HttpLongpoll,
    Kind::Sse,
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
            Kind::Sse,
            Kind::Websocket,
            Kind::Mqtt,
        ],
    ),
    ("interval", &[Kind::HttpPoll]),
    ("headers", &[Kind::HttpPoll, Kind::HttpLongpoll, Kind::Sse]),
    (
        "custom_headers",
        &[Kind::HttpPoll, Kind::HttpLongpoll, Kind::Sse],
    ),
    ("http", &[Kind::HttpPoll, Kind::HttpLongpoll, Kind::Sse]),
    ("timeout", &[Kind::HttpLongpoll]),
    ("keepalive", &[Kind::Sse]),
    ("read_buffer_bytes", &[Kind::Websocket]),
    ("ping", &[Kind::Websocket]),
    ("qos", &[Kind::Mqtt]),
    ("version", &[Kind::Mqtt]),
    ("over", &[Kind::Mqtt]),
    ("topic", &[Kind::Mqtt]),
    ("keep_alive", &[Kind::Mqtt]),
    ("clean_session", &[Kind::Mqtt]),
    ("retain", &[Kind::Mqtt]),
    ("inflight", &[Kind::Mqtt]),
    ("last_will", &[Kind::Mqtt]),
    ("client", &[Kind::Mqtt]),
    (
        "tls",
        &[
            Kind::HttpPoll,
            Kind::HttpLongpoll,
            Kind::Sse,
            Kind::Websocket,
            Kind::Mqtt,
        ],
    ),
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::HttpPoll => "http-poll",
            Kind::HttpLongpoll => "http-longpoll",
            Kind::Sse => "sse",
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

/// `[[transports]]`, in file order.
pub(super) fn parse(root: &Section, channels: u64) -> Result<Vec<TransportPlan>> {
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
            http: http_version(section)?,
        },
        Kind::HttpLongpoll => TransportPlan::HttpLongpoll {
            headers: headers(section, channels)?,
            http: http_version(section)?,
            timeout: optional_duration(
                section,
                "timeout",
                DEFAULT_LONGPOLL_TIMEOUT,
                Zero::Forbidden,
            )?,
        },
        Kind::Sse => TransportPlan::Sse {
            headers: headers(section, channels)?,
            http: http_version(section)?,
            keepalive: match section.get("keepalive") {
                Some(item) => Some(item.duration(Zero::Forbidden)?),
                None => None,
            },
        },
        Kind::Websocket => TransportPlan::Websocket {
            read_buffer_bytes: match section.get("read_buffer_bytes") {
                Some(item) => item.whole("read buffer size", READ_BUFFER_BYTES)? as usize,
                None => DEFAULT_READ_BUFFER_BYTES,
            },
            ping: match section.get("ping") {
                Some(item) => Some(item.duration(Zero::Forbidden)?),
                None => None,
            },
        },
        Kind::Mqtt => TransportPlan::Mqtt(mqtt(section, channels)?),
    })
}

/// `http = "1.1"` (the default) or `"2"`.
fn http_version(section: &Section) -> Result<HttpVersion> {
    match section.get("http") {
        Some(item) => item.choice(
            "HTTP version",
            &[
                (HttpVersion::Http11.name(), HttpVersion::Http11),
                (HttpVersion::Http2.name(), HttpVersion::Http2),
            ],
        ),
        None => Ok(HttpVersion::Http11),
    }
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
    let client = match section.get("client") {
        Some(item) => item.choice(
            "MQTT client",
            &[("rumqttc", MqttClient::Rumqttc), ("lean", MqttClient::Lean)],
        )?,
        None => MqttClient::Rumqttc,
    };
    let plan = MqttPlan {
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
        client,
    };
    if client == MqttClient::Lean {
        lean_supports(section, &plan)?;
    }
    Ok(plan)
}

/// The lean client speaks MQTT 3.1.1 over TCP (or TLS) without a will: anything else is an
/// error at the field that asks for it.
fn lean_supports(section: &Section, plan: &MqttPlan) -> Result<()> {
    let unsupported = [
        ("over", plan.over != MqttOver::Tcp, "over = \"tcp\""),
        (
            "version",
            plan.version != MqttVersion::V311,
            "version = \"3.1.1\"",
        ),
        ("last_will", plan.last_will.is_some(), "no last_will"),
    ];
    for (field, asked, valid) in unsupported {
        if let (true, Some(item)) = (asked, section.get(field)) {
            return Err(item.error(format!(
                "client = \"lean\" speaks MQTT 3.1.1 over TCP or TLS, without a will: valid \
                 here is {valid}, or client = \"rumqttc\""
            )));
        }
    }
    Ok(())
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
            &[
                ("close", WillCut::Close),
                ("silence", WillCut::Silence),
                ("blackhole", WillCut::Blackhole),
            ],
        )?,
        None => WillCut::Silence,
    };
    Ok(LastWillPlan { topic, cut })
}

pub(super) fn optional_bool(section: &Section, key: &str, default: bool) -> Result<bool> {
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

/// `headers` and `custom_headers` of an HTTP transport.
fn headers(section: &Section, channels: u64) -> Result<HeaderProfile> {
    const NOT_CUSTOM: &str = "`custom_headers` is only sent with headers = \"custom\"; \
                              set headers = \"custom\" or remove `custom_headers`";
    let profiles: Vec<(&str, HeaderProfile)> = HeaderProfile::NAMED
        .into_iter()
        .chain([HeaderProfile::Custom(Vec::new())])
        .map(|profile| (profile.name(), profile))
        .collect();
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
