//! A server nobody wrote for pushbench, written here: WebSocket subscribers must send a
//! bearer token and a JSON subscribe frame, answer one JSON ping, and get every message
//! wrapped as `{"channel":"…","data":"…"}`; publishers send JSON publish frames on their
//! own connection. The scenario describes all of that with an adapter (the token comes from
//! `${…}`), and the run must deliver everything at exactly the envelope's bytes. Then the
//! adapter's scenario errors, each at its file:line:column.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use common::run_in_process;

const TOKEN: &str = "t0ken-for-the-test";

/// Subscribers' senders by channel.
type Subscribers = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<String>>>>>;

/// The JSON envelope around one message, as the server sends it.
fn envelope(channel: &str, data: &str) -> String {
    serde_json::json!({ "channel": channel, "data": data }).to_string()
}

/// Starts the server; returns its address.
async fn json_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let subscribers = Subscribers::default();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, Arc::clone(&subscribers)));
        }
    });
    addr
}

/// One connection: a subscriber (token, `subscribe`, ping/pong, then messages) or a
/// publisher (`publish` frames).
async fn serve(tcp: TcpStream, subscribers: Subscribers) {
    let authorized = Arc::new(Mutex::new(false));
    let seen = Arc::clone(&authorized);
    // The signature is tungstenite's handshake callback's.
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let bearer = format!("Bearer {TOKEN}");
        *seen.lock().unwrap() = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == bearer.as_bytes());
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
        return;
    };
    let Some(Ok(Message::Text(first))) = ws.next().await else {
        return;
    };
    let first: serde_json::Value = serde_json::from_str(first.as_str()).unwrap_or_default();
    match first["op"].as_str() {
        Some("subscribe") if *authorized.lock().unwrap() => {
            let channel = first["channel"].as_str().unwrap_or_default().to_string();
            subscriber(ws, channel, subscribers).await
        }
        Some("subscribe") => {
            let _ = ws
                .send(Message::text(r#"{"op":"error","why":"no token"}"#))
                .await;
        }
        Some("publish") => publisher(ws, first, subscribers).await,
        _ => {}
    }
}

async fn subscriber(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    channel: String,
    subscribers: Subscribers,
) {
    // The server's keep-alive: nothing is delivered until the client has answered it.
    if ws.send(Message::text(r#"{"op":"ping"}"#)).await.is_err() {
        return;
    }
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == r#"{"op":"pong"}"# => {}
        _ => return,
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    subscribers
        .lock()
        .unwrap()
        .entry(channel)
        .or_default()
        .push(tx);
    if ws
        .send(Message::text(r#"{"op":"subscribed"}"#))
        .await
        .is_err()
    {
        return;
    }
    while let Some(text) = rx.recv().await {
        if ws.send(Message::text(text)).await.is_err() {
            return;
        }
    }
}

async fn publisher(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    first: serde_json::Value,
    subscribers: Subscribers,
) {
    let mut frame = Some(first);
    while let Some(publish) = frame.take() {
        let channel = publish["channel"].as_str().unwrap_or_default();
        let data = publish["data"].as_str().unwrap_or_default();
        let text = envelope(channel, data);
        if let Some(list) = subscribers.lock().unwrap().get(channel) {
            for tx in list {
                let _ = tx.send(text.clone());
            }
        }
        frame = match ws.next().await {
            Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).ok(),
            _ => None,
        };
    }
}

/// The scenario, as a user would write it for this server.
fn scenario(addr: SocketAddr, payload_bytes: usize) -> String {
    format!(
        r#"
name = "json-server"
clients = 20
connect_rate = "2000/s"
warmup = "500ms"
duration = "1s"
drain = "5s"

[messages]
rate = "10/s"
payload_bytes = {payload_bytes}

[target]
kind = "external"
urls = ["http://{addr}"]
name = "json-server"

[target.subscribe]
websocket = "/"
headers = {{ Authorization = "Bearer ${{JSON_SERVER_TOKEN}}" }}
frames = ['{{"op":"subscribe","channel":"{{channel}}"}}']
ready = '"subscribed"'
replies = [{{ on = '{{"op":"ping"}}', send = '{{"op":"pong"}}' }}]

[target.publish]
kind = "websocket"
url = "/"
message = '{{"op":"publish","channel":"{{channel}}","data":"{{payload}}"}}'
payload = "json"

[target.envelope]
payload_encoding = "text"

[[transports]]
kind = "websocket"
"#
    )
}

fn token(name: &str) -> Option<String> {
    (name == "JSON_SERVER_TOKEN").then(|| TOKEN.to_string())
}

/// Every message delivered; the overhead is the JSON around the payload plus the 2-byte
/// header of the server's unmasked text frame, computed from the envelope itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_server_with_a_bearer_token_delivers_everything_at_its_envelope_bytes() {
    let addr = json_server().await;
    let payload_bytes = 64;
    let plan = pushbench::scenario::parse_with_env(
        &scenario(addr, payload_bytes),
        "json-server.toml",
        &token,
    )
    .expect("the scenario is valid");
    let r = run_in_process(&plan).await;
    assert_eq!(r.messages_delivered, 20 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert!(r.fault.is_empty(), "{r:?}");
    let around = envelope("0", "").len();
    assert_eq!(
        r.overhead_bytes_per_message,
        (2 + around) as f64,
        "2-byte frame header + {around} bytes of JSON: {r:?}"
    );
    assert_eq!(r.window_bytes_up, 0, "{r:?}");
}

/// Without the token the server never says "subscribed": no client connects, and the
/// error quotes what the server sent instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_with_what_the_server_answered() {
    let addr = json_server().await;
    let wrong = |name: &str| (name == "JSON_SERVER_TOKEN").then(|| "wrong".to_string());
    let mut plan = pushbench::scenario::parse_with_env(&scenario(addr, 64), "x.toml", &wrong)
        .expect("the scenario is valid");
    plan.clients = 1;
    plan.drain = std::time::Duration::from_millis(200);
    let options = pushbench::runner::RunOptions {
        launch: pushbench::targets::Launch::InProcess,
        interrupt: tokio_util::sync::CancellationToken::new(),
    };
    let error = pushbench::runner::run_transport(&plan, &plan.transports[0], &options, &())
        .await
        .expect_err("no client can subscribe");
    let text = format!("{error:#}");
    assert!(text.contains("no token"), "{text}");
}

fn parse_error(adapter: &str) -> String {
    let text = format!(
        "clients = 1\nduration = \"1s\"\n[messages]\nrate = \"1/s\"\npayload_bytes = 64\n\
         [target]\nkind = \"external\"\nurls = [\"http://127.0.0.1:9\"]\n{adapter}\
         [[transports]]\nkind = \"websocket\"\n"
    );
    pushbench::scenario::parse_with_env(&text, "bad.toml", &token)
        .expect_err("the adapter is refused")
        .to_string()
}

#[test]
fn an_unknown_placeholder_is_refused_at_its_position() {
    let e = parse_error("[target.subscribe]\nwebsocket = \"/sub/{chanel}\"\n");
    assert!(
        e.starts_with("bad.toml:10:13: `target.subscribe.websocket`: "),
        "{e}"
    );
    assert!(
        e.contains("unknown placeholder {chanel}: valid here are {channel}, {client}"),
        "{e}"
    );
}

#[test]
fn an_unset_environment_variable_is_named() {
    let e = parse_error(
        "[target.subscribe]\nheaders = { Authorization = \"Bearer ${NOT_SET_HERE}\" }\n",
    );
    assert!(e.starts_with("bad.toml:10:"), "{e}");
    assert!(e.contains("target.subscribe.headers.Authorization"), "{e}");
    assert!(
        e.contains("environment variable NOT_SET_HERE is not set"),
        "{e}"
    );
}

#[test]
fn an_unknown_preset_lists_the_known_ones() {
    let e = parse_error("preset = \"ngnix\"\n");
    assert!(e.starts_with("bad.toml:9:10: `target.preset`: "), "{e}");
    assert!(
        e.contains(r#"unknown preset "ngnix": expected one of "pushbench", "nchan", "mosquitto", "nats", "pushpin""#),
        "{e}"
    );
}

#[test]
fn a_payload_placeholder_outside_a_publish_body_is_refused() {
    let e = parse_error("[target.publish]\nurl = \"/pub/{payload}\"\n");
    assert!(
        e.starts_with("bad.toml:10:7: `target.publish.url`: "),
        "{e}"
    );
    assert!(e.contains("valid here are {channel}"), "{e}");
}

#[test]
fn an_adapter_on_the_embedded_hub_is_refused() {
    let text = "clients = 1\nduration = \"1s\"\n[messages]\nrate = \"1/s\"\n[target]\npreset = \"nats\"\n\
                [[transports]]\nkind = \"websocket\"\n";
    let e = pushbench::scenario::parse_with_env(text, "bad.toml", &token)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.toml:6:1: `target.preset`: "), "{e}");
    assert!(e.contains("external target"), "{e}");
}

#[test]
fn a_text_stamp_needs_room_for_its_mark() {
    let text = "clients = 1\nduration = \"1s\"\n[messages]\nrate = \"1/s\"\npayload_bytes = 20\n\
                [target]\nkind = \"external\"\nurls = [\"http://127.0.0.1:9\"]\npreset = \"nats\"\n\
                [[transports]]\nkind = \"websocket\"\n";
    let e = pushbench::scenario::parse_with_env(text, "bad.toml", &token)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("bad.toml:5:17: `messages.payload_bytes`: "),
        "{e}"
    );
    assert!(e.contains("expected at least 25"), "{e}");
}

/// An adapter that gets the payload wrong (base64, which this server passes on as it is)
/// delivers nothing: the result's fault says so and quotes the first message it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_that_delivers_nothing_says_what_the_server_sent() {
    let addr = json_server().await;
    let text = scenario(addr, 64).replace("payload = \"json\"", "payload = \"base64\"");
    let mut plan = pushbench::scenario::parse_with_env(&text, "x.toml", &token).unwrap();
    plan.clients = 2;
    plan.drain = std::time::Duration::from_millis(300);
    let r = run_in_process(&plan).await;
    assert_eq!(r.messages_delivered, 0, "{r:?}");
    assert!(r.fault.contains("none was delivered"), "{r:?}");
    assert!(
        r.fault.contains(
            r#"without a pushbench payload, the first: "{\"channel\":\"0\",\"data\":\"fnBi"#
        ),
        "{r:?}"
    );
}

/// A preset with overrides: the tables replace what they name and keep the rest; switching
/// the publish kind starts from that kind's defaults.
#[test]
fn overrides_replace_what_they_name_and_keep_the_preset_for_the_rest() {
    use pushbench::adapter::{PayloadEncoding, Placement, Publish, Vars};
    let text = "clients = 1\nduration = \"1s\"\n[messages]\nrate = \"1/s\"\npayload_bytes = 64\n\
                [target]\nkind = \"external\"\nurls = [\"http://127.0.0.1:9\"]\npreset = \"nats\"\n\
                [target.subscribe]\nhttp-poll = \"/poll/{channel}?c={client}\"\n\
                [target.publish]\nkind = \"http\"\nurl = \"/in/{channel}\"\npayload = \"base64\"\n\
                headers = { X-Key = \"${JSON_SERVER_TOKEN}\" }\n\
                [[transports]]\nkind = \"websocket\"\n";
    let plan = pushbench::scenario::parse_with_env(text, "ok.toml", &token).unwrap();
    let a = &plan.adapter;
    let vars = Vars {
        channel: "3",
        client: 7,
        payload: b"",
    };
    assert_eq!(a.subscribe.http_poll.render_text(&vars), "/poll/3?c=7");
    assert_eq!(
        a.subscribe.websocket.render_text(&vars),
        "/",
        "kept from the preset"
    );
    assert_eq!(a.subscribe.ready.as_deref(), Some("PONG\r\n"));
    assert_eq!(a.encoding, PayloadEncoding::Text, "kept from the preset");
    let Publish::Http(publish) = &a.publish else {
        panic!("kind = \"http\" publishes over HTTP: {a:?}")
    };
    assert_eq!(publish.method, "POST");
    assert_eq!(publish.url.render_text(&vars), "/in/3");
    assert_eq!(publish.payload, Placement::Base64);
    assert_eq!(publish.headers[0].0, "X-Key");
    assert_eq!(publish.headers[0].1.render_text(&vars), TOKEN);
}
