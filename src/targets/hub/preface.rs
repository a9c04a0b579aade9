//! Which HTTP a new connection speaks: cleartext HTTP/2 with prior knowledge opens with the
//! connection preface (RFC 9113 §3.4), anything else is HTTP/1.1. The hub decides itself
//! instead of using hyper-util's `auto` server, whose version detection waits without a
//! timeout: a client that connected and sent nothing would escape `header_timeout`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::wire::CLIENT_PREFACE;

/// The HTTP version a connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opened {
    Http1,
    Http2,
}

/// Reads until the first bytes match the preface or cannot; the bytes read are replayed to
/// the HTTP server by the returned stream. An HTTP/1.1 request differs from the preface by
/// its second byte at the latest (`PRI` is no HTTP/1.1 method the hub serves).
pub(super) async fn read_preface<S: AsyncRead + Unpin>(
    mut stream: S,
) -> io::Result<(Opened, Replayed<S>)> {
    let mut seen = [0u8; CLIENT_PREFACE.len()];
    let mut filled = 0;
    let opened = loop {
        let n = stream.read(&mut seen[filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        if seen[..filled] != CLIENT_PREFACE[..filled] {
            break Opened::Http1;
        }
        if filled == CLIENT_PREFACE.len() {
            break Opened::Http2;
        }
    };
    Ok((
        opened,
        Replayed {
            first: Bytes::copy_from_slice(&seen[..filled]),
            inner: stream,
        },
    ))
}

/// A stream (TCP, or TLS over it) whose first bytes, already read, are read again.
pub(super) struct Replayed<S> {
    first: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.first.has_remaining() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first[..n]);
            self.first.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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
