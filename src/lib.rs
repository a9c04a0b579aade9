//! pushbench: measures what it costs to push server updates to many clients by HTTP polling,
//! long polling, WebSocket and MQTT: bytes on the wire and end-to-end latency per message.

pub mod payload;
pub mod plan;
pub mod profile;
pub mod scenario;
pub mod target;
