//! What the transports share of the target's adapter: the subscribe request's path and
//! headers, and finding the payloads inside what the server delivered.

use bytes::Bytes;

use super::{ClientSpec, Received};
use crate::adapter::{self, Vars};
use crate::payload::{HEADER_BYTES, Stamp};
use crate::plan::TransportPlan;

/// The values a client's subscribe templates are rendered with.
pub(super) fn vars(spec: &ClientSpec) -> Vars<'_> {
    Vars {
        channel: &spec.channel,
        client: spec.index,
        payload: &[],
    }
}

/// The request target this client subscribes at.
pub(super) fn subscribe_path(spec: &ClientSpec) -> String {
    let subscribe = &spec.adapter.subscribe;
    let template = match spec.plan.as_ref() {
        TransportPlan::HttpPoll { .. } => &subscribe.http_poll,
        TransportPlan::HttpLongpoll { .. } => &subscribe.http_longpoll,
        TransportPlan::Sse { .. } => &subscribe.sse,
        TransportPlan::Websocket { .. } | TransportPlan::Mqtt(_) => &subscribe.websocket,
    };
    template.render_text(&vars(spec))
}

/// The adapter's subscribe headers for this client.
pub(super) fn subscribe_headers(spec: &ClientSpec) -> Vec<(String, String)> {
    spec.adapter.subscribe_headers(&vars(spec))
}

/// Whether this client's payloads travel as text stamps.
pub(super) fn text_stamps(spec: &ClientSpec) -> bool {
    spec.adapter.encoding == adapter::PayloadEncoding::Text
        || matches!(spec.plan.as_ref(), TransportPlan::Sse { .. })
}

/// Remembers the first message a connection got that carried no payload, so that a run
/// whose adapter delivers nothing can say what the server sent instead.
#[derive(Debug, Default)]
pub(super) struct Unwrapper {
    text: bool,
    unrecognised: Option<String>,
}

impl Unwrapper {
    pub(super) fn new(spec: &ClientSpec) -> Unwrapper {
        Unwrapper {
            text: text_stamps(spec),
            unrecognised: None,
        }
    }

    /// Appends the payloads inside `message`: the whole message for binary stamps, every
    /// text stamp found in it otherwise (as a binary stamp, which the client loop reads).
    pub(super) fn unwrap(&mut self, message: Bytes, delivered: &mut Vec<Received>) {
        if !self.text {
            delivered.push(Received::now(message));
            return;
        }
        let stamps = Stamp::find_text(&message);
        if stamps.is_empty() && self.unrecognised.is_none() {
            self.unrecognised = Some(adapter::quote(&message));
        }
        let at = std::time::SystemTime::now();
        delivered.extend(stamps.iter().map(|stamp| Received {
            payload: Bytes::from(stamp.encode(HEADER_BYTES)),
            at,
        }));
    }

    pub(super) fn unrecognised(&self) -> Option<String> {
        self.unrecognised.clone()
    }
}
