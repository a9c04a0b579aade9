//! How a client receives messages. Each transport is one file behind `Transport`; the client
//! loop in `fleet::client` is shared by all of them.

mod http;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::plan::TransportPlan;
use crate::wire::WireCounts;

pub use http::{HttpLongpoll, HttpPoll};
pub use websocket::WebSocket;

/// Where a client connects.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `host:port` as the URL names it, for `Host` headers.
    pub authority: String,
}

/// Everything one client needs to connect.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub endpoint: Arc<Endpoint>,
    pub channel: String,
    pub plan: Arc<TransportPlan>,
}

/// One subscribed connection.
pub trait Transport: Sized + Send + 'static {
    /// Connects and subscribes; returns once the client would receive the next message.
    fn connect(spec: &ClientSpec) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Waits for and performs the next exchange, appending the payloads it delivered
    /// (none for a poll answered 304).
    fn next(
        &mut self,
        delivered: &mut Vec<Bytes>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Bytes and segments this connection has carried so far.
    fn wire(&self) -> WireCounts;
}
