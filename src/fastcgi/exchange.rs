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

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Method, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::half::{HalfConn, abort, is_closed, split, take_back};
use super::job::Job;
use super::pool::{Endpoint, Lease, Link, Pool};
use super::record::{self, Kind};
use super::send::{Replay, Sending, write_request};
use crate::backend::{Owners, Reply, ReplySender, RequestLine, Runner, Stop};
use crate::cgi::response::{self, Kind as HeadKind};
use crate::error::{Deadline, Error};

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
        let replay = match &link {
            Link::Direct(conn) if conn.requests > 0 => {
                Replay::of(&job.params, &job.request.body, &line.method)
            }
            _ => None,
        };
        // Only a request on a new connection can sit in a listen queue that nobody will
        // accept from once the app is stopped; a kept one was accepted by a live worker,
        // whose death ends it. The common case so pays nothing for watching.
        let stopping = match &link {
            Link::Direct(conn) if conn.requests == 0 => Some(pool.stopping()),
            _ => None,
        };
        let (half, writer) = split(link);
        let sending = Sending::start(writer, half.id, job.params, job.request.body);
        Exchange {
            mount: job.mount,
            endpoint: lease.endpoint.clone(),
            read_timeout: job.read_timeout,
            total: job
                .request_timeout
                .map(|t| tokio::time::Instant::from_std(line.started) + t),
            is_head_request: line.method == Method::HEAD,
            line,
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
    endpoint: Arc<Endpoint>,
    read_timeout: Duration,
    /// A launched app's `request_timeout`, as a deadline.
    total: Option<tokio::time::Instant>,
    is_head_request: bool,
    line: RequestLine,
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

    /// The kept connection ended before any record came back: the request goes once more
    /// on a fresh connection, if the app cannot have acted on it (the write failed) or
    /// acting twice does no harm (an idempotent method, RFC 9110 §9.2.2), as Go's
    /// `net/http` transport does. A request that may have been processed is not sent
    /// again; it gets its 502.
    async fn resend(&mut self) -> bool {
        let Some(replay) = self.replay.take() else {
            return false;
        };
        if !(self.write_failed || replay.is_idempotent) {
            return false;
        }
        let Some(lease) = self.lease.as_mut() else {
            return false;
        };
        if let Some(sending) = self.sending.take() {
            sending.abort();
        }
        self.conn = None;
        tracing::debug!(
            mount = %self.mount, upstream = %self.endpoint.address, path = %self.line.path,
            "kept connection closed by the application; sending on a new one",
        );
        match lease.reconnect().await {
            Ok(conn) => {
                // A new connection may sit in the listen queue of an app being stopped.
                self.stopping.get_or_insert_with(|| lease.stopping());
                let (half, writer) = split(Link::Direct(conn));
                self.sending = Some(Sending::start(writer, half.id, replay.params, replay.body));
                self.conn = Some(half);
                self.write_failed = false;
                true
            }
            Err(error) => {
                self.failed = Some(error);
                false
            }
        }
    }

    async fn read(&mut self, detach: bool) -> Pumped {
        // A chunk left over from the first call: its head went out when that call returned.
        if let (Some(chunk), Some(body_tx)) = (self.unsent.take(), self.body_tx.as_ref()) {
            tokio::select! {
                r = body_tx.send(chunk) => if r.is_err() { return Pumped::Ended(Stop::ClientGone) },
                _ = self.kill_all.cancelled() => return Pumped::Ended(Stop::Shutdown),
            }
        }
        loop {
            if let Some(Sending::Inline(..)) = self.sending {
                let Some(Sending::Inline(writer, id, params, body)) = self.sending.take() else {
                    unreachable!("matched just above")
                };
                let writing = tokio::time::timeout(
                    self.read_timeout,
                    write_request(writer, id, params, body),
                );
                self.sending = Some(match writing.await {
                    Ok(Ok(writer)) => Sending::Sent(writer),
                    // The read below sees why (the app closed the connection).
                    Ok(Err(_)) => {
                        self.write_failed = true;
                        Sending::Failed
                    }
                    Err(_) => return Pumped::Ended(Stop::Deadline(Deadline::Head)),
                });
            }
            let Some(conn) = self.conn.as_mut() else {
                return Pumped::Ended(closed());
            };
            let head_known = self.head_tx.is_none() || self.ready.is_some();
            let record = if detach && head_known {
                match conn.records.next().now_or_never() {
                    Some(record) => record,
                    None => return Pumped::Waiting,
                }
            } else {
                let (mut deadline, mut which) = match head_known {
                    false => (
                        tokio::time::Instant::now() + self.read_timeout,
                        Deadline::Head,
                    ),
                    true => (
                        tokio::time::Instant::now() + self.read_timeout,
                        Deadline::Idle,
                    ),
                };
                if let Some(total) = self.total.filter(|t| *t < deadline) {
                    (deadline, which) = (total, Deadline::Total);
                }
                let client_gone = async {
                    match (self.head_tx.as_mut(), self.body_tx.as_ref()) {
                        (Some(tx), _) => tx.closed().await,
                        (None, Some(tx)) => tx.closed().await,
                        (None, None) => std::future::pending().await,
                    }
                };
                // A request the app has not taken yet waits for nothing once the app is
                // stopped: its connection sits in a listen queue nobody accepts from.
                let stopped = async {
                    match self.heard {
                        false => match &self.stopping {
                            Some(stopping) => stopping.cancelled().await,
                            None => std::future::pending().await,
                        },
                        true => std::future::pending().await,
                    }
                };
                // The body's writer failing ends the request now: the app would wait for
                // the rest of FCGI_STDIN, and this side for its answer.
                let writer = async {
                    match self.sending.as_mut() {
                        Some(Sending::Task(task)) => task.await,
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    record = conn.records.next() => record,
                    written = writer => {
                        self.sending = Some(match written {
                            Ok(Ok(writer)) => Sending::Sent(writer),
                            Ok(Err(e)) if is_closed(e.kind()) => {
                                self.write_failed = true;
                                Sending::Failed
                            }
                            // The client's body broke off: it has gone away.
                            _ => return Pumped::Ended(Stop::ClientGone),
                        });
                        continue;
                    }
                    _ = sleep_until(deadline) => return Pumped::Ended(Stop::Deadline(which)),
                    _ = client_gone => return Pumped::Ended(Stop::ClientGone),
                    _ = stopped => return Pumped::Ended(Stop::AppStopped),
                    _ = self.kill_all.cancelled() => return Pumped::Ended(Stop::Shutdown),
                }
            };
            let record = match record {
                Some(Ok(r)) => r,
                // The end of a kept connection before any record: the app closed it as
                // this request went out, or read the request and crashed; which one cannot
                // be told, so only a request that can do no harm twice is sent again.
                None if self.resend().await => continue,
                Some(Err(record::RecordError::Io(e))) if is_closed(e.0) && self.resend().await => {
                    continue;
                }
                None => return Pumped::Ended(closed()),
                Some(Err(e)) => return Pumped::Ended(self.broken(e)),
            };
            self.heard = true;
            self.replay = None;
            let Some(conn) = self.conn.as_mut() else {
                return Pumped::Ended(closed());
            };
            if let Some(lease) = self.lease.as_mut() {
                lease.answered();
            }
            if record.request_id != conn.id {
                continue; // §3.3: a management record or not ours
            }
            match Kind::from_u8(record.kind) {
                Some(Kind::Stdout) if self.head_tx.is_some() && self.ready.is_none() => {
                    self.head_buf.extend_from_slice(&record.content);
                    if let Some((parsed, _)) = response::take_head(&mut self.head_buf, false) {
                        let first = self.head_buf.split().freeze();
                        let Some(tx) = self.head_tx.take() else {
                            continue;
                        };
                        match parsed {
                            Ok(head) if head.kind == HeadKind::LocalRedirect => {
                                self.status = Some(head.status);
                                let location = head.location.unwrap_or_default();
                                let _ = tx.send(Reply::LocalRedirect(location));
                                self.redirected = true;
                                return Pumped::Ended(Stop::Ended);
                            }
                            Ok(head) => {
                                self.status = Some(head.status);
                                self.sent += first.len() as u64;
                                let reply = Reply::Head {
                                    head,
                                    raw_head: Bytes::new(),
                                    first,
                                    is_head_request: self.is_head_request,
                                };
                                if detach {
                                    self.head_tx = Some(tx);
                                    self.ready = Some(reply);
                                } else if tx.send(reply).is_err() {
                                    return Pumped::Ended(Stop::ClientGone);
                                }
                            }
                            Err(e) => {
                                self.head_tx = Some(tx);
                                self.failed = Some(e.into());
                                return Pumped::Ended(closed());
                            }
                        }
                    }
                }
                Some(Kind::Stdout) => {
                    if record.content.is_empty() || self.is_head_request {
                        continue;
                    }
                    self.sent += record.content.len() as u64;
                    let Some(body_tx) = self.body_tx.as_ref() else {
                        return Pumped::Ended(Stop::ClientGone);
                    };
                    let chunk = Ok(record.content);
                    if detach {
                        // The client reads the body only once this future has returned.
                        match body_tx.try_send(chunk) {
                            Ok(()) => continue,
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                return Pumped::Ended(Stop::ClientGone);
                            }
                            Err(mpsc::error::TrySendError::Full(chunk)) => {
                                self.unsent = Some(chunk);
                                return Pumped::Waiting;
                            }
                        }
                    }
                    tokio::select! {
                        r = body_tx.send(chunk) => if r.is_err() { return Pumped::Ended(Stop::ClientGone) },
                        _ = self.kill_all.cancelled() => return Pumped::Ended(Stop::Shutdown),
                    }
                }
                Some(Kind::Stderr) => {
                    for line in String::from_utf8_lossy(&record.content).lines() {
                        tracing::warn!(
                            target: "portico::stderr", mount = %self.mount,
                            upstream = %self.endpoint.address, "{line}",
                        );
                    }
                }
                Some(Kind::EndRequest) => match record.end_request() {
                    Ok((app_status, _)) => {
                        self.app_status = Some(app_status);
                        return Pumped::Ended(Stop::Ended);
                    }
                    Err(e) => return Pumped::Ended(self.broken(e)),
                },
                _ => {}
            }
        }
    }

    /// A record error: its kind for the log, and the error the client gets if no head
    /// went out.
    fn broken(&mut self, error: record::RecordError) -> Stop {
        let stop = Stop::Broken(error.to_string());
        self.failed.get_or_insert(error.into());
        stop
    }

    /// Answers the client if the head never went out, writes the log line and gives the
    /// connection back (kept if the request ended cleanly).
    async fn finish(mut self, stop: Stop) {
        let is_complete = matches!(stop, Stop::Ended) && !self.redirected;
        // What the supervisor counts: a worker that takes requests and answers none backs
        // off. A client that left or a shutdown is nobody's failure.
        let clean = !matches!(stop, Stop::Broken(_) | Stop::Deadline(_)) && self.failed.is_none();
        if is_complete && (self.head_tx.is_none() || self.ready.is_some()) {
            self.complete.store(true, Ordering::Release);
        }
        // A head held back goes out only with a whole response; otherwise no byte has
        // reached the client and it gets the error below instead.
        if is_complete {
            self.release_head();
        } else if self.ready.take().is_some() {
            self.status = None;
            self.sent = 0;
        }
        let Some(lease) = self.lease.take() else {
            return;
        };
        if let Stop::Deadline(Deadline::Total) = stop {
            lease.mark_stuck();
        }
        // A local redirect's access line is written by the request it turned into.
        if self.redirected {
            self.line.access = None;
        }
        let endpoint = self.endpoint.clone();
        let runner = || Runner::Upstream {
            upstream: &endpoint.address,
            app_status: self.app_status,
        };
        match (self.head_tx.take(), self.failed.take()) {
            (Some(tx), failed) => {
                let error = failed.unwrap_or_else(|| match &stop {
                    Stop::Deadline(d) => Error::Timeout(*d),
                    Stop::ClientGone => Error::ClientGone,
                    Stop::Shutdown => Error::ShuttingDown,
                    Stop::AppStopped => Error::AppStopped(
                        lease.pool_stopped().unwrap_or_else(|| "stopped".to_owned()),
                    ),
                    Stop::Broken(_) if self.heard => Error::UpstreamClosed,
                    Stop::Ended | Stop::Broken(_) => Error::NoHead,
                });
                self.line
                    .write(error.status().as_u16(), 0, &stop, runner(), Some(&error));
                let _ = tx.send(Reply::Failed(error));
            }
            (None, _) => {
                let status = self.status.unwrap_or(StatusCode::OK).as_u16();
                self.line.write(status, self.sent, &stop, runner(), None);
            }
        }
        // The client's side ends here; tidying the connection up is not its business.
        self.body_tx = None;
        let (Some(conn), Some(sending)) = (self.conn.take(), self.sending.take()) else {
            return;
        };
        let kept = match stop {
            Stop::Ended if !self.redirected => take_back(conn, sending).await,
            Stop::ClientGone | Stop::Ended => {
                abort(conn, sending).await;
                None
            }
            _ => {
                sending.abort();
                None
            }
        };
        lease.release(kept, clean);
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
            endpoint: self.endpoint.clone(),
            read_timeout: self.read_timeout,
            total: self.total,
            is_head_request: self.is_head_request,
            line: RequestLine {
                method: self.line.method.clone(),
                path: std::mem::take(&mut self.line.path),
                started: self.line.started,
                access: self.line.access.take(),
            },
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
