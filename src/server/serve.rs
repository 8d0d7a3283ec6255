//! The server proper: each listener's accept loop, bounded by `max_connections`; hyper on
//! every connection; a new gateway swapped in on reload while the old one drains
//! (`retire`); and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::ResponseBody;
use crate::config::Config;
use crate::connection::{Connection, Lingering, Timeouts};
use crate::gateway::{Gateway, Peer};

use super::Listener;

/// How often processes that escaped a script's group are looked for: one is killed one to
/// two sweeps after its parent exits.
const ORPHAN_SWEEP: Duration = Duration::from_millis(500);

/// Serves until `shutdown` resolves, then stops accepting, lets requests in flight finish
/// for up to `shutdown_timeout`, ends the scripts still running and returns.
///
/// A config arriving on `reloads` (SIGHUP) gets a new gateway, whose launched workers start
/// at once; new requests go to it, and the old one is retired once its requests are done.
/// Listen addresses and connection limits stay as they were at start; a TLS listener
/// presents the certificate of the config in force when each connection arrives.
pub async fn run(
    config: Arc<Config>,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
    reloads: mpsc::Receiver<Arc<Config>>,
) -> std::io::Result<()> {
    let gateway = Gateway::new(config.clone())?;
    let sweeper = match config.limits.kill_orphans {
        true => match crate::orphans::adopt() {
            Ok(()) => Some(crate::orphans::spawn_sweeper(ORPHAN_SWEEP)),
            Err(error) => {
                tracing::warn!(%error, "orphans of scripts cannot be adopted; they will outlive their requests");
                None
            }
        },
        false => None,
    };
    serve(config, gateway, listeners, shutdown, reloads).await;
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    Ok(())
}

/// `run` once the gateway exists: a gateway that cannot start (an access log that does not
/// open, workers that cannot be launched) is an error before anything is served.
pub(super) async fn serve(
    config: Arc<Config>,
    gateway: Gateway,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<Arc<Config>>,
) {
    let gateway = Arc::new(ArcSwap::from_pointee(gateway));
    let retiring = TaskTracker::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.header_read_timeout)
        .max_buf_size(config.limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let builder = Arc::new(builder);
    // Accepting stops when `stop` fires; each connection then finishes its request in flight.
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    // At the limit, accepting pauses and new clients wait in the listen backlog.
    let open = Arc::new(Semaphore::new(config.limits.max_connections));
    let lingering = Lingering {
        time: config.limits.lingering_time,
        timeout: config.limits.lingering_timeout,
        max_bytes: config.limits.max_lingering_bytes,
    };
    let timeouts = Timeouts {
        first_byte: config.limits.header_read_timeout,
        send: config.limits.send_timeout,
    };

    let mut acceptors = JoinSet::new();
    for listener in listeners {
        let open = open.clone();
        let (gateway, builder, stop, connections) = (
            gateway.clone(),
            builder.clone(),
            stop.clone(),
            connections.clone(),
        );
        acceptors.spawn(async move {
            loop {
                let slot = tokio::select! {
                    slot = open.clone().acquire_owned() => slot,
                    _ = stop.cancelled() => break,
                };
                let Ok(slot) = slot else { break };
                let (stream, ends) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(error) => {
                            // EMFILE and the like: back off instead of spinning.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = stop.cancelled() => break,
                };
                let remote = ends.remote;
                let (io, takeover, closer) = Connection::new(stream, timeouts);
                let tls = listener
                    .tls
                    .then(|| gateway.load().config().tls.clone())
                    .map(|tls| {
                        // A reload that dropped [tls] leaves nothing to present: refuse.
                        tls.map(|tls| TlsAcceptor::from(tls.server_config))
                    });
                let peer = Peer {
                    remote,
                    local: ends.local,
                    unix: ends.unix,
                    forwarded: Default::default(),
                    tls: tls.is_some(),
                    // An NPH script's raw bytes cannot go under TLS: its head is parsed.
                    takeover: tls.is_none().then_some(takeover),
                };
                let gateway = gateway.clone();
                let service = service_fn(move |request| {
                    let gateway = gateway.load_full();
                    let peer = peer.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
                });
                let builder = builder.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    // Held through the lingering close too, which its bounds keep short.
                    let _slot = slot;
                    let result = match tls {
                        None => drive(&builder, io, service, &stop).await,
                        Some(None) => return,
                        Some(Some(acceptor)) => {
                            let handshake = acceptor.accept(TokioIo::new(io));
                            match tokio::time::timeout(timeouts.first_byte, handshake).await {
                                Ok(Ok(stream)) => {
                                    drive(&builder, TokioIo::new(stream), service, &stop).await
                                }
                                Ok(Err(error)) => {
                                    tracing::debug!(%remote, %error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%remote, "TLS handshake timed out");
                                    return;
                                }
                            }
                        }
                    };
                    let timed_out = result.as_ref().is_err_and(|error| timed_out(&**error));
                    if let Err(error) = result {
                        tracing::debug!(%remote, error, "connection ended with an error");
                    }
                    // A client cut off at a timeout (nothing sent, a head too slow, a
                    // response it stopped reading) is owed nothing a reset could destroy,
                    // and lingering would let it hold its slot longer.
                    if !timed_out && let Some(cut_off) = closer.close(lingering).await {
                        tracing::debug!(%remote, ?cut_off, "lingering close cut off");
                    }
                });
            }
        });
    }

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(new) = reloads.recv() => match Gateway::new(new) {
                Ok(new) => {
                    let old = gateway.swap(Arc::new(new));
                    tracing::info!("config reloaded: new requests go to the new gateway");
                    retiring.spawn(retire(old, config.limits.shutdown_timeout));
                }
                Err(error) => tracing::error!(%error, "config reload failed: keeping the running one"),
            },
        }
    }
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    stop.cancel();
    while acceptors.join_next().await.is_some() {}
    connections.close();
    if tokio::time::timeout(config.limits.shutdown_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout: ending the scripts still running");
    }
    retiring.close();
    retiring.wait().await;
    gateway.load().kill_all_and_wait().await;
}

/// Serves one connection with hyper until it ends, or finishes its request in flight once
/// `stop` fires.
async fn drive<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    stop: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<ResponseBody>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// Lets a replaced gateway's requests finish (up to `timeout`), then stops it and its workers.
async fn retire(old: Arc<Gateway>, timeout: Duration) {
    let finished = async {
        // Requests being dispatched hold the gateway; their bodies are the backends' tasks.
        while Arc::strong_count(&old) > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        old.wait_idle().await;
    };
    if tokio::time::timeout(timeout, finished).await.is_err() {
        tracing::warn!("the replaced config's requests passed the shutdown timeout: ending them");
    }
    old.kill_all_and_wait().await;
    tracing::info!("the replaced config's workers are stopped");
}

/// Whether a connection ended at one of the timeouts on its client: hyper's header read
/// timeout, or the first-byte and send timeouts of `connection`.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
            || error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = error.source();
    }
    false
}
