//! Which local address a connection to a loopback target leaves from.
//!
//! Every connect picks an ephemeral source port that no other connection to the same
//! (address, port) uses from the same source address. With one source address the kernel
//! searches past every port already taken (`__inet_hash_connect`), so a connect costs more the
//! more clients are connected: at 18,000 WebSocket clients a third of the fleet's CPU went
//! there. Spread over many loopback sources, the first port it tries is almost always free.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::{TcpSocket, TcpStream};

/// Loopback sources connections are spread over: 127.0.0.1 to 127.0.0.64.
const SOURCES: u32 = 64;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Connects to `addr`; to an IPv4 loopback address, from the next of the loopback sources.
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            let socket = TcpSocket::new_v4()?;
            let source = SocketAddrV4::new(source(NEXT.fetch_add(1, Ordering::Relaxed)), 0);
            defer_port_to_connect(&socket)?;
            socket.bind(source.into())?;
            socket.connect(addr).await
        }
        _ => TcpStream::connect(addr).await,
    }
}

fn source(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + k % SOURCES)
}

/// `IP_BIND_ADDRESS_NO_PORT`: binding the source address leaves the port to `connect`, which
/// may then reuse a port that other connections use towards other destinations.
fn defer_port_to_connect(socket: &TcpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, an int option and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_in_the_first_64_loopback_addresses() {
        assert_eq!(source(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source(63), Ipv4Addr::new(127, 0, 0, 64));
        assert_eq!(source(64), Ipv4Addr::new(127, 0, 0, 1));
    }

    #[tokio::test]
    async fn connections_to_loopback_leave_from_different_sources() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut sources = std::collections::HashSet::new();
        for _ in 0..4 {
            let stream = connect(addr).await.unwrap();
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, stream.local_addr().unwrap());
            sources.insert(peer.ip());
        }
        assert_eq!(sources.len(), 4, "{sources:?}");
    }
}
