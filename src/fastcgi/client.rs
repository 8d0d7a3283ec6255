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
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::conn::{Conn, Records, Writer};
use super::pool::{Endpoint, Lease, Link, Pool};
use super::record::{self, Kind, Role};
use crate::access_log;
use crate::body::RequestBody;
use crate::cgi::response::{self, Kind as HeadKind};
use crate::cgi::{Outcome, Owners, Reply, reply_channel};
use crate::config::{Config, FastcgiMount};
use crate::error::{Deadline, Error};

/// Portico's request id: one request at a time per connection.
const REQUEST_ID: u16 = 1;

/// A body up to this size is written before the response is read: it fits in the socket's
/// buffer, so an app that answers while it reads cannot block on it.
const INLINE_BODY_BYTES: usize = 16 * 1024;

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
        let (half, writer) = match conn {
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
        };
        let id = half.id;
        // A body that is already here is written by the exchange itself; one still arriving
        // from the client is written by a task of its own, while the response is read.
        let sending = match job.body {
            body @ RequestBody::None => Sending::Inline(writer, id, job.params, body),
            RequestBody::Memory(bytes) if bytes.len() <= INLINE_BODY_BYTES => {
                Sending::Inline(writer, id, job.params, RequestBody::Memory(bytes))
            }
            body => Sending::Task(tokio::spawn(write_request(writer, id, job.params, body))),
        };
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
            lease: Some(lease),
            conn: Some(half),
            sending: Some(sending),
            head_tx: Some(tx.head),
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

/// The write half of a connection while a request is being sent.
enum Sending {
    /// Not written yet: the whole request is at hand.
    Inline(Writer, u16, Bytes, RequestBody),
    Sent(Writer),
    Task(JoinHandle<io::Result<Writer>>),
    Failed,
}

impl Sending {
    /// The write half, once the whole request is written.
    async fn finish(self) -> Option<Writer> {
        match self {
            Sending::Sent(writer) => Some(writer),
            Sending::Task(mut task) => {
                // The app has ended the request, so the writer is done or about to be,
                // unless the app ended it without reading all of FCGI_STDIN.
                match tokio::time::timeout(Duration::from_millis(100), &mut task).await {
                    Ok(Ok(Ok(writer))) => Some(writer),
                    Ok(_) => None,
                    Err(_) => {
                        task.abort();
                        None
                    }
                }
            }
            Sending::Inline(..) | Sending::Failed => None,
        }
    }

    fn abort(self) {
        if let Sending::Task(task) = self {
            task.abort();
        }
    }
}

/// A connection while its write half is with the writer task.
struct HalfConn {
    records: Records,
    /// The request id: 1 on a connection of its own, one of many on a shared one.
    id: u16,
    generation: u64,
    requests: u64,
}

/// BEGIN_REQUEST (with FCGI_KEEP_CONN), PARAMS, then STDIN as the body arrives (§6.2).
/// Gives the write half back when the request is fully sent.
async fn write_request(
    mut writer: Writer,
    id: u16,
    params: Bytes,
    body: RequestBody,
) -> io::Result<Writer> {
    let mut out = BytesMut::with_capacity(4096);
    record::encode_record(
        &mut out,
        Kind::BeginRequest,
        id,
        &record::begin_request(Role::Responder, true),
    );
    record::encode_stream(&mut out, Kind::Params, id, &params);
    record::encode_stream(&mut out, Kind::Params, id, &[]);
    match body {
        RequestBody::None => {}
        RequestBody::Memory(bytes) if !bytes.is_empty() => {
            record::encode_stream(&mut out, Kind::Stdin, id, &bytes);
        }
        RequestBody::Memory(_) => {}
        RequestBody::Stream { mut body, .. } => {
            writer.write_all(&out).await?;
            out.clear();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(io::Error::other)?;
                if let Ok(data) = frame.into_data() {
                    write_stdin(&mut writer, &mut out, id, &data).await?;
                }
            }
            out.clear();
        }
        RequestBody::File { file, .. } => {
            writer.write_all(&out).await?;
            out.clear();
            let mut file = tokio::fs::File::from_std(file);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                write_stdin(&mut writer, &mut out, id, &chunk[..n]).await?;
            }
            out.clear();
        }
    }
    // The whole request of a bodiless GET goes out in one write.
    record::encode_stream(&mut out, Kind::Stdin, id, &[]);
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(writer)
}

async fn write_stdin(
    writer: &mut Writer,
    out: &mut BytesMut,
    id: u16,
    data: &[u8],
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(()); // an empty STDIN record would end the stream
    }
    out.clear();
    record::encode_stream(out, Kind::Stdin, id, data);
    writer.write_all(out).await
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
    /// Taken by `finish`; still here on drop means the request was cut short.
    lease: Option<Lease>,
    conn: Option<HalfConn>,
    sending: Option<Sending>,
    head_tx: Option<oneshot::Sender<Reply>>,
    /// Dropped once the response has ended, so the client's body ends too.
    body_tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    complete: Arc<AtomicBool>,
    head_buf: BytesMut,
    status: Option<StatusCode>,
    sent: u64,
    /// A head that could not be parsed, answered once the exchange ends.
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
        if let Some(Sending::Inline(..)) = self.sending {
            let Some(Sending::Inline(writer, id, params, body)) = self.sending.take() else {
                unreachable!("matched just above")
            };
            let writing =
                tokio::time::timeout(self.read_timeout, write_request(writer, id, params, body));
            self.sending = Some(match writing.await {
                Ok(Ok(writer)) => Sending::Sent(writer),
                // The read below sees why (the app closed the connection).
                Ok(Err(_)) => Sending::Failed,
                Err(_) => return Pumped::Ended(End::Deadline(Deadline::Head)),
            });
        }
        if let (Some(chunk), Some(body_tx)) = (self.unsent.take(), self.body_tx.as_ref()) {
            tokio::select! {
                r = body_tx.send(chunk) => if r.is_err() { return Pumped::Ended(End::ClientGone) },
                _ = self.kill_all.cancelled() => return Pumped::Ended(End::Shutdown),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Pumped::Ended(End::Closed);
        };
        loop {
            let record = if detach && self.head_tx.is_none() {
                match conn.records.next().now_or_never() {
                    Some(record) => record,
                    None => return Pumped::Waiting,
                }
            } else {
                let (mut deadline, mut which) = if self.head_tx.is_some() {
                    (
                        tokio::time::Instant::now() + self.read_timeout,
                        Deadline::Head,
                    )
                } else {
                    (
                        tokio::time::Instant::now() + self.read_timeout,
                        Deadline::Idle,
                    )
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
                tokio::select! {
                    record = conn.records.next() => record,
                    _ = sleep_until(deadline) => return Pumped::Ended(End::Deadline(which)),
                    _ = client_gone => return Pumped::Ended(End::ClientGone),
                    _ = self.kill_all.cancelled() => return Pumped::Ended(End::Shutdown),
                }
            };
            let record = match record {
                None => return Pumped::Ended(End::Closed),
                Some(Err(e)) => return Pumped::Ended(End::Broken(e)),
                Some(Ok(r)) => r,
            };
            if let Some(lease) = self.lease.as_mut() {
                lease.answered();
            }
            if record.request_id != conn.id {
                continue; // §3.3: a management record or not ours
            }
            match Kind::from_u8(record.kind) {
                Some(Kind::Stdout) if self.head_tx.is_some() => {
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
                                if tx.send(reply).is_err() {
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
        if let End::Complete { .. } = end
            && self.head_tx.is_none()
        {
            self.complete.store(true, Ordering::Release);
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
                    End::Broken(e) => Error::Protocol(e.clone()),
                    End::ClientGone => Error::ClientGone,
                    End::Shutdown => Error::ShuttingDown,
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
            lease: self.lease.take(),
            conn: self.conn.take(),
            sending: self.sending.take(),
            head_tx: self.head_tx.take(),
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
