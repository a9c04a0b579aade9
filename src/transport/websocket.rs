//! WebSocket: the server pushes every message as one frame (the hub: one binary frame with
//! the payload). The adapter may add handshake headers and subprotocols, frames to send after
//! the handshake (a subscribe message), a text that says the subscription holds, and replies
//! to the server's application-level keep-alives.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
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
}

impl Transport for WebSocket {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::Websocket { read_buffer_bytes } = spec.plan.as_ref() else {
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
        let (stream, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .context("WebSocket handshake")?;
        let mut ws = WebSocket {
            stream,
            counter,
            adapter: Arc::clone(&spec.adapter),
            unwrapper: Unwrapper::new(spec),
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
            let frame = self.stream.next().await;
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
fn handshake_request(
    url: String,
    spec: &ClientSpec,
) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
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
