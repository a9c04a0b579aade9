//! `[target]`'s adapter: `preset = "…"` and the `[target.subscribe]`, `[target.publish]` and
//! `[target.envelope]` tables that override it. Templates are parsed here, so an unknown
//! placeholder or an unset `${VARIABLE}` is an error at its position in the file.

use super::Result;
use super::source::{Item, Section};
use crate::adapter::{
    Adapter, Frame, HttpPublish, PayloadEncoding, Placeholder, Placement, Publish, Reply, Template,
    WebSocketPublish, preset,
};

/// `[target]` keys that shape the adapter.
pub(super) const FIELDS: [&str; 4] = ["preset", "subscribe", "publish", "envelope"];

const SUBSCRIBE_FIELDS: &[&str] = &[
    "http-poll",
    "http-longpoll",
    "sse",
    "websocket",
    "headers",
    "subprotocols",
    "frames",
    "ready",
    "replies",
];
const PUBLISH_FIELDS: &[&str] = &[
    "kind", "method", "url", "headers", "body", "payload", "frames", "message",
];
const ENVELOPE_FIELDS: &[&str] = &["payload_encoding"];
const REPLY_FIELDS: &[&str] = &["on", "send"];
const FRAME_FIELDS: &[&str] = &["text", "binary"];

/// Placeholders of what a subscriber sends.
const SUBSCRIBER: &[Placeholder] = &[Placeholder::Channel, Placeholder::Client];
/// Placeholders of a publish request's URL and headers.
const PUBLISH_TARGET: &[Placeholder] = &[Placeholder::Channel];
/// Placeholders of a publish body or frame.
const PUBLISH_BODY: &[Placeholder] = &[
    Placeholder::Channel,
    Placeholder::Size,
    Placeholder::Payload,
];

/// Resolves `${NAME}`: the process environment, or a test's.
pub(super) type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// The adapter of an external target: its preset with the tables' overrides.
pub(super) fn parse(target: &Section, env: Env) -> Result<Adapter> {
    let mut adapter = match target.get("preset") {
        Some(item) => {
            let name = item.string("a preset name")?;
            preset::named(name).ok_or_else(|| {
                item.error(format!(
                    "unknown preset {name:?}: expected one of {}",
                    quoted(&preset::NAMES)
                ))
            })?
        }
        None => Adapter::default(),
    };
    if let Some(item) = target.get("subscribe") {
        subscribe(&item.table()?, &mut adapter, env)?;
    }
    let mut encoding_given = None;
    if let Some(item) = target.get("envelope") {
        let section = item.table()?;
        section.reject_unknown(ENVELOPE_FIELDS)?;
        if let Some(item) = section.get("payload_encoding") {
            let encoding = item.choice(
                "payload encoding",
                &[
                    ("binary", PayloadEncoding::Binary),
                    ("text", PayloadEncoding::Text),
                ],
            )?;
            adapter.encoding = encoding;
            encoding_given = Some(item);
        }
    }
    if let Some(item) = target.get("publish") {
        publish(&item.table()?, &mut adapter, env)?;
    }
    let placement = match &adapter.publish {
        Publish::Http(p) => p.payload,
        Publish::WebSocket(p) => p.payload,
    };
    if placement.is_text() && adapter.encoding == PayloadEncoding::Binary {
        match encoding_given {
            Some(item) => {
                return Err(item.error(
                    "payload_encoding = \"binary\" cannot go with a publish payload placed as \
                     \"text\" or \"json\": use payload_encoding = \"text\" or payload = \"raw\" \
                     or \"base64\"",
                ));
            }
            None => adapter.encoding = PayloadEncoding::Text,
        }
    }
    Ok(adapter)
}

fn subscribe(section: &Section, adapter: &mut Adapter, env: Env) -> Result<()> {
    section.reject_unknown(SUBSCRIBE_FIELDS)?;
    let s = &mut adapter.subscribe;
    for (key, slot) in [
        ("http-poll", &mut s.http_poll),
        ("http-longpoll", &mut s.http_longpoll),
        ("sse", &mut s.sse),
        ("websocket", &mut s.websocket),
    ] {
        if let Some(item) = section.get(key) {
            *slot = path(&item, SUBSCRIBER, env)?;
        }
    }
    if let Some(item) = section.get("headers") {
        s.headers = headers(&item, SUBSCRIBER, env)?;
    }
    if let Some(item) = section.get("subprotocols") {
        s.subprotocols = strings(&item, "a subprotocol name such as \"mqtt\"")?;
    }
    if let Some(item) = section.get("frames") {
        s.frames = frames(&item, SUBSCRIBER, env)?;
    }
    if let Some(item) = section.get("ready") {
        s.ready = Some(non_empty(
            &item,
            "the text that says the subscription holds",
        )?);
    }
    if let Some(item) = section.get("replies") {
        s.replies = replies(&item)?;
    }
    Ok(())
}

fn publish(section: &Section, adapter: &mut Adapter, env: Env) -> Result<()> {
    section.reject_unknown(PUBLISH_FIELDS)?;
    if let Some(item) = section.get("kind") {
        let http = item.choice("publish kind", &[("http", true), ("websocket", false)])?;
        let same = matches!(
            (&adapter.publish, http),
            (Publish::Http(_), true) | (Publish::WebSocket(_), false)
        );
        if !same {
            adapter.publish = if http {
                preset::pushbench().publish
            } else {
                Publish::WebSocket(WebSocketPublish {
                    url: Template::literal("/"),
                    frames: Vec::new(),
                    message: Frame {
                        template: Template::parse("{payload}", PUBLISH_BODY, env)
                            .unwrap_or_default(),
                        binary: true,
                    },
                    payload: Placement::Raw,
                })
            };
        }
    }
    let payload = section
        .get("payload")
        .map(|item| item.choice("payload placement", &Placement::NAMES))
        .transpose()?;
    match &mut adapter.publish {
        Publish::Http(p) => http_publish(section, p, payload, env),
        Publish::WebSocket(p) => websocket_publish(section, p, payload, env),
    }
}

fn http_publish(
    section: &Section,
    p: &mut HttpPublish,
    payload: Option<Placement>,
    env: Env,
) -> Result<()> {
    only_for(section, &["frames", "message"], "kind = \"websocket\"")?;
    if let Some(item) = section.get("method") {
        let method = item.string("an HTTP method such as \"POST\"")?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(item.error(format!(
                "{method:?} is not an HTTP method: expected capitals such as \"POST\" or \"PUT\""
            )));
        }
        p.method = method.to_string();
    }
    if let Some(item) = section.get("url") {
        p.url = path(&item, PUBLISH_TARGET, env)?;
    }
    if let Some(item) = section.get("headers") {
        p.headers = headers(&item, PUBLISH_TARGET, env)?;
    }
    if let Some(item) = section.get("body") {
        p.body = template(&item, PUBLISH_BODY, env)?;
    }
    if let Some(placement) = payload {
        p.payload = placement;
    }
    Ok(())
}

fn websocket_publish(
    section: &Section,
    p: &mut WebSocketPublish,
    payload: Option<Placement>,
    env: Env,
) -> Result<()> {
    only_for(section, &["method", "headers", "body"], "kind = \"http\"")?;
    if let Some(item) = section.get("url") {
        p.url = path(&item, PUBLISH_TARGET, env)?;
    }
    if let Some(item) = section.get("frames") {
        p.frames = frames(&item, PUBLISH_TARGET, env)?;
    }
    if let Some(item) = section.get("message") {
        p.message = frame(&item, PUBLISH_BODY, env)?;
    }
    if let Some(placement) = payload {
        p.payload = placement;
    }
    Ok(())
}

/// Rejects fields of the other publish kind.
fn only_for(section: &Section, keys: &[&str], kind: &str) -> Result<()> {
    match keys.iter().find_map(|key| section.get(key)) {
        Some(item) => Err(item.key_error(format!(
            "`{}` belongs to a publish of {kind}; set kind = … to choose it",
            item.key
        ))),
        None => Ok(()),
    }
}

fn template(item: &Item, allowed: &[Placeholder], env: Env) -> Result<Template> {
    let text = item.string("a template such as \"/sub/{channel}\"")?;
    Template::parse(text, allowed, env).map_err(|e| item.error(e.to_string()))
}

/// A request target: a path starting with `/`, or an absolute `http://` / `ws://` URL.
fn path(item: &Item, allowed: &[Placeholder], env: Env) -> Result<Template> {
    let text = item.string("a path such as \"/sub/{channel}\"")?;
    if !["/", "http://", "ws://"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return Err(item.error(format!(
            "{text:?} is not a request target: expected a path starting with '/' \
             or an absolute http:// URL"
        )));
    }
    template(item, allowed, env)
}

fn headers(item: &Item, allowed: &[Placeholder], env: Env) -> Result<Vec<(String, Template)>> {
    item.table()?
        .items()
        .iter()
        .map(|entry| {
            let valid = !entry.key.is_empty()
                && entry
                    .key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid {
                return Err(entry.key_error(format!(
                    "{:?} is not a header name: expected letters, digits and '-'",
                    entry.key
                )));
            }
            Ok((entry.key.to_string(), template(entry, allowed, env)?))
        })
        .collect()
}

fn strings(item: &Item, expected: &str) -> Result<Vec<String>> {
    let list = item.array(&format!("an array of strings, each {expected}"))?;
    list.iter()
        .enumerate()
        .map(|(i, value)| non_empty(&item.element(i, value), expected))
        .collect()
}

fn non_empty(item: &Item, expected: &str) -> Result<String> {
    let text = item.string(expected)?;
    if text.is_empty() {
        return Err(item.error(format!("empty: expected {expected}")));
    }
    Ok(text.to_string())
}

fn frames(item: &Item, allowed: &[Placeholder], env: Env) -> Result<Vec<Frame>> {
    let list = item.array("an array of frames, each a string or { binary = \"…\" }")?;
    list.iter()
        .enumerate()
        .map(|(i, value)| frame(&item.element(i, value), allowed, env))
        .collect()
}

/// A frame: a string (a text frame), `{ text = "…" }` or `{ binary = "…" }`.
fn frame(item: &Item, allowed: &[Placeholder], env: Env) -> Result<Frame> {
    if item.value.get_ref().as_str().is_some() {
        return Ok(Frame {
            template: template(item, allowed, env)?,
            binary: false,
        });
    }
    let table = item.table()?;
    table.reject_unknown(FRAME_FIELDS)?;
    match (table.get("text"), table.get("binary")) {
        (Some(text), None) => Ok(Frame {
            template: template(&text, allowed, env)?,
            binary: false,
        }),
        (None, Some(binary)) => Ok(Frame {
            template: template(&binary, allowed, env)?,
            binary: true,
        }),
        (Some(_), Some(second)) => Err(second.key_error("a frame is `text` or `binary`, not both")),
        (None, None) => Err(table.missing("text", "a frame's `text = \"…\"` or `binary = \"…\"`")),
    }
}

fn replies(item: &Item) -> Result<Vec<Reply>> {
    let list = item.array("an array of { on = \"PING\\r\\n\", send = \"PONG\\r\\n\" }")?;
    list.iter()
        .enumerate()
        .map(|(i, value)| {
            let table = item.element(i, value).table()?;
            table.reject_unknown(REPLY_FIELDS)?;
            let on = table.required("on", "the keep-alive text, e.g. on = \"PING\\r\\n\"")?;
            let send = table.required("send", "the answer, e.g. send = \"PONG\\r\\n\"")?;
            Ok(Reply {
                on: non_empty(&on, "the keep-alive text to answer")?,
                send: non_empty(&send, "the answer to send")?,
            })
        })
        .collect()
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
