//! One request to a FastCGI application (FastCGI spec §6.2, the Responder role), over a
//! connection from the mount's pool, in full duplex: the body is written as FCGI_STDIN by
//! one task while FCGI_STDOUT is read by another, so an app that answers as it reads never
//! deadlocks.
//!
//! Requests are sent with FCGI_KEEP_CONN and a connection that ends its request cleanly
//! goes back to the pool. A client that goes away gets its request aborted with
//! FCGI_ABORT_REQUEST (§5.4) and its connection closed once the application has ended the
//! request (or after a grace period): libfcgi closes a connection after an abort anyway.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::conn::{Conn, Records, Writer};
use super::pool::{Endpoint, Lease, Link, Pool};
use super::record::{self, Kind};
use super::send::{Replay, Sending, write_request};
use crate::access_log;
use crate::body::RequestBody;
use crate::cgi::response::{self, Kind as HeadKind};
use crate::cgi::{Outcome, Owners, Reply, reply_channel};
use crate::config::{Config, FastcgiMount};
use crate::error::{Deadline, Error};

/// Portico's request id: one request at a time per connection.
const REQUEST_ID: u16 = 1;

/// How long an aborted request may take to end before its connection is closed instead.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// One request for a FastCGI application.
pub struct Job {
    /// The mount, which names the pool.
    pub mount: String,
    pub read_timeout: Duration,
    /// A launched app's `request_timeout`: past it the worker is stuck and replaced.
    pub request_timeout: Option<Duration>,
    /// The FCGI_PARAMS stream's content: meta-variables, then the mount's extra params.
    pub params: Bytes,
    pub body: RequestBody,
    pub method: Method,
    pub path: String,
    pub started: Instant,
    /// The request's access-log line, when there is an access log.
    pub access: Option<access_log::Pending>,
}

/// The FastCGI backend: a pool per mount and the owners of all requests in flight.
pub struct FastCgi {
    pools: HashMap<String, Arc<Pool>>,
    queue_timeout: Duration,
    owners: Owners,
}

impl FastCgi {
    pub fn new(config: &Config) -> FastCgi {
        let pools = config
            .fastcgi
            .iter()
            .map(|mount| (mount.mount.clone(), Arc::new(new_pool(mount))))
            .collect();
        FastCgi {
            pools,
            queue_timeout: config.limits.queue_timeout,
            owners: Owners::default(),
        }
    }

    pub fn pool(&self, mount: &str) -> Option<&Arc<Pool>> {
        self.pools.get(mount)
    }

    pub async fn run(&self, job: Job) -> Result<Outcome, Error> {
        let pool = self.pools.get(&job.mount).ok_or(Error::NotFound)?;
        let mut lease = pool.acquire(self.queue_timeout).await?;
        let conn = match lease.connect().await {
            Ok(conn) => conn,
            Err(error) => {
                // Nothing was sent: one retry, on another endpoint.
                let Some(mut other) = pool.try_other(&lease.endpoint) else {
                    return Err(error);
                };
                drop(lease);
                let conn = other.connect().await?;
                lease = other;
                conn
            }
        };
        if self.owners.kill_all.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = reply_channel();
        // A kept connection may turn out closed by the app just as this request goes out:
        // then it is sent once more on a fresh one, if that cannot do harm.
        let replay = match &conn {
            Link::Direct(conn) if conn.requests > 0 => {
                Replay::of(&job.params, &job.body, &job.method)
            }
            _ => None,
        };
        let (half, writer) = split(conn);
        let sending = Sending::start(writer, half.id, job.params, job.body);
        let mut exchange = Exchange {
            mount: job.mount,
            endpoint: lease.endpoint.clone(),
            read_timeout: job.read_timeout,
            total: job
                .request_timeout
                .map(|t| tokio::time::Instant::from_std(job.started) + t),
            is_head_request: job.method == Method::HEAD,
            method: job.method,
            path: job.path,
            started: job.started,
            access: job.access,
            kill_all: self.owners.kill_all.clone(),
            stopping: pool.stopping(),
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
            failed: None,
            unsent: None,
        };
        match exchange.pump(true).await {
            Pumped::Ended(end) => {
                exchange.finish(end).await;
                // The connection just went back to the pool and may have woken a request
                // waiting for it: let that one send before this response is written, so
                // the app gets its next request at once.
                tokio::task::yield_now().await;
            }
            Pumped::Waiting => {
                self.owners.tasks.spawn(async move {
                    let end = match exchange.pump(false).await {
                        Pumped::Ended(end) => end,
                        Pumped::Waiting => End::Closed,
                    };
                    exchange.finish(end).await;
                });
            }
        }
        Ok(rx.outcome().await)
    }

    /// Waits for the requests in flight, without ending them.
    pub async fn wait_idle(&self) {
        self.owners.wait_idle().await;
    }

    /// Ends every request in flight and waits for their tasks.
    pub async fn kill_all_and_wait(&self) {
        self.owners.kill_all_and_wait().await;
    }
}

fn new_pool(mount: &FastcgiMount) -> Pool {
    let pool = Pool::new(
        mount.mount.clone(),
        mount.balance,
        mount.connect_timeout,
        mount.fail_timeout,
    );
    for upstream in &mount.upstreams {
        // An upstream that does not say its limits gets 8 connections.
        pool.add(Arc::new(Endpoint::new(
            upstream.clone(),
            mount.max_connections,
            8,
        )));
    }
    pool
}

/// A connection cut in two: the read half for the exchange, the write half for sending.
fn split(link: Link) -> (HalfConn, Writer) {
    match link {
        Link::Direct(conn) => (
            HalfConn {
                records: Records::Direct(conn.records),
                id: REQUEST_ID,
                generation: conn.generation,
                requests: conn.requests + 1,
            },
            conn.writer,
        ),
        Link::Shared(ticket, queue, writer) => (
            HalfConn {
                id: ticket.id,
                records: Records::Shared(queue, ticket),
                generation: 0,
                requests: 0,
            },
            writer,
        ),
    }
}

/// The peer closed its end before reading what was sent (a reset, or a write to a socket
/// already closed).
fn is_closed(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// A connection while its write half is with the writer task.
struct HalfConn {
    records: Records,
    /// The request id: 1 on a connection of its own, one of many on a shared one.
    id: u16,
    generation: u64,
    requests: u64,
}

/// The read side of one request: records until END_REQUEST.
///
/// It starts in the request's own future and goes on there while records are ready: a
/// small response that arrives whole (head, body, END_REQUEST) is answered without a task
/// or a wake-up of its own. Whatever is still to come after the head is left to a task.
/// Dropped before the head is out (the client went away), it aborts the request.
struct Exchange {
    mount: String,
    endpoint: Arc<Endpoint>,
    read_timeout: Duration,
    /// A launched app's `request_timeout`, as a deadline.
    total: Option<tokio::time::Instant>,
    is_head_request: bool,
    method: Method,
    path: String,
    started: Instant,
    access: Option<access_log::Pending>,
    kill_all: CancellationToken,
    /// Cancelled when the application is stopped (a launched app that keeps dying).
    stopping: CancellationToken,
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
    /// Why the request failed before its head, answered once the exchange ends.
    failed: Option<Error>,
    /// A body chunk read while the body channel was full, sent first by the task.
    unsent: Option<io::Result<Bytes>>,
}

/// How reading the response ended.
enum End {
    Complete {
        app_status: u32,
    },
    /// A local redirect: the rest of the app's output is not needed.
    Redirected,
    Closed,
    Deadline(Deadline),
    ClientGone,
    Shutdown,
    /// The application was stopped before it took the request.
    Stopped,
    Broken(record::RecordError),
}

/// Where `Exchange::pump` stopped.
enum Pumped {
    Ended(End),
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
            return Pumped::Ended(End::ClientGone);
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
            mount = %self.mount, upstream = %self.endpoint.address, path = %self.path,
            "kept connection closed by the application; sending on a new one",
        );
        match lease.reconnect().await {
            Ok(conn) => {
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
                r = body_tx.send(chunk) => if r.is_err() { return Pumped::Ended(End::ClientGone) },
                _ = self.kill_all.cancelled() => return Pumped::Ended(End::Shutdown),
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
                    Err(_) => return Pumped::Ended(End::Deadline(Deadline::Head)),
                });
            }
            let Some(conn) = self.conn.as_mut() else {
                return Pumped::Ended(End::Closed);
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
                        false => self.stopping.cancelled().await,
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
                            _ => return Pumped::Ended(End::ClientGone),
                        });
                        continue;
                    }
                    _ = sleep_until(deadline) => return Pumped::Ended(End::Deadline(which)),
                    _ = client_gone => return Pumped::Ended(End::ClientGone),
                    _ = stopped => return Pumped::Ended(End::Stopped),
                    _ = self.kill_all.cancelled() => return Pumped::Ended(End::Shutdown),
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
                None => return Pumped::Ended(End::Closed),
                Some(Err(e)) => return Pumped::Ended(End::Broken(e)),
            };
            self.heard = true;
            self.replay = None;
            let Some(conn) = self.conn.as_mut() else {
                return Pumped::Ended(End::Closed);
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
                    if let Some(end) = response::find_head_end(&self.head_buf) {
                        let raw = self.head_buf.split_to(end);
                        let first = self.head_buf.split().freeze();
                        let Some(tx) = self.head_tx.take() else {
                            continue;
                        };
                        match response::parse(&raw[..raw.len() - 1]) {
                            Ok(head) if head.kind == HeadKind::LocalRedirect => {
                                self.status = Some(head.status);
                                let location = head.location.unwrap_or_default();
                                let _ = tx.send(Reply::LocalRedirect(location));
                                return Pumped::Ended(End::Redirected);
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
                                    return Pumped::Ended(End::ClientGone);
                                }
                            }
                            Err(e) => {
                                self.head_tx = Some(tx);
                                self.failed = Some(Error::Head(e));
                                return Pumped::Ended(End::Closed);
                            }
                        }
                    } else if self.head_buf.len() > response::MAX_HEAD_BYTES {
                        self.failed = Some(Error::Head(response::HeadError::TooLarge));
                        return Pumped::Ended(End::Closed);
                    }
                }
                Some(Kind::Stdout) => {
                    if record.content.is_empty() || self.is_head_request {
                        continue;
                    }
                    self.sent += record.content.len() as u64;
                    let Some(body_tx) = self.body_tx.as_ref() else {
                        return Pumped::Ended(End::ClientGone);
                    };
                    let chunk = Ok(record.content);
                    if detach {
                        // The client reads the body only once this future has returned.
                        match body_tx.try_send(chunk) {
                            Ok(()) => continue,
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                return Pumped::Ended(End::ClientGone);
                            }
                            Err(mpsc::error::TrySendError::Full(chunk)) => {
                                self.unsent = Some(chunk);
                                return Pumped::Waiting;
                            }
                        }
                    }
                    tokio::select! {
                        r = body_tx.send(chunk) => if r.is_err() { return Pumped::Ended(End::ClientGone) },
                        _ = self.kill_all.cancelled() => return Pumped::Ended(End::Shutdown),
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
                    Ok((app_status, _)) => return Pumped::Ended(End::Complete { app_status }),
                    Err(e) => return Pumped::Ended(End::Broken(e)),
                },
                _ => {}
            }
        }
    }

    /// Answers the client if the head never went out, writes the log line and gives the
    /// connection back (kept if the request ended cleanly).
    async fn finish(mut self, end: End) {
        let is_complete = matches!(end, End::Complete { .. });
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
        if let End::Deadline(Deadline::Total) = end {
            lease.mark_stuck();
        }
        match (self.head_tx.take(), self.failed.take()) {
            (Some(tx), failed) => {
                let error = failed.unwrap_or_else(|| match &end {
                    End::Deadline(d) => Error::Timeout(*d),
                    End::Broken(record::RecordError::Io(e)) => Error::Upstream(e.0.into()),
                    End::Broken(e) => Error::Protocol(e.clone()),
                    End::ClientGone => Error::ClientGone,
                    End::Shutdown => Error::ShuttingDown,
                    End::Stopped => Error::AppStopped(
                        lease.pool_stopped().unwrap_or_else(|| "stopped".to_owned()),
                    ),
                    End::Closed if self.heard => Error::UpstreamClosed,
                    End::Complete { .. } | End::Closed | End::Redirected => Error::NoHead,
                });
                self.log(Err(&error), 0, &end);
                let _ = tx.send(Reply::Failed(error));
            }
            (None, _) => self.log(Ok(self.status.unwrap_or(StatusCode::OK)), self.sent, &end),
        }
        // The client's side ends here; tidying the connection up is not its business.
        self.body_tx = None;
        let (Some(conn), Some(sending)) = (self.conn.take(), self.sending.take()) else {
            return;
        };
        let kept = match end {
            End::Complete { .. } => take_back(conn, sending).await,
            End::ClientGone | End::Redirected => {
                abort(conn, sending).await;
                None
            }
            _ => {
                sending.abort();
                None
            }
        };
        lease.release(kept, true);
    }

    fn log(&self, outcome: Result<StatusCode, &Error>, bytes: u64, end: &End) {
        let duration_ms = format_args!("{:.2}", self.started.elapsed().as_secs_f64() * 1000.0);
        let upstream = &self.endpoint.address;
        let (app_status, ended) = match end {
            End::Complete { app_status } => (Some(*app_status), None),
            End::Redirected => (None, None),
            End::Closed => (None, Some("upstream closed before END_REQUEST".to_owned())),
            End::Deadline(d) => (None, Some(format!("{d} deadline"))),
            End::ClientGone => (None, Some("client gone".to_owned())),
            End::Shutdown => (None, Some("shutdown".to_owned())),
            End::Stopped => (None, Some("application stopped".to_owned())),
            End::Broken(e) => (None, Some(e.to_string())),
        };
        // A local redirect's line is written by the request it turned into.
        if let Some(access) = &self.access
            && !matches!(end, End::Redirected)
        {
            let status = outcome.unwrap_or_else(|error| error.status());
            access.finish(status.as_u16(), bytes);
        }
        match outcome {
            Ok(status) if ended.is_none() => tracing::info!(
                target: "portico::access", method = %self.method, path = %self.path, status = status.as_u16(), bytes,
                duration_ms, %upstream, app_status,
            ),
            Ok(status) => tracing::warn!(
                target: "portico::access", method = %self.method, path = %self.path, status = status.as_u16(), bytes,
                duration_ms, %upstream, app_status, ended,
            ),
            Err(error) => tracing::warn!(
                target: "portico::access", method = %self.method, path = %self.path, status = error.status().as_u16(),
                bytes, duration_ms, %upstream, app_status, ended, cause = crate::error::chain(error),
            ),
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
            endpoint: self.endpoint.clone(),
            read_timeout: self.read_timeout,
            total: self.total,
            is_head_request: self.is_head_request,
            method: self.method.clone(),
            path: std::mem::take(&mut self.path),
            started: self.started,
            access: self.access.take(),
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
            failed: None,
            unsent: None,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { rest.finish(End::ClientGone).await });
        } else {
            rest.lease = None;
        }
    }
}

/// The connection, whole again, if the request was fully sent and ended cleanly.
async fn take_back(conn: HalfConn, sending: Sending) -> Option<Conn> {
    let writer = sending.finish().await?;
    match conn.records {
        Records::Direct(records) => Some(Conn {
            records,
            writer,
            generation: conn.generation,
            requests: conn.requests,
        }),
        // The shared connection stays with the endpoint; the request id is free again.
        Records::Shared(..) => None,
    }
}

/// FCGI_ABORT_REQUEST (§5.4), then the request's records until its END_REQUEST, so the
/// app can stop cleanly; then its own connection is closed (a shared one stays).
async fn abort(mut conn: HalfConn, sending: Sending) {
    let Some(mut writer) = sending.finish().await else {
        return;
    };
    let mut out = BytesMut::new();
    record::encode_record(&mut out, Kind::AbortRequest, conn.id, &[]);
    let ending = async {
        writer.write_all(&out).await.ok()?;
        while let Some(Ok(record)) = conn.records.next().await {
            if record.request_id == conn.id && record.is(Kind::EndRequest) {
                return Some(());
            }
        }
        None
    };
    let _ = tokio::time::timeout(ABORT_GRACE, ending).await;
}
