//! WebSocket: the server pushes every message as one binary frame.

use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{ClientSpec, Received, Transport};
use crate::plan::TransportPlan;
use crate::tls::Alpn;
use crate::wire::{ClientStream, ConnCounter, WireCounts};

pub struct WebSocket {
    stream: WebSocketStream<ClientStream>,
    counter: Arc<ConnCounter>,
}

impl Transport for WebSocket {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::Websocket { read_buffer_bytes } = spec.plan.as_ref() else {
            bail!("websocket client given a {} plan", spec.plan.kind());
        };
        let stream = spec.open(Alpn::Http1).await?;
        let counter = stream.counter();
        let url = format!("ws://{}/sub/ws/{}", spec.endpoint.authority, spec.channel);
        let config = WebSocketConfig::default()
            .read_buffer_size(*read_buffer_bytes)
            .write_buffer_size(0);
        let (stream, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .context("WebSocket handshake")?;
        Ok(WebSocket { stream, counter })
    }

    /// One frame, waited for, then every frame tungstenite can yield without waiting: an
    /// exchange ends with the bytes read so far delivered, so that a client that fell behind
    /// (several frames per read) still gets exact byte windows.
    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        while delivered.is_empty() {
            let frame = self.stream.next().await;
            take(frame, delivered)?;
        }
        while let Some(frame) = self.stream.next().now_or_never() {
            take(frame, delivered)?;
        }
        Ok(())
    }

    fn wire(&self) -> WireCounts {
        self.counter.snapshot()
    }
}

/// Keeps a frame's message; pings are answered by tungstenite itself, pongs and raw frames
/// carry none.
fn take(
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    delivered: &mut Vec<Received>,
) -> anyhow::Result<()> {
    match frame {
        Some(Ok(Message::Binary(data))) => delivered.push(Received::now(data)),
        Some(Ok(Message::Text(text))) => {
            delivered.push(Received::now(Bytes::from(text.as_str().to_owned())))
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
        Some(Ok(Message::Close(frame))) => bail!("server closed the WebSocket: {frame:?}"),
        Some(Err(e)) => return Err(e).context("reading WebSocket"),
        None => bail!("WebSocket ended"),
    }
    Ok(())
}
