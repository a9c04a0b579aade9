//! WebSocket: the server pushes every message as one frame (the hub: one binary frame with
//! the payload). The adapter may add handshake headers and subprotocols, frames to send after
//! the handshake (a subscribe message), a text that says the subscription holds, and replies
//! to the server's application-level keep-alives.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response, generate_request};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
use tokio_tungstenite::tungstenite::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::adapted::{self, Unwrapper};
use super::{ClientSpec, Received, Transport};
use crate::adapter::{self, Adapter, Frame, Vars};
use crate::plan::TransportPlan;
use crate::tls::Alpn;
use crate::wire::{ClientStream, ConnCounter, WireCounts};

/// How long a subscription may take to say it holds (`subscribe.ready`).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct WebSocket {
    stream: WebSocketStream<ClientStream>,
    counter: Arc<ConnCounter>,
    adapter: Arc<Adapter>,
    unwrapper: Unwrapper,
    /// The plan's `ping`: silence after which the client pings, then gives up.
    ping: Option<Duration>,
}

impl Transport for WebSocket {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::Websocket {
            read_buffer_bytes,
            ping,
        } = spec.plan.as_ref()
        else {
            bail!("websocket client given a {} plan", spec.plan.kind());
        };
        let stream = spec.open(Alpn::Http1).await?;
        let counter = stream.counter();
        let url = format!(
            "ws://{}{}",
            spec.endpoint.authority,
            adapted::subscribe_path(spec)
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(*read_buffer_bytes)
            .write_buffer_size(0);
        let request = handshake_request(url, spec)?;
        let stream = handshake(stream, request, config)
            .await
            .context("WebSocket handshake")?;
        let mut ws = WebSocket {
            stream,
            counter,
            adapter: Arc::clone(&spec.adapter),
            unwrapper: Unwrapper::new(spec),
            ping: *ping,
        };
        send_frames(
            &mut ws.stream,
            &spec.adapter.subscribe.frames,
            &adapted::vars(spec),
        )
        .await?;
        if let Some(ready) = &spec.adapter.subscribe.ready {
            tokio::time::timeout(READY_TIMEOUT, ws.await_ready(ready.as_bytes()))
                .await
                .with_context(|| {
                    format!("the server did not send {ready:?} within {READY_TIMEOUT:?}")
                })??;
        }
        Ok(ws)
    }

    /// One frame, waited for, then every frame tungstenite can yield without waiting: an
    /// exchange ends with the bytes read so far delivered, so that a client that fell behind
    /// (several frames per read) still gets exact byte windows.
    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        while delivered.is_empty() {
            let frame = match self.ping {
                Some(silence) => self.next_frame_or_ping(silence).await?,
                None => self.stream.next().await,
            };
            self.take(frame, delivered).await?;
        }
        while let Some(frame) = self.stream.next().now_or_never() {
            self.take(frame, delivered).await?;
        }
        Ok(())
    }

    fn wire(&self) -> WireCounts {
        self.counter.snapshot()
    }

    fn unrecognised(&self) -> Option<String> {
        self.unwrapper.unrecognised()
    }
}

impl WebSocket {
    /// The next frame, pinging after `silence` without one; an error once a second
    /// `silence` passes after the ping with still no frame (a pong counts: the connection
    /// is alive, the channel only quiet).
    async fn next_frame_or_ping(
        &mut self,
        silence: Duration,
    ) -> anyhow::Result<Option<Result<Message, WsError>>> {
        if let Ok(frame) = tokio::time::timeout(silence, self.stream.next()).await {
            return Ok(frame);
        }
        self.stream
            .send(Message::Ping(Bytes::new()))
            .await
            .context("sending a WebSocket ping")?;
        match tokio::time::timeout(silence, self.stream.next()).await {
            Ok(frame) => Ok(frame),
            Err(_) => bail!(
                "no frame for {silence:?} and no answer to a ping for {silence:?} after it: \
                 the connection is given up as dead"
            ),
        }
    }

    /// Keeps a frame's messages, answering keep-alives; WebSocket pings are answered by
    /// tungstenite itself, pongs and raw frames carry none.
    async fn take(
        &mut self,
        frame: Option<Result<Message, WsError>>,
        delivered: &mut Vec<Received>,
    ) -> anyhow::Result<()> {
        let data = match frame {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Text(text))) => Bytes::from(text.as_str().to_owned()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return Ok(()),
            Some(Ok(Message::Close(frame))) => bail!("server closed the WebSocket: {frame:?}"),
            Some(Err(e)) => return Err(e).context("reading WebSocket"),
            None => bail!("WebSocket ended"),
        };
        if let Some(reply) = self.adapter.reply_to(&data) {
            let reply = Message::text(reply.to_owned());
            self.stream
                .send(reply)
                .await
                .context("answering a keep-alive")?;
            return Ok(());
        }
        self.unwrapper.unwrap(data, delivered);
        Ok(())
    }

    /// Reads frames until one contains `ready`; what came before is setup. An error quotes
    /// the first frame the server sent instead.
    async fn await_ready(&mut self, ready: &[u8]) -> anyhow::Result<()> {
        let mut first = None;
        let result = self.frames_until(ready, &mut first).await;
        result.with_context(|| {
            let first = first.unwrap_or_else(|| "none".to_string());
            format!("waiting for the subscription to hold (the server's first frame: {first})")
        })
    }

    async fn frames_until(
        &mut self,
        ready: &[u8],
        first: &mut Option<String>,
    ) -> anyhow::Result<()> {
        loop {
            let data = match self.stream.next().await {
                Some(Ok(Message::Binary(data))) => data,
                Some(Ok(Message::Text(text))) => Bytes::from(text.as_str().to_owned()),
                Some(Ok(Message::Close(frame))) => bail!("server closed the WebSocket: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading WebSocket"),
                None => bail!("WebSocket ended"),
            };
            if data.windows(ready.len()).any(|w| w == ready) {
                return Ok(());
            }
            if let Some(reply) = self.adapter.reply_to(&data) {
                self.stream.send(Message::text(reply.to_owned())).await?;
            }
            first.get_or_insert_with(|| adapter::quote(&data));
        }
    }
}

/// The handshake request: the adapter's headers and subprotocols added to the URL's GET.
fn handshake_request(url: String, spec: &ClientSpec) -> anyhow::Result<Request> {
    let mut request = url.into_client_request().context("WebSocket URL")?;
    let headers = request.headers_mut();
    for (name, value) in adapted::subscribe_headers(spec) {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).context("subscribe header name")?,
            HeaderValue::from_str(&value).context("subscribe header value")?,
        );
    }
    let protocols = &spec.adapter.subscribe.subprotocols;
    if !protocols.is_empty() {
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&protocols.join(", ")).context("subprotocols")?,
        );
    }
    Ok(request)
}

/// The largest handshake response taken before giving up on the server.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The client handshake with tungstenite's own request and response parser, reading through a
/// small buffer of its own. tungstenite's `client_async` reads the response into a 4 KiB buffer
/// that becomes the connection's read buffer for life, whatever `read_buffer_bytes` says: 4 KiB
/// of every client's memory. Here the connection starts with `read_buffer_bytes` and whatever
/// arrived after the response (a frame the server sent at once) is handed on, not lost.
async fn handshake<S>(
    mut stream: S,
    request: Request,
    config: WebSocketConfig,
) -> anyhow::Result<WebSocketStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let asked = request.headers().get(SEC_WEBSOCKET_PROTOCOL).cloned();
    let (bytes, key) = generate_request(request)?;
    stream.write_all(&bytes).await?;
    let mut received = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let (size, response) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!(
                "the server closed the connection before answering the upgrade ({} bytes came)",
                received.len()
            );
        }
        received.extend_from_slice(&chunk[..n]);
        if let Some(parsed) = Response::try_parse(&received)? {
            break parsed;
        }
        if received.len() > MAX_RESPONSE_BYTES {
            bail!("no complete upgrade response in the first {MAX_RESPONSE_BYTES} bytes");
        }
    };
    verify_upgrade(&response, &key, asked.as_ref())?;
    let tail = received[size..].to_vec();
    Ok(WebSocketStream::from_partially_read(stream, tail, Role::Client, Some(config)).await)
}

/// RFC 6455 §4.1's checks of the server's answer, each failure naming what was wrong.
fn verify_upgrade(
    response: &Response,
    key: &str,
    asked: Option<&HeaderValue>,
) -> anyhow::Result<()> {
    let headers = response.headers();
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        bail!(
            "the server answered the upgrade with {} instead of 101 Switching Protocols",
            response.status()
        );
    }
    if !header(UPGRADE).is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        bail!("the 101 response has no `Upgrade: websocket`");
    }
    if !header(CONNECTION).is_some_and(|v| {
        v.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
    }) {
        bail!("the 101 response has no `Connection: Upgrade`");
    }
    let accept = derive_accept_key(key.as_bytes());
    if header(SEC_WEBSOCKET_ACCEPT) != Some(accept.as_str()) {
        bail!("the 101 response's Sec-WebSocket-Accept is not the one derived from our key");
    }
    match (asked, header(SEC_WEBSOCKET_PROTOCOL)) {
        (None, None) => Ok(()),
        (None, Some(chosen)) => bail!("the server chose subprotocol {chosen:?}, none was asked"),
        (Some(_), None) => bail!("the server chose none of the subprotocols asked for"),
        (Some(asked), Some(chosen)) => {
            let offered = asked.to_str().unwrap_or_default();
            if offered.split(',').any(|p| p.trim() == chosen) {
                Ok(())
            } else {
                bail!("the server chose subprotocol {chosen:?}, not one of {offered:?}")
            }
        }
    }
}

/// Sends templated frames (a subscribe message, a publisher's `CONNECT`).
pub(crate) async fn send_frames<S>(
    stream: &mut WebSocketStream<S>,
    frames: &[Frame],
    vars: &Vars<'_>,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for frame in frames {
        stream
            .send(message(frame, vars)?)
            .await
            .context("sending a subscribe frame")?;
    }
    Ok(())
}

/// One templated frame as a WebSocket message.
pub(crate) fn message(frame: &Frame, vars: &Vars<'_>) -> anyhow::Result<Message> {
    let bytes = frame.template.render(vars);
    Ok(if frame.binary {
        Message::binary(bytes)
    } else {
        Message::text(String::from_utf8(bytes).context("a text frame must be UTF-8")?)
    })
}

type PublisherSink =
    futures_util::stream::SplitSink<WebSocketStream<tokio::net::TcpStream>, Message>;

/// A publisher's WebSocket connection: frames go out through `send`; a task reads what the
/// server sends, answering its keep-alives, until the run stops.
pub(crate) struct Publisher {
    sink: Arc<tokio::sync::Mutex<PublisherSink>>,
}

impl Publisher {
    pub(crate) async fn open(
        to: &crate::targets::Endpoint,
        path: &str,
        frames: &[Frame],
        vars: &Vars<'_>,
        adapter: Arc<Adapter>,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Publisher> {
        let tcp = tokio::net::TcpStream::connect(to.addr)
            .await
            .with_context(|| format!("publisher connecting to {}", to.addr))?;
        tcp.set_nodelay(true)?;
        let url = format!("ws://{}{path}", to.authority);
        let (mut stream, _) = tokio_tungstenite::client_async(url, tcp)
            .await
            .context("publisher's WebSocket handshake")?;
        send_frames(&mut stream, frames, vars).await?;
        let (sink, mut incoming) = stream.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let replies = Arc::clone(&sink);
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = stop.cancelled() => break,
                    frame = incoming.next() => frame,
                };
                let data = match frame {
                    Some(Ok(Message::Text(text))) => Bytes::from(text.as_str().to_owned()),
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                if let Some(reply) = adapter.reply_to(&data) {
                    let reply = Message::text(reply.to_owned());
                    if replies.lock().await.send(reply).await.is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Publisher { sink })
    }

    /// Sends one message's frame.
    pub(crate) async fn send(&self, frame: &Frame, vars: &Vars<'_>) -> anyhow::Result<()> {
        let message = message(frame, vars)?;
        self.sink
            .lock()
            .await
            .send(message)
            .await
            .context("publishing over WebSocket")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays the server's side of an upgrade on `server`: reads the request, answers with
    /// `answer(key)` followed by `then`.
    async fn answer_upgrade(
        mut server: tokio::io::DuplexStream,
        answer: impl FnOnce(&str) -> String,
        then: &[u8],
    ) -> tokio::io::DuplexStream {
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = server.read(&mut chunk).await.expect("reading the request");
            request.extend_from_slice(&chunk[..n]);
        }
        let request = String::from_utf8(request).expect("an ASCII request");
        let key = request
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(": ")?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then_some(value)
            })
            .expect("a Sec-WebSocket-Key header");
        let mut bytes = answer(key).into_bytes();
        bytes.extend_from_slice(then);
        server.write_all(&bytes).await.expect("answering");
        server
    }

    fn switching(key: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
    }

    fn request() -> Request {
        "ws://127.0.0.1/sub/ws/0"
            .into_client_request()
            .expect("a valid URL")
    }

    #[tokio::test]
    async fn a_frame_that_came_with_the_upgrade_response_is_not_lost() {
        let (client, server) = tokio::io::duplex(4096);
        let config = WebSocketConfig::default().read_buffer_size(512);
        let frame = [0x82, 2, 7, 9]; // a binary frame of two bytes, sent with the 101
        let (ws, _server) = tokio::join!(
            handshake(client, request(), config),
            answer_upgrade(server, switching, &frame)
        );
        let mut ws = ws.expect("the handshake succeeds");
        let message = ws.next().await.expect("a frame").expect("a valid frame");
        assert_eq!(message, Message::binary(vec![7, 9]));
    }

    #[tokio::test]
    async fn a_wrong_accept_key_or_status_is_refused_with_the_reason() {
        let wrong_key = |_: &str| switching("not the key that was sent");
        let not_found = |_: &str| "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned();
        for (answer, says) in [
            (
                &wrong_key as &dyn Fn(&str) -> String,
                "Sec-WebSocket-Accept",
            ),
            (&not_found, "404 Not Found instead of 101"),
        ] {
            let (client, server) = tokio::io::duplex(4096);
            let (ws, _server) = tokio::join!(
                handshake(client, request(), WebSocketConfig::default()),
                answer_upgrade(server, answer, &[])
            );
            let error = format!("{:#}", ws.expect_err("the handshake is refused"));
            assert!(error.contains(says), "{error}");
        }
    }
}
