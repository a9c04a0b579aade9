//! How every client of pushbench's own streams opens its connection: cleartext or TLS, as
//! its endpoint says, with the application protocol it will speak.

use super::ClientSpec;
use crate::tls::{self, Alpn};
use crate::wire::ClientStream;

impl ClientSpec {
    /// Connects to the client's endpoint (and handshakes TLS if it has TLS).
    pub(crate) async fn open(&self, alpn: Alpn) -> anyhow::Result<ClientStream> {
        let endpoint = &self.endpoint;
        tls::connect(
            endpoint.addr,
            endpoint.tls.as_ref(),
            &self.tls_sessions,
            alpn,
        )
        .await
    }

    /// `https` over TLS, `http` without: the `:scheme` of HTTP/2 requests.
    pub(crate) fn http_scheme(&self) -> &'static str {
        if self.endpoint.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}
