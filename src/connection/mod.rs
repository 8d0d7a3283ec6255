//! A client connection's socket, shared between hyper and an NPH script.
//!
//! RFC 3875 §5: a non-parsed-header script writes the whole HTTP response itself, and the
//! server passes it on unchanged. hyper always writes its own status line and framing, so
//! for an NPH response on HTTP/1.x the socket is taken over (`Takeover`): from then on
//! hyper's writes are swallowed, the script's bytes go to the socket as written, and the
//! connection closes when they end (the script's framing is not trusted for keep-alive).
//!
//! It also owns how the socket is closed once hyper is done with it (`Closer`). Closing a
//! socket with request bytes still unread makes the kernel answer with a reset, which
//! throws away whatever of the response the client has not received yet (RFC 9112 §9.6).
//! hyper stops reading when a handler answers without reading the whole body (a CGI
//! script that never reads stdin) and closes the connection, so the close is made in
//! stages, as Apache (`ap_lingering_close`) and nginx (`lingering_close`) do: shut the
//! write side down, read and discard what the client still sends until it closes its
//! side, for a bounded time and number of bytes (`Lingering`), then close.

use std::future::Future;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyStream;
use tokio::io::AsyncRead;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::body::ResponseBody;

mod socket;

pub use socket::Stream;
use socket::{ReadHalf, WriteHalf};

/// The socket as hyper sees it.
pub struct Connection {
    /// Read through tokio's `AsyncRead`, which counts a short read as the socket drained
    /// and so saves the `EAGAIN` read after every request.
    read: ReadHalf,
    shared: Arc<Shared>,
    /// Armed when a write finds the socket full; a write that makes progress disarms it.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Until the client's first byte: when it must have come by, and the timer for it.
    first_byte: Option<(Instant, Option<Pin<Box<Sleep>>>)>,
}

struct Shared {
    /// Dropped in `Drop for Shared`, where tokio's shutdown-on-drop is skipped when the
    /// write side is already shut down.
    write: ManuallyDrop<WriteHalf>,
    taken_over: AtomicBool,
    /// A read returned end-of-file: the client closed its side, so no request byte can be
    /// left unread and closing cannot provoke a reset.
    peer_closed: AtomicBool,
    /// shutdown(SHUT_WR) was called: the FIN is queued after the last response byte.
    write_shut: AtomicBool,
    /// The task writing an NPH script's response; the close waits for it.
    raw_writer: Mutex<Option<JoinHandle<()>>>,
    /// How long a write may wait for a client that does not read (`send_timeout_seconds`).
    send_timeout: Duration,
}

impl Shared {
    fn stream(&self) -> &WriteHalf {
        &self.write
    }

    fn shutdown_write(&self) {
        if !self.write_shut.swap(true, Ordering::Relaxed) {
            // SAFETY: shutdown on a socket fd we hold; errors (already closed) are irrelevant.
            unsafe {
                libc::shutdown(self.stream().as_raw_fd(), libc::SHUT_WR);
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: `write` is taken once, here, and `self` is not used after this.
        let write = unsafe { ManuallyDrop::take(&mut self.write) };
        if self.write_shut.load(Ordering::Relaxed) {
            // Saves the second shutdown(2), which would fail with ENOTCONN anyway.
            write.forget();
        }
    }
}

/// The right to take the socket over from hyper for one NPH response.
#[derive(Clone)]
pub struct Takeover {
    shared: Arc<Shared>,
}

/// The socket once hyper is done with it, to be closed without resetting the response.
pub struct Closer {
    shared: Arc<Shared>,
}

/// The bounds on a client that sends or reads nothing.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From accept to the client's first byte.
    pub first_byte: Duration,
    /// The longest a response write waits for the client to take a byte.
    pub send: Duration,
}

/// The bounds of a lingering close (`[limits] lingering_*` in the config).
#[derive(Clone, Copy, Debug)]
pub struct Lingering {
    /// From the start of the lingering close to the end, whatever the client sends.
    pub time: Duration,
    /// The longest wait for the client's next bytes (or its end-of-file).
    pub timeout: Duration,
    /// Bytes read and discarded before giving up on the client closing first.
    pub max_bytes: u64,
}

/// Which bound ended a lingering close before the client closed its side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutOff {
    Time,
    Timeout,
    Bytes,
}

impl Connection {
    /// `timeouts`: how long the client has to send its first byte (hyper's header read
    /// timeout starts only once the HTTP version is known), and how long a write may wait
    /// for a client that does not read.
    pub fn new(stream: Stream, timeouts: Timeouts) -> (Connection, Takeover, Closer) {
        let send_timeout = timeouts.send;
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            write: ManuallyDrop::new(write),
            taken_over: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
            write_shut: AtomicBool::new(false),
            raw_writer: Mutex::new(None),
            send_timeout,
        });
        (
            Connection {
                read,
                shared: shared.clone(),
                stalled: None,
                first_byte: Some((Instant::now() + timeouts.first_byte, None)),
            },
            Takeover {
                shared: shared.clone(),
            },
            Closer { shared },
        )
    }
}

impl Takeover {
    /// Silences hyper on this connection and writes `head` and then `body` to the socket as
    /// they are, in the background; the socket is shut down for writing at the end.
    pub fn send_raw(self, head: Bytes, body: ResponseBody) {
        self.shared.taken_over.store(true, Ordering::SeqCst);
        let shared = self.shared.clone();
        let writer = tokio::spawn(async move {
            let stream = shared.stream();
            let timeout = shared.send_timeout;
            if write_all(stream, &head, timeout).await.is_ok() {
                let mut frames = BodyStream::new(body);
                while let Some(Ok(frame)) = frames.next().await {
                    if let Ok(data) = frame.into_data()
                        && write_all(stream, &data, timeout).await.is_err()
                    {
                        break;
                    }
                }
            }
            shared.shutdown_write();
        });
        *self
            .shared
            .raw_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(writer);
    }
}

impl Closer {
    /// Closes the socket once the last response is out: at once when the client has closed
    /// its side already (a keep-alive connection ending normally), else after a lingering
    /// close. Returns the bound that ended the lingering, if one did.
    ///
    /// RFC 9112 §9.6: a server that closes while the client is still sending makes its
    /// TCP stack send a reset, "which might erase the client's unacknowledged input
    /// buffers"; so it half-closes first and reads until the client closes too. Apache
    /// (`ap_lingering_close`: 2 s per read, 30 s in all) and nginx (`lingering_timeout`
    /// 5 s, `lingering_time` 30 s) bound that wait; so does `lingering`.
    pub async fn close(self, lingering: Lingering) -> Option<CutOff> {
        // An NPH script's bytes are still being written by their own task.
        if self.shared.taken_over.load(Ordering::SeqCst) {
            let writer = self
                .shared
                .raw_writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(writer) = writer {
                let _ = writer.await;
            }
        }
        if self.shared.peer_closed.load(Ordering::Relaxed) {
            return None;
        }
        self.shared.shutdown_write();
        lingering.drain(self.shared.stream()).await
    }
}

impl Lingering {
    /// Reads and discards until end-of-file, an error, or a bound.
    async fn drain(self, stream: &WriteHalf) -> Option<CutOff> {
        let deadline = Instant::now() + self.time;
        let mut discard = Vec::new();
        let mut drained = 0u64;
        loop {
            if drained >= self.max_bytes {
                return Some(CutOff::Bytes);
            }
            let idle = Instant::now() + self.timeout;
            match tokio::time::timeout_at(idle.min(deadline), stream.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) if idle < deadline => return Some(CutOff::Timeout),
                Err(_) => return Some(CutOff::Time),
            }
            if discard.is_empty() {
                // Only lingering connections pay for the buffer.
                discard = vec![0; 64 * 1024];
            }
            match stream.try_read(&mut discard) {
                Ok(0) => return None,
                Ok(n) => drained += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                // A reset from the client: nothing more to protect.
                Err(_) => return None,
            }
        }
    }
}

/// Writes all of `bytes`, giving up when the client takes nothing for `timeout`.
async fn write_all(stream: &WriteHalf, mut bytes: &[u8], timeout: Duration) -> io::Result<()> {
    while !bytes.is_empty() {
        tokio::time::timeout(timeout, stream.writable())
            .await
            .map_err(|_| stall_error(timeout))??;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl hyper::rt::Read for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: tokio's ReadBuf only writes initialised bytes into the unfilled part and
        // reports how many; exactly that many are then marked filled.
        let read = unsafe {
            let mut read_buf = tokio::io::ReadBuf::uninit(buf.as_mut());
            match Pin::new(&mut self.read).poll_read(cx, &mut read_buf) {
                Poll::Ready(r) => Poll::Ready(r.map(|()| read_buf.filled().len())),
                Poll::Pending => Poll::Pending,
            }
        };
        let filled = match read {
            Poll::Ready(filled) => {
                self.first_byte = None;
                filled?
            }
            Poll::Pending => return self.poll_first_byte(cx),
        };
        if filled == 0 && buf.remaining() > 0 {
            self.shared.peer_closed.store(true, Ordering::Relaxed);
        }
        // SAFETY: `filled` bytes were just written.
        unsafe { buf.advance(filled) };
        Poll::Ready(Ok(()))
    }
}

impl Connection {
    /// A connection on which nothing has come yet gives up at its first-byte deadline:
    /// hyper-util detects the HTTP version before hyper's header read timeout starts, and
    /// would wait for a silent client for ever (slowloris with no bytes at all).
    fn poll_first_byte(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((deadline, timer)) = &mut self.first_byte else {
            return Poll::Pending;
        };
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(*deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client sent nothing within header_read_timeout_seconds",
        )))
    }

    /// Ready when the socket may take bytes; an error once it has taken none for the send
    /// timeout (a write that takes some disarms it). hyper has no write timeout of its own, and a client that stops reading
    /// would otherwise hold its connection, and the script or FastCGI request behind it,
    /// for as long as the program takes to finish (or forever, for a stream).
    fn poll_ready_to_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.shared.stream().poll_write_ready(cx) {
            Poll::Ready(ready) => Poll::Ready(ready),
            Poll::Pending => {
                let timeout = self.shared.send_timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stalled.as_mut().poll(cx));
                Poll::Ready(Err(stall_error(timeout)))
            }
        }
    }
}

/// The error a write gives up with on a client that stopped reading.
fn stall_error(timeout: Duration) -> io::Error {
    tracing::info!(
        "client took no response byte for {:.1} s (send_timeout_seconds): closing",
        timeout.as_secs_f64()
    );
    io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")
}

impl hyper::rt::Write for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shared.taken_over.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(bytes.len()));
        }
        loop {
            ready!(this.poll_ready_to_write(cx))?;
            match this.shared.stream().try_write(bytes) {
                Ok(n) => {
                    this.stalled = None;
                    return Poll::Ready(Ok(n));
                }
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
        let this = self.get_mut();
        if this.shared.taken_over.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        loop {
            ready!(this.poll_ready_to_write(cx))?;
            match this.shared.stream().try_write_vectored(bufs) {
                Ok(n) => {
                    this.stalled = None;
                    return Poll::Ready(Ok(n));
                }
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
            self.shared.shutdown_write();
        }
        Poll::Ready(Ok(()))
    }
}
