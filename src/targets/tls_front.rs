//! TLS in front of the embedded broker. rumqttd's own TLS listener comes with a second crypto
//! provider (aws-lc, a C build) beside the ring provider everything else here uses, so the
//! embedded broker's TLS is terminated in this relay instead, in the same process (its CPU
//! and memory are the target's), and each connection is relayed to rumqttd's cleartext
//! listener on loopback: what a TLS-offloading front does in production.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::broker::BrokerAddrs;
use crate::tls::Identity;

/// File descriptors the broker's process holds per TLS client: the front's two sockets (to
/// the client, to rumqttd) and rumqttd's own.
pub const FDS_PER_CLIENT: u32 = 3;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// A running front; dropping it stops accepting (relayed connections end with their peers).
pub struct TlsFront {
    pub addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Listens on a free port of `behind`'s address and relays every TLS connection there.
pub async fn start(behind: SocketAddr, identity: &Identity) -> anyhow::Result<TlsFront> {
    let listener = TcpListener::bind((behind.ip(), 0))
        .await
        .context("TLS front: listening")?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(identity.server_config()?);
    let accept = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(relay(client, behind, acceptor.clone()));
                }
                Err(_) => tokio::time::sleep(ACCEPT_RETRY_DELAY).await,
            }
        }
    });
    Ok(TlsFront { addr, accept })
}

/// One connection: the TLS handshake, then bytes both ways until either side closes.
async fn relay(client: TcpStream, behind: SocketAddr, acceptor: TlsAcceptor) {
    let _ = client.set_nodelay(true);
    let Ok(mut tls) = acceptor.accept(client).await else {
        return;
    };
    let Ok(mut broker) = TcpStream::connect(behind).await else {
        return;
    };
    let _ = broker.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
}

/// TLS fronts for each of a broker's listeners: their addresses take the place of the
/// cleartext ones; the fronts stop when dropped.
pub async fn front_broker(
    plain: BrokerAddrs,
    identity: &Identity,
) -> anyhow::Result<(BrokerAddrs, Vec<TlsFront>)> {
    let fronts = vec![
        start(plain.tcp, identity).await?,
        start(plain.ws, identity).await?,
        start(plain.v5, identity).await?,
    ];
    let addrs = BrokerAddrs {
        tcp: fronts[0].addr,
        ws: fronts[1].addr,
        v5: fronts[2].addr,
    };
    Ok((addrs, fronts))
}
