//! Byte accounting at the socket.
//!
//! Two independent witnesses per connection: a counting `AsyncRead`/`AsyncWrite` wrapper (the
//! exact bytes the client wrote and read, TCP payload only) and the kernel's own `TCP_INFO`
//! counters (bytes acked/received and segments in/out). Segment counts turn TCP payload into
//! IP-level bytes: payload plus one IP and one TCP header (with the options the connection
//! negotiated) per segment, pure ACKs included.
//!
//! HTTP header bytes are counted apart, to show what header compression saves: the HTTP/1.1
//! client reports each exchange's request and response heads, and on an HTTP/2 connection the
//! client stream reads the frame headers as they pass (`h2`).
//!
//! Under TLS the counting stream sees ciphertext (what bandwidth costs) and reads the record
//! headers as they pass (`tls`); the client stream above the encryption counts the plaintext,
//! so the difference is what TLS adds.

mod client;
mod h2;
mod spread;
mod tls;

use std::io;
use std::ops::Sub;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub use client::ClientStream;
pub use h2::CLIENT_PREFACE;
use tls::RecordScanner;

/// What one connection (or a sum of connections) carried.
#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    derive_more::Add,
    derive_more::AddAssign,
)]
pub struct WireCounts {
    /// Bytes the client wrote to the socket (counted at the stream).
    pub sent: u64,
    /// Bytes the client read from the socket (counted at the stream).
    pub received: u64,
    /// Bytes the kernel sent (`tcpi_bytes_sent` less retransmissions).
    pub kernel_sent: u64,
    /// Bytes the kernel received (`tcpi_bytes_received`).
    pub kernel_received: u64,
    /// TCP segments in both directions, including SYN, FIN and pure ACKs.
    pub segments: u64,
    /// Kernel payload bytes plus IP and TCP headers of every segment.
    pub ip_bytes: u64,
    /// Of `sent`, HTTP request header bytes: HTTP/1.1 heads through their blank line, HTTP/2
    /// HEADERS and CONTINUATION frames with their frame headers. 0 for other protocols.
    #[serde(default)]
    pub request_header_bytes: u64,
    /// Of `received`, HTTP response header bytes, counted as `request_header_bytes`.
    #[serde(default)]
    pub response_header_bytes: u64,
    /// Bytes the client wrote above TLS (equal to `sent` on a cleartext stream; 0 where a
    /// library owns the socket).
    #[serde(default)]
    pub plaintext_sent: u64,
    /// Bytes the client read above TLS, counted as `plaintext_sent`.
    #[serde(default)]
    pub plaintext_received: u64,
    /// TLS records in both directions (0 on a cleartext stream).
    #[serde(default)]
    pub tls_records: u64,
}

impl WireCounts {
    /// Payload bytes in both directions, as counted at the stream.
    pub fn total(&self) -> u64 {
        self.sent + self.received
    }

    /// Plaintext bytes in both directions, as counted above TLS.
    pub fn plaintext_total(&self) -> u64 {
        self.plaintext_sent + self.plaintext_received
    }
}

impl Sub for WireCounts {
    type Output = WireCounts;
    /// Saturating, so that a counter read slightly out of step never wraps.
    fn sub(self, o: WireCounts) -> WireCounts {
        WireCounts {
            sent: self.sent.saturating_sub(o.sent),
            received: self.received.saturating_sub(o.received),
            kernel_sent: self.kernel_sent.saturating_sub(o.kernel_sent),
            kernel_received: self.kernel_received.saturating_sub(o.kernel_received),
            segments: self.segments.saturating_sub(o.segments),
            ip_bytes: self.ip_bytes.saturating_sub(o.ip_bytes),
            request_header_bytes: self
                .request_header_bytes
                .saturating_sub(o.request_header_bytes),
            response_header_bytes: self
                .response_header_bytes
                .saturating_sub(o.response_header_bytes),
            plaintext_sent: self.plaintext_sent.saturating_sub(o.plaintext_sent),
            plaintext_received: self.plaintext_received.saturating_sub(o.plaintext_received),
            tls_records: self.tls_records.saturating_sub(o.tls_records),
        }
    }
}

/// The kernel's view of one TCP socket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct KernelCounts {
    sent: u64,
    received: u64,
    segments: u64,
    ip_bytes: u64,
}

/// Reads `TCP_INFO` for `fd`; `None` if the socket is gone or not TCP.
fn kernel_counts(fd: RawFd) -> Option<KernelCounts> {
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable tcp_info of `len` bytes; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let segments = u64::from(info.tcpi_segs_in) + u64::from(info.tcpi_segs_out);
    // Bytes still queued in the kernel are received but not yet read: leave them to the
    // exchange that reads them.
    let received = info.tcpi_bytes_received.saturating_sub(unread_bytes(fd));
    let payload = kernel_sent(&info, len) + received;
    Some(KernelCounts {
        sent: kernel_sent(&info, len),
        received,
        segments,
        ip_bytes: payload + segments * header_bytes_per_segment(fd, info.tcpi_options),
    })
}

/// Bytes received by the kernel that the application has not read yet (`SIOCINQ`).
fn unread_bytes(fd: RawFd) -> u64 {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD (= SIOCINQ on TCP sockets) writes one int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
    if rc == 0 { queued.max(0) as u64 } else { 0 }
}

/// Payload bytes this socket has sent, each once. `tcpi_bytes_sent` (Linux ≥ 4.19) counts a
/// write when it leaves, so a snapshot right after writing an acknowledgement packet (MQTT's
/// PUBACK) includes it; retransmitted bytes are taken out. Older kernels only offer
/// `bytes_acked`, which follows the acknowledged sequence number and so also counts the
/// connecting socket's SYN (every socket counted here is a client's; counts are read before
/// the FIN).
fn kernel_sent(info: &libc::tcp_info, len: libc::socklen_t) -> u64 {
    let has_bytes_sent =
        len as usize >= std::mem::offset_of!(libc::tcp_info, tcpi_bytes_retrans) + 8;
    if has_bytes_sent {
        info.tcpi_bytes_sent.saturating_sub(info.tcpi_bytes_retrans)
    } else {
        info.tcpi_bytes_acked.saturating_sub(1)
    }
}

/// `TCPI_OPT_TIMESTAMPS` from linux/tcp.h: the connection carries the 12-byte timestamp option
/// (10 bytes padded to 12) in every segment.
const TCPI_OPT_TIMESTAMPS: u8 = 1;

/// IP + TCP header bytes of one segment on this socket: IPv4 20 or IPv6 40, TCP 20, plus
/// timestamps when negotiated. SACK blocks, rare on loopback, are not included.
fn header_bytes_per_segment(fd: RawFd, tcp_options: u8) -> u64 {
    let ip = if is_ipv6(fd) { 40 } else { 20 };
    let timestamps = if tcp_options & TCPI_OPT_TIMESTAMPS != 0 {
        12
    } else {
        0
    };
    ip + 20 + timestamps
}

fn is_ipv6(fd: RawFd) -> bool {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is a writable sockaddr_storage of `len` bytes.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    rc == 0 && i32::from(addr.ss_family) == libc::AF_INET6
}

/// Shared counters of one connection, readable while a protocol library owns the stream.
#[derive(Debug)]
pub struct ConnCounter {
    fd: RawFd,
    /// False for a socket a library owns: its bytes then come from the kernel alone.
    counted: bool,
    sent: AtomicU64,
    received: AtomicU64,
    request_header_bytes: AtomicU64,
    response_header_bytes: AtomicU64,
    plaintext_sent: AtomicU64,
    plaintext_received: AtomicU64,
    tls_records: AtomicU64,
    /// HTTP/2: SETTINGS acknowledged in each direction (sent, received), and their waiters.
    settings_acked: [AtomicBool; 2],
    settled: Notify,
    /// The kernel's counts read just before the socket closed (its fd may be reused after).
    closed: Mutex<Option<KernelCounts>>,
}

impl ConnCounter {
    /// Everything this connection has carried so far.
    pub fn snapshot(&self) -> WireCounts {
        let kernel = match *self.closed.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(last) => last,
            None => kernel_counts(self.fd).unwrap_or_default(),
        };
        let (sent, received) = if self.counted {
            (
                self.sent.load(Ordering::Relaxed),
                self.received.load(Ordering::Relaxed),
            )
        } else {
            (kernel.sent, kernel.received)
        };
        WireCounts {
            sent,
            received,
            kernel_sent: kernel.sent,
            kernel_received: kernel.received,
            segments: kernel.segments,
            ip_bytes: kernel.ip_bytes,
            request_header_bytes: self.request_header_bytes.load(Ordering::Relaxed),
            response_header_bytes: self.response_header_bytes.load(Ordering::Relaxed),
            plaintext_sent: self.plaintext_sent.load(Ordering::Relaxed),
            plaintext_received: self.plaintext_received.load(Ordering::Relaxed),
            tls_records: self.tls_records.load(Ordering::Relaxed),
        }
    }

    /// Bytes the protocol wrote and read so far, above TLS if there is TLS (no system call).
    pub fn stream_bytes(&self) -> (u64, u64) {
        (
            self.plaintext_sent.load(Ordering::Relaxed),
            self.plaintext_received.load(Ordering::Relaxed),
        )
    }

    /// Returns once both ends of an HTTP/2 connection have acknowledged the other's SETTINGS,
    /// so that its opening frames are all counted before a caller reads them as setup.
    pub async fn h2_settled(&self) {
        loop {
            let notified = self.settled.notified();
            if self
                .settings_acked
                .iter()
                .all(|a| a.load(Ordering::Acquire))
            {
                return;
            }
            notified.await;
        }
    }

    fn settings_acked(&self, direction: usize) {
        if !self.settings_acked[direction].swap(true, Ordering::AcqRel) {
            self.settled.notify_waiters();
        }
    }

    /// Adds the header bytes of one exchange, for a client that knows where its heads end.
    pub fn count_headers(&self, request: u64, response: u64) {
        self.request_header_bytes
            .fetch_add(request, Ordering::Relaxed);
        self.response_header_bytes
            .fetch_add(response, Ordering::Relaxed);
    }

    fn new(fd: RawFd, counted: bool) -> Arc<ConnCounter> {
        Arc::new(ConnCounter {
            fd,
            counted,
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            request_header_bytes: AtomicU64::new(0),
            response_header_bytes: AtomicU64::new(0),
            plaintext_sent: AtomicU64::new(0),
            plaintext_received: AtomicU64::new(0),
            tls_records: AtomicU64::new(0),
            settings_acked: [AtomicBool::new(false), AtomicBool::new(false)],
            settled: Notify::new(),
            closed: Mutex::new(None),
        })
    }
}

impl ConnCounter {
    /// Counters of a socket that a protocol library opened and owns (rumqttc): the kernel's
    /// `TCP_INFO` is the only witness. `close` must be called before the library closes it.
    pub fn foreign(fd: RawFd) -> Arc<ConnCounter> {
        ConnCounter::new(fd, false)
    }

    /// Freezes the counts at their current values: the fd may belong to another socket later.
    pub fn close(&self) {
        let last = kernel_counts(self.fd).unwrap_or_default();
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(last);
    }
}

/// A TCP stream that counts every byte read and written.
pub struct CountingStream {
    inner: TcpStream,
    counter: Arc<ConnCounter>,
    /// Record scanners of a TLS connection (written, read): they count its records.
    records: Option<Box<(RecordScanner, RecordScanner)>>,
}

impl CountingStream {
    /// Connects to `addr` (no Nagle delay: small messages leave at once) and counts the stream.
    pub async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<CountingStream> {
        use anyhow::Context;
        let tcp = spread::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        Ok(CountingStream::new(tcp))
    }

    pub fn new(inner: TcpStream) -> Self {
        let counter = ConnCounter::new(inner.as_raw_fd(), true);
        CountingStream {
            inner,
            counter,
            records: None,
        }
    }

    /// Counts TLS records as they pass: this stream carries TLS from its first byte.
    pub fn scanning_tls(mut self) -> Self {
        self.records = Some(Box::default());
        self
    }

    /// Counts bytes just read.
    fn read(&mut self, read: &[u8]) {
        self.counter
            .received
            .fetch_add(read.len() as u64, Ordering::Relaxed);
        if let Some(scanners) = &mut self.records {
            let records = scanners.1.feed(read);
            self.counter
                .tls_records
                .fetch_add(records, Ordering::Relaxed);
        }
    }

    /// Counts `n` bytes written from the start of `bufs`.
    fn wrote<'b>(&mut self, bufs: impl IntoIterator<Item = &'b [u8]>, n: usize) {
        self.counter.sent.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(scanners) = &mut self.records {
            let records = client::feed_written(bufs, n, |b| scanners.0.feed(b));
            self.counter
                .tls_records
                .fetch_add(records, Ordering::Relaxed);
        }
    }

    /// A handle to this stream's counters that outlives the stream.
    pub fn counter(&self) -> Arc<ConnCounter> {
        Arc::clone(&self.counter)
    }
}

impl Drop for CountingStream {
    fn drop(&mut self) {
        // Runs before `inner` closes the socket: the last moment TCP_INFO is ours to read.
        self.counter.close();
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read(&buf.filled()[before..]);
        poll
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.wrote([buf], *n);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &poll {
            self.wrote(bufs.iter().map(|b| &**b), *n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn counts_bytes_both_ways_and_agrees_with_the_kernel() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(b"0123456789").await.unwrap();
            s
        });
        let mut client = CountingStream::new(TcpStream::connect(addr).await.unwrap());
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 10];
        client.read_exact(&mut buf).await.unwrap();
        let _server = server.await.unwrap();
        let counts = client.counter().snapshot();
        assert_eq!((counts.sent, counts.received), (5, 10));
        assert_eq!((counts.kernel_sent, counts.kernel_received), (5, 10));
        // SYN, SYN-ACK, ACK at least, and two data segments.
        assert!(counts.segments >= 5, "{counts:?}");
        assert!(counts.ip_bytes >= 15 + counts.segments * 40, "{counts:?}");
        let counter = client.counter();
        drop(client);
        assert_eq!(counter.snapshot().kernel_received, 10);
    }
}
