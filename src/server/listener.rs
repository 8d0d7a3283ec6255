//! A socket Portico accepts connections on, and whether they speak TLS (`[tls]`) or plain
//! HTTP.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

pub struct Listener {
    pub(super) socket: TcpListener,
    pub(super) tls: bool,
}

impl Listener {
    /// Plain HTTP/1.1 and h2c.
    pub fn plain(socket: TcpListener) -> Listener {
        Listener { socket, tls: false }
    }

    /// TLS, with the certificate of `[tls]` in the config in force.
    pub fn tls(socket: TcpListener) -> Listener {
        Listener { socket, tls: true }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// `https` or `http`, for the `listening on` line.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}
