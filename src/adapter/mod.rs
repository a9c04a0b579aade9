//! How pushbench speaks to a server it did not write: where clients subscribe, what they send
//! after connecting, how they answer the server's keep-alives, how messages get in, and how a
//! payload sits inside what the server delivers. Presets (`preset.rs`) cover known servers;
//! a scenario's `[target.subscribe]`, `[target.publish]` and `[target.envelope]` override them.
//!
//! Overhead stays "every byte that is not the payload": an envelope's bytes are measured as
//! the server's cost of delivering, never taken off.

pub mod preset;
pub mod template;

use base64::Engine;
use serde::{Deserialize, Serialize};

pub use template::{Placeholder, Template, TemplateError, Vars};

/// Characters of an unrecognised message that a diagnosis quotes.
const QUOTED_CHARS: usize = 200;

/// A resolved adapter: a preset with the scenario's overrides applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adapter {
    /// The preset it started from, for `describe` and error texts.
    pub preset: String,
    pub subscribe: Subscribe,
    pub publish: Publish,
    pub encoding: PayloadEncoding,
}

impl Default for Adapter {
    /// The embedded hub's own layout.
    fn default() -> Adapter {
        preset::pushbench()
    }
}

/// How the payload's stamp travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadEncoding {
    /// The payload is the whole message, its stamp in its first 16 bytes.
    Binary,
    /// Printable ASCII (`Stamp::encode_text`), found anywhere inside a delivered message.
    Text,
}

/// Where and how clients subscribe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Request targets (paths) per transport; `{channel}` and `{client}` are filled in.
    pub http_poll: Template,
    pub http_longpoll: Template,
    pub sse: Template,
    pub websocket: Template,
    /// Request headers added to every subscribe request (and the WebSocket handshake).
    pub headers: Vec<(String, Template)>,
    /// `Sec-WebSocket-Protocol` values offered in the handshake.
    pub subprotocols: Vec<String>,
    /// Frames a WebSocket client sends right after its handshake (a subscribe message).
    pub frames: Vec<Frame>,
    /// Text the server sends once the subscription holds (NATS: the `PONG` to a `PING`
    /// sent after `SUB`); connecting waits for it, so that setup ends where delivery can begin.
    pub ready: Option<String>,
    /// The server's application-level keep-alives and the client's answers.
    pub replies: Vec<Reply>,
}

/// A frame to send, with its placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub template: Template,
    /// A binary frame instead of a text one.
    pub binary: bool,
}

/// When a received frame contains `on`, the client answers `send` (a text frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub on: String,
    pub send: String,
}

/// How messages get into the target (for every transport but MQTT, which publishes MQTT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Publish {
    Http(HttpPublish),
    WebSocket(WebSocketPublish),
}

/// One HTTP request per message on a keep-alive connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpPublish {
    pub method: String,
    /// A path on the target's endpoint, or an absolute `http://host:port/path` (a separate
    /// publish port, such as Pushpin's 5561).
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Template,
    pub payload: Placement,
}

/// One frame per message on a publisher WebSocket connection per channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSocketPublish {
    pub url: Template,
    /// Sent once after the handshake (NATS: `CONNECT {...}`).
    pub frames: Vec<Frame>,
    pub message: Frame,
    pub payload: Placement,
}

/// How the payload is written into a publish body or frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// The payload's bytes as they are.
    Raw,
    /// The payload's text form, as it is.
    Text,
    /// Standard base64 of the payload (the server is expected to decode it).
    Base64,
    /// The text form, escaped for the inside of a JSON string.
    Json,
}

impl Placement {
    pub const NAMES: [(&'static str, Placement); 4] = [
        ("raw", Placement::Raw),
        ("text", Placement::Text),
        ("base64", Placement::Base64),
        ("json", Placement::Json),
    ];

    /// Whether the placement needs the payload's text form.
    pub fn is_text(self) -> bool {
        matches!(self, Placement::Text | Placement::Json)
    }

    /// The payload as it goes into the template's `{payload}`.
    pub fn place(self, payload: &[u8]) -> Vec<u8> {
        match self {
            Placement::Raw | Placement::Text => payload.to_vec(),
            Placement::Base64 => base64::engine::general_purpose::STANDARD
                .encode(payload)
                .into_bytes(),
            Placement::Json => {
                let quoted = serde_json::Value::String(String::from_utf8_lossy(payload).into());
                let quoted = quoted.to_string();
                quoted.as_bytes()[1..quoted.len() - 1].to_vec()
            }
        }
    }
}

impl Adapter {
    /// One line for `pushbench validate`: the preset, how payloads travel, how they get in
    /// (header values are left out: they may hold secrets).
    pub fn summary(&self) -> String {
        let stamps = match self.encoding {
            PayloadEncoding::Binary => "binary",
            PayloadEncoding::Text => "text",
        };
        let publish = match &self.publish {
            Publish::Http(p) => format!("HTTP {} {}", p.method, p.url),
            Publish::WebSocket(p) => format!("a WebSocket frame on {}", p.url),
        };
        format!(
            "preset {:?}, {stamps} payload stamps, published by {publish}",
            self.preset
        )
    }

    /// The subscribe headers, rendered.
    pub fn subscribe_headers(&self, vars: &Vars) -> Vec<(String, String)> {
        render_headers(&self.subscribe.headers, vars)
    }

    /// The reply to a keep-alive in `frame`, if it is one.
    pub fn reply_to(&self, frame: &[u8]) -> Option<&str> {
        self.subscribe
            .replies
            .iter()
            .find(|r| contains(frame, r.on.as_bytes()))
            .map(|r| r.send.as_str())
    }
}

/// Header names with their values rendered.
pub fn render_headers(headers: &[(String, Template)], vars: &Vars) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.clone(), value.render_text(vars)))
        .collect()
}

/// The start of a message, printable, for a diagnosis of what the server sent instead.
pub fn quote(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(&message[..message.len().min(QUOTED_CHARS)]);
    let ellipsis = if message.len() > QUOTED_CHARS {
        "…"
    } else {
        ""
    };
    format!("{text:?}{ellipsis} ({} bytes)", message.len())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_write_the_payload_raw_base64_or_json_escaped() {
        assert_eq!(Placement::Raw.place(b"a\"b"), b"a\"b");
        assert_eq!(Placement::Base64.place(b"abcd"), b"YWJjZA==");
        assert_eq!(Placement::Json.place(b"a\"b\\c"), b"a\\\"b\\\\c");
        let stamp = crate::payload::Stamp {
            seq: 3,
            intended_us: 9,
        }
        .encode_text(40);
        assert_eq!(Placement::Json.place(stamp.as_bytes()), stamp.as_bytes());
    }

    #[test]
    fn keep_alives_are_answered_and_other_frames_are_not() {
        let adapter = preset::nats();
        assert_eq!(adapter.reply_to(b"PING\r\n"), Some("PONG\r\n"));
        assert_eq!(adapter.reply_to(b"+OK\r\n"), None);
        assert_eq!(Adapter::default().reply_to(b"PING\r\n"), None);
    }
}
