//! The read side of one FastCGI request (FastCGI spec §6.2), and its end: records from
//! the application until FCGI_END_REQUEST, the head through the CGI head parser (a
//! FastCGI responder writes a CGI response, §6.2), the body to the client with
//! backpressure, the deadlines, the request's access line, and the connection given
//! back, kept when the request ended cleanly.
//!
//! A request whose kept connection turns out closed before any record came back is sent
//! once more on a fresh connection when that can do no harm (`resend`). A client that goes
//! away gets its request aborted with FCGI_ABORT_REQUEST (§5.4) and its connection closed
//! once the application has ended the request (or after a grace period): libfcgi closes a
//! connection after an abort anyway.
//!
//! A persistent CGI runner's request (`Job::runner`) may end otherwise: declined by its
//! head, or broken off by its worker before any head. Neither reaches the client nor the
//! access log: both go back to the gateway as `Error::Declined`, which answers them with
//! plain CGI (`gateway::persistent`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::half::{HalfConn, split};
use super::in_flight;
use super::job::Job;
use super::pool::{Endpoint, Lease, Link, Pool};
use super::send::{Opening, Replay, Sending};
use crate::backend::{Owners, Reply, ReplySender, RequestLine, Stop};
use crate::error::Error;

mod finish;
mod read;

impl Exchange {
    /// The request of `job`, about to go out on `link` under `lease`.
    pub(super) fn new(
        job: Job,
        lease: Lease,
        link: Link,
        tx: ReplySender,
        kill_all: CancellationToken,
        pool: &Pool,
    ) -> Exchange {
        // A kept connection may turn out closed by the app just as this request goes out:
        // then it is sent once more on a fresh one, if that cannot do harm.
        let line = job.request.line;
        let opening = Opening {
            role: job.role,
            params: job.params,
        };
        let replay = match &link {
            Link::Direct(conn) if conn.requests > 0 => {
                Replay::of(&opening, &job.request.body, &line.method)
            }
            _ => None,
        };
        // Only a request on a new connection can sit in a listen queue that nobody will
        // accept from once the app is stopped; a kept one was accepted by a live worker,
        // whose death ends it. The common case so pays nothing for watching.
        match &link {
            Link::Direct(conn) if conn.requests == 0 => lease.endpoint.opened.inc(),
            _ => lease.endpoint.reused.inc(),
        };
        let stopping = match &link {
            Link::Direct(conn) if conn.requests == 0 => Some(pool.stopping()),
            _ => None,
        };
        let in_flight = pool.in_flight.enter(in_flight::Request {
            method: line.method.clone(),
            path: line.path.clone(),
            client: line.client,
            id: line.id.clone(),
            started: line.started,
            endpoint: lease.endpoint.clone(),
        });
        let (half, writer) = split(link);
        let sending = Sending::start(writer, half.id, opening, job.request.body);
        Exchange {
            mount: job.mount,
            runner: job.runner,
            endpoint: lease.endpoint.clone(),
            read_timeout: job.read_timeout,
            total: job
                .request_timeout
                .map(|t| tokio::time::Instant::from_std(line.started) + t),
            is_head_request: line.method == Method::HEAD,
            line,
            in_flight: Some(in_flight),
            kill_all,
            stopping,
            lease: Some(lease),
            conn: Some(half),
            sending: Some(sending),
            replay,
            heard: false,
            write_failed: false,
            head_tx: Some(tx.head),
            ready: None,
            body_tx: Some(tx.body),
            complete: tx.complete,
            head_buf: BytesMut::new(),
            status: None,
            sent: 0,
            app_status: None,
            redirected: false,
            failed: None,
            unsent: None,
        }
    }

    /// Reads in the request's own future while records are ready, so that a small
    /// response that arrives whole costs no task; the rest goes on as a task of `owners`.
    pub(super) async fn run(mut self, owners: &Owners) {
        match self.pump(true).await {
            Pumped::Ended(stop) => {
                self.finish(stop).await;
                // The connection just went back to the pool and may have woken a request
                // waiting for it: let that one send before this response is written, so
                // the app gets its next request at once.
                tokio::task::yield_now().await;
            }
            Pumped::Waiting => {
                owners.tasks.spawn(async move {
                    let stop = match self.pump(false).await {
                        Pumped::Ended(stop) => stop,
                        Pumped::Waiting => closed(),
                    };
                    self.finish(stop).await;
                });
            }
        }
    }
}

/// The read side of one request: records until END_REQUEST.
///
/// It starts in the request's own future and goes on there while records are ready: a
/// small response that arrives whole (head, body, END_REQUEST) is answered without a task
/// or a wake-up of its own. Whatever is still to come after the head is left to a task.
/// Dropped before the head is out (the client went away), it aborts the request.
pub(super) struct Exchange {
    mount: String,
    /// A persistent CGI runner's request (`Job::runner`).
    runner: bool,
    endpoint: Arc<Endpoint>,
    read_timeout: Duration,
    /// A launched app's `request_timeout`, as a deadline.
    total: Option<tokio::time::Instant>,
    is_head_request: bool,
    line: RequestLine,
    /// The request's row on the status page, taken out once its access line is written.
    in_flight: Option<in_flight::Entered>,
    kill_all: CancellationToken,
    /// Cancelled when the application is stopped (a launched app that keeps dying).
    stopping: Option<CancellationToken>,
    /// Taken by `finish`; still here on drop means the request was cut short.
    lease: Option<Lease>,
    conn: Option<HalfConn>,
    sending: Option<Sending>,
    /// The request, while it may be sent again on a fresh connection.
    replay: Option<Replay>,
    /// A record has come back on this connection: the app took the request.
    heard: bool,
    /// Writing the request failed: the app cannot have read all of it.
    write_failed: bool,
    head_tx: Option<oneshot::Sender<Reply>>,
    /// A head read in the request's own future, held back until the response is known not
    /// to fail at once: the client then gets a 502 rather than a head and nothing.
    ready: Option<Reply>,
    /// Dropped once the response has ended, so the client's body ends too.
    body_tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    complete: Arc<AtomicBool>,
    head_buf: BytesMut,
    status: Option<StatusCode>,
    sent: u64,
    /// FCGI_END_REQUEST's appStatus (§5.5), once it came.
    app_status: Option<u32>,
    /// The head was a local redirect: the rest of the app's output is not needed.
    redirected: bool,
    /// Why the request failed before its head, answered once the exchange ends.
    failed: Option<Error>,
    /// A body chunk read while the body channel was full, sent first by the task.
    unsent: Option<io::Result<Bytes>>,
}

/// A connection that ended before FCGI_END_REQUEST.
fn closed() -> Stop {
    Stop::Broken("upstream closed before END_REQUEST".to_owned())
}

/// Where `Exchange::pump` stopped.
enum Pumped {
    Ended(Stop),
    /// The head is out and no record is ready: the rest is for a task.
    Waiting,
}

impl Exchange {
    /// Sends the request if it is all at hand, then reads records until the request ends or,
    /// with `detach`, until the head is out and nothing more is ready.
    async fn pump(&mut self, detach: bool) -> Pumped {
        let end = self.read(detach).await;
        // A head held back goes out now unless the request failed in this very call.
        if matches!(end, Pumped::Waiting) && !self.release_head() {
            return Pumped::Ended(Stop::ClientGone);
        }
        end
    }

    /// Sends a head held back by the first call; false if the client has gone.
    fn release_head(&mut self) -> bool {
        match (self.ready.take(), self.head_tx.take()) {
            (Some(reply), Some(tx)) => tx.send(reply).is_ok(),
            (None, tx) => {
                self.head_tx = tx;
                true
            }
            (Some(_), None) => false,
        }
    }
}

/// An exchange dropped before `finish` lost its client while still in the request's own
/// future: the request is aborted by a task of its own (§5.4).
impl Drop for Exchange {
    fn drop(&mut self) {
        if self.lease.is_none() {
            return;
        }
        let mut rest = Exchange {
            mount: std::mem::take(&mut self.mount),
            runner: self.runner,
            endpoint: self.endpoint.clone(),
            read_timeout: self.read_timeout,
            total: self.total,
            is_head_request: self.is_head_request,
            line: RequestLine {
                id: self.line.id.clone(),
                method: self.line.method.clone(),
                path: self.line.path.clone(),
                client: self.line.client,
                started: self.line.started,
                access: self.line.access.take(),
                metrics: self.line.metrics.take(),
            },
            in_flight: self.in_flight.take(),
            kill_all: self.kill_all.clone(),
            stopping: self.stopping.clone(),
            lease: self.lease.take(),
            conn: self.conn.take(),
            sending: self.sending.take(),
            replay: None,
            heard: self.heard,
            write_failed: self.write_failed,
            head_tx: self.head_tx.take(),
            ready: self.ready.take(),
            body_tx: self.body_tx.take(),
            complete: self.complete.clone(),
            head_buf: BytesMut::new(),
            status: self.status,
            sent: self.sent,
            app_status: self.app_status,
            redirected: self.redirected,
            failed: None,
            unsent: None,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { rest.finish(Stop::ClientGone).await });
        } else {
            rest.lease = None;
        }
    }
}
