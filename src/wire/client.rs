//! The stream a client speaks its protocol on: the counted TCP stream itself, or TLS over it.
//! Either way this layer counts the bytes the protocol wrote and read (the plaintext) and,
//! on an HTTP/2 connection, its header frames; the counting stream below counts the wire.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use super::h2::FrameScanner;
use super::{ConnCounter, CountingStream};

/// A client's connection, cleartext or TLS, counted at both levels.
pub struct ClientStream {
    inner: Layer,
    counter: Arc<ConnCounter>,
    /// Frame scanners of an HTTP/2 client connection (written, read): they count its header
    /// frames into the counter.
    h2: Option<Box<(FrameScanner, FrameScanner)>>,
}

enum Layer {
    Plain(CountingStream),
    Tls(Box<TlsStream<CountingStream>>),
}

impl ClientStream {
    pub fn plain(stream: CountingStream) -> ClientStream {
        ClientStream::over(stream.counter(), Layer::Plain(stream))
    }

    /// A TLS connection whose handshake is done: its bytes so far are the handshake's, with
    /// nothing of the protocol's yet.
    pub fn tls(stream: TlsStream<CountingStream>) -> ClientStream {
        ClientStream::over(stream.get_ref().0.counter(), Layer::Tls(Box::new(stream)))
    }

    fn over(counter: Arc<ConnCounter>, inner: Layer) -> ClientStream {
        ClientStream {
            inner,
            counter,
            h2: None,
        }
    }

    /// Counts HTTP/2 header frames as they pass: this stream is an HTTP/2 client's, from its
    /// first byte (the connection preface).
    pub fn scanning_h2(mut self) -> Self {
        self.h2 = Some(Box::new((
            FrameScanner::client_to_server(),
            FrameScanner::server_to_client(),
        )));
        self
    }

    /// A handle to this stream's counters that outlives the stream.
    pub fn counter(&self) -> Arc<ConnCounter> {
        Arc::clone(&self.counter)
    }

    fn read(&mut self, read: &[u8]) {
        self.counter
            .plaintext_received
            .fetch_add(read.len() as u64, Ordering::Relaxed);
        if let Some(scanners) = &mut self.h2 {
            let headers = scanners.1.feed(read);
            self.counter
                .response_header_bytes
                .fetch_add(headers, Ordering::Relaxed);
            if scanners.1.settings_acked() {
                self.counter.settings_acked(1);
            }
        }
    }

    fn wrote<'b>(&mut self, bufs: impl IntoIterator<Item = &'b [u8]>, n: usize) {
        self.counter
            .plaintext_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(scanners) = &mut self.h2 {
            let headers = feed_written(bufs, n, |b| scanners.0.feed(b));
            self.counter
                .request_header_bytes
                .fetch_add(headers, Ordering::Relaxed);
            if scanners.0.settings_acked() {
                self.counter.settings_acked(0);
            }
        }
    }

    fn io(&mut self) -> Pin<&mut (dyn Io + Send)> {
        match &mut self.inner {
            Layer::Plain(s) => Pin::new(s),
            Layer::Tls(s) => Pin::new(s.as_mut()),
        }
    }
}

/// Feeds the first `n` bytes of `bufs` (what a write took) to `scan`; sums what it returns.
pub(super) fn feed_written<'b>(
    bufs: impl IntoIterator<Item = &'b [u8]>,
    mut n: usize,
    mut scan: impl FnMut(&[u8]) -> u64,
) -> u64 {
    let mut found = 0;
    for buf in bufs {
        if n == 0 {
            break;
        }
        let take = n.min(buf.len());
        found += scan(&buf[..take]);
        n -= take;
    }
    found
}

/// Both layers' streams, as one trait object.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.io().poll_read(cx, buf);
        self.read(&buf.filled()[before..]);
        poll
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = self.io().poll_write(cx, buf);
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
        let poll = self.io().poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &poll {
            self.wrote(bufs.iter().map(|b| &**b), *n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Layer::Plain(s) => s.is_write_vectored(),
            Layer::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}
