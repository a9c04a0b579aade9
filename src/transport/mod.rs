//! How a client receives messages. Each transport is one file behind `Transport`; the client
//! loop in `fleet::client` is shared by all of them.

mod adapted;
#[cfg(test)]
pub mod fake;
mod http;
pub mod mqtt;
mod mqtt_lean;
mod open;
mod sse;
pub(crate) mod websocket;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::adapter::Adapter;
use crate::plan::TransportPlan;
use crate::targets::Endpoint;
use crate::wire::WireCounts;

pub use http::{HttpLongpoll, HttpPoll, Validators};
pub use mqtt::Mqtt;
pub use mqtt_lean::{MqttLean, Qos2Session};
pub use sse::{LastEventId, Sse};
pub use websocket::WebSocket;

/// Everything one client needs to connect.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub endpoint: Arc<Endpoint>,
    pub channel: String,
    pub plan: Arc<TransportPlan>,
    /// Client number within the run (0-based).
    pub index: usize,
    /// Unique per run, for protocols that name their clients (MQTT).
    pub client_id: String,
    /// Where an SSE client's next connection resumes; shared by the client's connections.
    pub last_event_id: Kept<LastEventId>,
    /// Where a poller's next connection resumes (its `Etag`/`Last-Modified`).
    pub validators: Kept<Validators>,
    /// How to speak to the target: subscribe paths, headers, frames, envelopes.
    pub adapter: Arc<Adapter>,
    /// The client's TLS sessions, resumed by its reconnects.
    pub tls_sessions: crate::tls::Sessions,
    /// A lean MQTT client's QoS 2 messages not yet released, across its connections.
    pub qos2_session: Kept<Qos2Session>,
}

/// State a client keeps across its connections, made by the first connection of a transport
/// that uses it: a client of another transport holds an empty cell, not an allocation (100k
/// clients' tasks hold one each).
#[derive(Debug, Clone, Default)]
pub struct Kept<T>(std::sync::OnceLock<T>);

impl<T: Clone + Default> Kept<T> {
    /// The client's state, shared with every connection that asks for it.
    pub fn handle(&self) -> T {
        self.0.get_or_init(T::default).clone()
    }

    /// The state, if a connection made it.
    pub fn made(&self) -> Option<&T> {
        self.0.get()
    }
}

/// A message as a client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub payload: Bytes,
    /// When its last byte was read: the end of its latency.
    pub at: SystemTime,
}

impl Received {
    pub fn now(payload: Bytes) -> Received {
        Received {
            payload,
            at: SystemTime::now(),
        }
    }
}

/// One subscribed connection.
pub trait Transport: Sized + Send + 'static {
    /// Connects and subscribes; returns once the client would receive the next message.
    fn connect(spec: &ClientSpec) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Waits for and performs the next exchange, appending the messages it delivered
    /// (none for a poll answered 304). An exchange ends where the protocol's own work for its
    /// messages ends (an MQTT QoS 2 flow with its PUBCOMP), so that byte windows are exact.
    fn next(
        &mut self,
        delivered: &mut Vec<Received>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Bytes and segments this connection has carried so far.
    fn wire(&self) -> WireCounts;

    /// The QoS the server granted the subscription, for protocols that have one (MQTT).
    fn granted_qos(&self) -> Option<u8> {
        None
    }

    /// The first message this connection received that carried no payload (quoted), for a
    /// run that delivers nothing to say what the server sent instead.
    fn unrecognised(&self) -> Option<String> {
        None
    }
}
