//! Portico's server inside another program: `portico bench` loads it and `portico explain`
//! sends its request to it. It is the real server (the gateway and every backend, as
//! `serve` runs them) on 127.0.0.1:0 in the caller's runtime, and its handle stops it the
//! way SIGTERM stops `serve`. A tool gets an address and a stop from it, nothing of the
//! server's insides, so what the tool measures or shows is what a client of `serve` gets.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::gateway::Gateway;

/// A running in-process server. Dropped without [`Local::shutdown`], it shuts down in the
/// background, as long as its runtime runs.
pub struct Local {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<()>,
    /// Held so that the reload channel stays open; nothing reloads an in-process server.
    _reloads: mpsc::Sender<Arc<Config>>,
}

impl Local {
    /// Serves `config` on 127.0.0.1:0 (whatever its `listen` says) in the current runtime.
    /// Launched workers start in the background, as under `serve`; a gateway that cannot
    /// start (an access log that does not open, an app that cannot be launched) is an error
    /// here.
    pub async fn start(config: Arc<Config>) -> io::Result<Local> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let gateway = Gateway::new(config.clone())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (reloads_tx, reloads) = mpsc::channel(1);
        let shutdown = async {
            // A dropped handle stops the server too.
            let _ = stopped.await;
        };
        let serving = tokio::spawn(super::serve::serve(
            config,
            gateway,
            vec![super::Listener::plain(listener)],
            shutdown,
            reloads,
        ));
        Ok(Local {
            addr,
            stop,
            serving,
            _reloads: reloads_tx,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the requests in flight finish (up to the config's shutdown
    /// timeout), ends the scripts still running and stops the launched workers; returns
    /// once all of them are reaped.
    pub async fn shutdown(self) -> io::Result<()> {
        let _ = self.stop.send(());
        self.serving.await.map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ServeArgs;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_on_loopback_until_shut_down() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            cgi_dir: Some(dir.path().to_owned()),
            ..ServeArgs::default()
        };
        let config = Arc::new(crate::config::load(&args).unwrap());
        let local = Local::start(config).await.unwrap();
        let addr = local.addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /cgi-bin/none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");

        local.shutdown().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
