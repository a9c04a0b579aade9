//! Adapters for known servers: a scenario names one (`preset = "nats"`) and overrides what
//! differs. Each matches the layout its start script under `scripts/targets/` configures.

use super::template::{Placeholder, Template};
use super::{
    Adapter, Frame, HttpPublish, PayloadEncoding, Placement, Publish, Reply, Subscribe,
    WebSocketPublish,
};

/// Every preset's name, in the order errors list them.
pub const NAMES: [&str; 5] = ["pushbench", "nchan", "mosquitto", "nats", "pushpin"];

/// The preset called `name`.
pub fn named(name: &str) -> Option<Adapter> {
    match name {
        "pushbench" => Some(pushbench()),
        "nchan" => Some(nchan()),
        "mosquitto" => Some(mosquitto()),
        "nats" => Some(nats()),
        "pushpin" => Some(pushpin()),
        _ => None,
    }
}

/// A template of the presets' own text, whose placeholders are known to be valid.
fn t(text: &str) -> Template {
    const ALL: &[Placeholder] = &[
        Placeholder::Channel,
        Placeholder::Client,
        Placeholder::Size,
        Placeholder::Payload,
    ];
    Template::parse(text, ALL, &|_| None).unwrap_or_else(|_| Template::literal(text))
}

/// The embedded hub: `GET /sub/{poll,longpoll,sse,ws}/{channel}`, `POST /pub/{channel}` with
/// the payload as the whole body and the whole message.
pub fn pushbench() -> Adapter {
    Adapter {
        preset: "pushbench".into(),
        subscribe: Subscribe {
            http_poll: t("/sub/poll/{channel}"),
            http_longpoll: t("/sub/longpoll/{channel}"),
            sse: t("/sub/sse/{channel}"),
            websocket: t("/sub/ws/{channel}"),
            headers: Vec::new(),
            subprotocols: Vec::new(),
            frames: Vec::new(),
            ready: None,
            replies: Vec::new(),
        },
        publish: Publish::Http(HttpPublish {
            method: "POST".into(),
            url: t("/pub/{channel}"),
            headers: Vec::new(),
            body: t("{payload}"),
            payload: Placement::Raw,
        }),
        encoding: PayloadEncoding::Binary,
    }
}

/// nginx + nchan as `scripts/targets/nchan.sh` configures it: the hub's layout.
pub fn nchan() -> Adapter {
    Adapter {
        preset: "nchan".into(),
        ..pushbench()
    }
}

/// mosquitto speaks MQTT only: topics come from the transport (`topic = "bench/{channel}"`).
pub fn mosquitto() -> Adapter {
    Adapter {
        preset: "mosquitto".into(),
        ..pushbench()
    }
}

/// NATS's WebSocket listener, which speaks the NATS text protocol: subscribe with `CONNECT`,
/// `SUB bench.{channel} 1` and a `PING` whose `PONG` says the subscription holds; messages
/// arrive as `MSG bench.{channel} 1 <size>\r\n<payload>\r\n`; the server's `PING` is answered
/// `PONG`; the publisher sends `PUB` on its own WebSocket connection.
pub fn nats() -> Adapter {
    const CONNECT: &str = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n";
    let text = |s: &str| Frame {
        template: t(s),
        binary: false,
    };
    Adapter {
        preset: "nats".into(),
        subscribe: Subscribe {
            websocket: t("/"),
            frames: vec![text(&format!(
                "{CONNECT}SUB bench.{{channel}} 1\r\nPING\r\n"
            ))],
            ready: Some("PONG\r\n".into()),
            replies: vec![Reply {
                on: "PING\r\n".into(),
                send: "PONG\r\n".into(),
            }],
            ..pushbench().subscribe
        },
        publish: Publish::WebSocket(WebSocketPublish {
            url: t("/"),
            frames: vec![text(CONNECT)],
            message: text("PUB bench.{channel} {size}\r\n{payload}\r\n"),
            payload: Placement::Text,
        }),
        encoding: PayloadEncoding::Text,
    }
}

/// Pushpin in front of the origins `scripts/targets/pushpin.sh` configures: messages are
/// published, through Pushpin, to the hub acting as GRIP origin (`pushbench serve --grip`),
/// which stores each and forwards it to Pushpin's JSON publish API with its `id` and
/// `prev-id` (so long polls lose nothing between requests); held connections subscribe to
/// `bench.{channel}`. Payloads are text, for the JSON strings and `data:` lines they travel in.
pub fn pushpin() -> Adapter {
    Adapter {
        preset: "pushpin".into(),
        subscribe: Subscribe {
            http_poll: t("/sub/longpoll/{channel}"),
            ..pushbench().subscribe
        },
        publish: Publish::Http(HttpPublish {
            method: "POST".into(),
            url: t("/pub/{channel}"),
            headers: Vec::new(),
            body: t("{payload}"),
            payload: Placement::Text,
        }),
        encoding: PayloadEncoding::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Vars;

    #[test]
    fn every_named_preset_exists_and_keeps_its_placeholders() {
        for name in NAMES {
            let adapter = named(name).unwrap();
            assert_eq!(adapter.preset, name);
        }
        let vars = Vars {
            channel: "3",
            client: 0,
            payload: b"xyz",
        };
        let Publish::WebSocket(nats) = nats().publish else {
            panic!("nats publishes over WebSocket")
        };
        assert_eq!(
            nats.message.template.render(&vars),
            b"PUB bench.3 3\r\nxyz\r\n"
        );
        let Publish::Http(pushpin) = pushpin().publish else {
            panic!("pushpin publishes over HTTP")
        };
        assert_eq!(pushpin.url.render(&vars), b"/pub/3");
        assert_eq!(pushpin.body.render(&vars), b"xyz");
    }
}
