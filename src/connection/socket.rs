//! The client's stream socket, TCP or unix (a front proxy on the same host), behind one
//! type: `Connection` reads, writes, half-closes and lingers on either the same way.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpStream, UnixStream, tcp, unix};

/// An accepted client connection.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub(super) fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(stream) => {
                let (read, write) = stream.into_split();
                (ReadHalf::Tcp(read), WriteHalf::Tcp(write))
            }
            Stream::Unix(stream) => {
                let (read, write) = stream.into_split();
                (ReadHalf::Unix(read), WriteHalf::Unix(write))
            }
        }
    }
}

pub(super) enum ReadHalf {
    Tcp(tcp::OwnedReadHalf),
    Unix(unix::OwnedReadHalf),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(read) => Pin::new(read).poll_read(cx, buf),
            ReadHalf::Unix(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

/// The write half, which also gives the socket itself for readiness and lingering reads.
pub(super) enum WriteHalf {
    Tcp(tcp::OwnedWriteHalf),
    Unix(unix::OwnedWriteHalf),
}

/// Calls the same method on whichever socket it is.
macro_rules! either {
    ($half:expr, $stream:ident => $call:expr) => {
        match $half {
            WriteHalf::Tcp(write) => {
                let $stream: &TcpStream = write.as_ref();
                $call
            }
            WriteHalf::Unix(write) => {
                let $stream: &UnixStream = write.as_ref();
                $call
            }
        }
    };
}

impl WriteHalf {
    pub(super) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        either!(self, stream => stream.try_write(bytes))
    }

    pub(super) fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        either!(self, stream => stream.try_write_vectored(bufs))
    }

    pub(super) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, stream => stream.poll_write_ready(cx))
    }

    pub(super) async fn writable(&self) -> io::Result<()> {
        either!(self, stream => stream.writable().await)
    }

    pub(super) async fn readable(&self) -> io::Result<()> {
        either!(self, stream => stream.readable().await)
    }

    pub(super) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        either!(self, stream => stream.try_read(buf))
    }

    /// Drops the half without tokio's shutdown-on-drop (the socket is shut down already).
    pub(super) fn forget(self) {
        match self {
            WriteHalf::Tcp(write) => write.forget(),
            WriteHalf::Unix(write) => write.forget(),
        }
    }
}

impl AsRawFd for WriteHalf {
    fn as_raw_fd(&self) -> RawFd {
        either!(self, stream => stream.as_raw_fd())
    }
}
