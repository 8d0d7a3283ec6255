//! A socket Portico accepts connections on: TCP speaking plain HTTP (HTTP/1.1, h2c) or TLS
//! (`[tls]`), or a unix socket for a front proxy on the same host.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

use crate::connection::Stream;

pub struct Listener {
    socket: Socket,
    pub(super) tls: bool,
}

enum Socket {
    Tcp(TcpListener),
    /// `path` is removed from the file system when the listener is dropped; a socket
    /// handed over by systemd has none (its unit owns the file).
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
    },
}

/// Who is on each end of an accepted connection.
pub(super) struct Ends {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub unix: bool,
}

/// A unix socket's peer has no network address, and RFC 3875 §4.1.8 wants one in
/// REMOTE_ADDR: it is on this host, so the loopback's. SERVER_PORT is plain HTTP's; a
/// trusted proxy's X-Forwarded-* (`trusted_proxies = ["unix"]`) say what the client used.
const UNIX_REMOTE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const UNIX_LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 80);

impl Listener {
    /// Plain HTTP/1.1 and h2c.
    pub fn plain(socket: TcpListener) -> Listener {
        Listener {
            socket: Socket::Tcp(socket),
            tls: false,
        }
    }

    /// TLS, with the certificate of `[tls]` in the config in force.
    pub fn tls(socket: TcpListener) -> Listener {
        Listener {
            socket: Socket::Tcp(socket),
            tls: true,
        }
    }

    /// Binds a unix socket at `path` with permissions `mode` and, when given, group
    /// `group`. A socket file left by a server that is gone is replaced; one that a live
    /// server answers on, or a file that is no socket, is an error.
    pub fn unix(path: &Path, mode: u32, group: Option<u32>) -> io::Result<Listener> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server is listening on it",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        if let Some(gid) = group {
            std::os::unix::fs::lchown(path, None, Some(gid))?;
        }
        Ok(Listener {
            socket: Socket::Unix {
                listener,
                path: Some(path.to_owned()),
            },
            tls: false,
        })
    }

    /// A listening socket handed over by systemd (socket activation), TCP or unix as it
    /// turns out to be; `tls` for one its unit named `https`.
    pub fn inherited(fd: OwnedFd, tls: bool) -> io::Result<Listener> {
        // SAFETY: getsockname fills at most `len` bytes of the local storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let got = unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut storage).cast(), &mut len) };
        if got != 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = match i32::from(storage.ss_family) {
            libc::AF_UNIX => {
                let std = std::os::unix::net::UnixListener::from(fd);
                std.set_nonblocking(true)?;
                Socket::Unix {
                    listener: UnixListener::from_std(std)?,
                    path: None,
                }
            }
            libc::AF_INET | libc::AF_INET6 => {
                let std = std::net::TcpListener::from(fd);
                std.set_nonblocking(true)?;
                Socket::Tcp(TcpListener::from_std(std)?)
            }
            family => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not a TCP or unix stream socket (family {family})"),
                ));
            }
        };
        if tls && matches!(socket, Socket::Unix { .. }) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS listens on TCP sockets only",
            ));
        }
        Ok(Listener { socket, tls })
    }

    /// Where it listens, as the `listening on` line says it.
    pub fn describe(&self) -> String {
        match &self.socket {
            Socket::Tcp(socket) => match socket.local_addr() {
                Ok(addr) if self.tls => format!("https://{addr}"),
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "an unknown address".into(),
            },
            Socket::Unix {
                path: Some(path), ..
            } => format!("unix:{}", path.display()),
            Socket::Unix { listener, .. } => match listener.local_addr() {
                Ok(addr) => match addr.as_pathname() {
                    Some(path) => format!("unix:{}", path.display()),
                    None => "an unnamed unix socket".into(),
                },
                Err(_) => "a unix socket".into(),
            },
        }
    }

    /// The TCP address, for a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(socket) => socket.local_addr().ok(),
            Socket::Unix { .. } => None,
        }
    }

    pub(super) async fn accept(&self) -> io::Result<(Stream, Ends)> {
        match &self.socket {
            Socket::Tcp(socket) => {
                let (stream, remote) = socket.accept().await?;
                let local = stream.local_addr()?;
                let _ = stream.set_nodelay(true);
                let ends = Ends {
                    remote,
                    local,
                    unix: false,
                };
                Ok((Stream::Tcp(stream), ends))
            }
            Socket::Unix { listener, .. } => {
                let (stream, _) = listener.accept().await?;
                let ends = Ends {
                    remote: UNIX_REMOTE,
                    local: UNIX_LOCAL,
                    unix: true,
                };
                Ok((Stream::Unix(stream), ends))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Socket::Unix {
            path: Some(path), ..
        } = &self.socket
        {
            let _ = std::fs::remove_file(path);
        }
    }
}
