//! A client connection's socket, shared between hyper and an NPH script.
//!
//! RFC 3875 §5: a non-parsed-header script writes the whole HTTP response itself, and the
//! server passes it on unchanged. hyper always writes its own status line and framing, so
//! for an NPH response on HTTP/1.x the socket is taken over (`Takeover`): from then on
//! hyper's writes are swallowed, the script's bytes go to the socket as written, and the
//! connection closes when they end (the script's framing is not trusted for keep-alive).

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyStream;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::body::ResponseBody;

/// The socket as hyper sees it.
pub struct Connection {
    /// Read through tokio's `AsyncRead`, which counts a short read as the socket drained
    /// and so saves the `EAGAIN` read after every request.
    read: OwnedReadHalf,
    shared: Arc<Shared>,
}

struct Shared {
    write: OwnedWriteHalf,
    taken_over: AtomicBool,
}

impl Shared {
    fn stream(&self) -> &TcpStream {
        self.write.as_ref()
    }
}

/// The right to take the socket over from hyper for one NPH response.
#[derive(Clone)]
pub struct Takeover {
    shared: Arc<Shared>,
}

impl Connection {
    pub fn new(stream: TcpStream) -> (Connection, Takeover) {
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            write,
            taken_over: AtomicBool::new(false),
        });
        (
            Connection {
                read,
                shared: shared.clone(),
            },
            Takeover { shared },
        )
    }
}

impl Takeover {
    /// Silences hyper on this connection and writes `head` and then `body` to the socket as
    /// they are, in the background; the socket is shut down for writing at the end.
    pub fn send_raw(self, head: Bytes, body: ResponseBody) {
        self.shared.taken_over.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            let stream = self.shared.stream();
            if write_all(stream, &head).await.is_ok() {
                let mut frames = BodyStream::new(body);
                while let Some(Ok(frame)) = frames.next().await {
                    if let Ok(data) = frame.into_data()
                        && write_all(stream, &data).await.is_err()
                    {
                        break;
                    }
                }
            }
            shutdown_write(stream);
        });
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn shutdown_write(stream: &TcpStream) {
    // SAFETY: shutdown on a socket fd we hold; errors (already closed) are irrelevant.
    unsafe {
        libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR);
    }
}

impl hyper::rt::Read for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: tokio's ReadBuf only writes initialised bytes into the unfilled part and
        // reports how many; exactly that many are then marked filled.
        let filled = unsafe {
            let mut read_buf = tokio::io::ReadBuf::uninit(buf.as_mut());
            ready!(Pin::new(&mut self.read).poll_read(cx, &mut read_buf))?;
            read_buf.filled().len()
        };
        // SAFETY: `filled` bytes were just written.
        unsafe { buf.advance(filled) };
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &self.shared;
        if shared.taken_over.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(bytes.len()));
        }
        loop {
            ready!(shared.stream().poll_write_ready(cx))?;
            match shared.stream().try_write(bytes) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let shared = &self.shared;
        if shared.taken_over.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        loop {
            ready!(shared.stream().poll_write_ready(cx))?;
            match shared.stream().try_write_vectored(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // After a takeover the raw writer shuts the socket down once the script is done.
        if !self.shared.taken_over.load(Ordering::SeqCst) {
            shutdown_write(self.shared.stream());
        }
        Poll::Ready(Ok(()))
    }
}
