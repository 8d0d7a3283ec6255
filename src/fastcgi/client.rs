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
use futures_util::StreamExt;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{Conn, Writer};
use super::params::encode_pair;
use super::pool::{Endpoint, Lease, Pool};
use super::record::{self, Kind, Role};
use crate::body::RequestBody;
use crate::cgi::response::{self, Kind as HeadKind};
use crate::cgi::{Outcome, Reply, reply_channel};
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
    /// Meta-variables, then the mount's extra params.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: RequestBody,
    pub method: Method,
    pub path: String,
    pub started: Instant,
}

/// The FastCGI backend: a pool per mount and the owners of all requests in flight.
pub struct FastCgi {
    pools: HashMap<String, Arc<Pool>>,
    queue_timeout: Duration,
    kill_all: CancellationToken,
    tasks: TaskTracker,
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
            kill_all: CancellationToken::new(),
            tasks: TaskTracker::new(),
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
        if self.kill_all.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = reply_channel();
        let exchange = Exchange {
            mount: job.mount,
            endpoint: lease.endpoint.clone(),
            read_timeout: job.read_timeout,
            request_timeout: job.request_timeout,
            is_head_request: job.method == Method::HEAD,
            method: job.method,
            path: job.path,
            started: job.started,
            kill_all: self.kill_all.clone(),
        };
        let Conn {
            records,
            writer,
            generation,
            requests,
        } = conn;
        // A body that is already here is written by the exchange itself; one still arriving
        // from the client is written by a task of its own, while the response is read.
        let sending = match job.body {
            body @ (RequestBody::None | RequestBody::Memory(_)) => {
                Sending::Inline(writer, job.params, body)
            }
            body => Sending::Task(tokio::spawn(write_request(writer, job.params, body))),
        };
        let half = HalfConn {
            records,
            generation,
            requests: requests + 1,
        };
        self.tasks.spawn(async move {
            exchange
                .run(lease, half, sending, tx.head, tx.body, tx.complete)
                .await;
        });
        Ok(rx.outcome().await)
    }

    /// Waits for the requests in flight, without ending them.
    pub async fn wait_idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Ends every request in flight and waits for their tasks.
    pub async fn kill_all_and_wait(&self) {
        self.kill_all.cancel();
        self.tasks.close();
        self.tasks.wait().await;
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
    Inline(Writer, Vec<(Vec<u8>, Vec<u8>)>, RequestBody),
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
    records: tokio_util::codec::FramedRead<super::conn::Reader, record::RecordCodec>,
    generation: u64,
    requests: u64,
}

/// BEGIN_REQUEST (with FCGI_KEEP_CONN), PARAMS, then STDIN as the body arrives (§6.2).
/// Gives the write half back when the request is fully sent.
async fn write_request(
    mut writer: Writer,
    params: Vec<(Vec<u8>, Vec<u8>)>,
    body: RequestBody,
) -> io::Result<Writer> {
    let mut out = BytesMut::with_capacity(4096);
    record::encode_record(
        &mut out,
        Kind::BeginRequest,
        REQUEST_ID,
        &record::begin_request(Role::Responder, true),
    );
    let mut pairs = BytesMut::new();
    for (name, value) in &params {
        encode_pair(&mut pairs, name, value).map_err(io::Error::other)?;
    }
    record::encode_stream(&mut out, Kind::Params, REQUEST_ID, &pairs);
    record::encode_stream(&mut out, Kind::Params, REQUEST_ID, &[]);
    match body {
        RequestBody::None => {}
        RequestBody::Memory(bytes) if !bytes.is_empty() => {
            record::encode_stream(&mut out, Kind::Stdin, REQUEST_ID, &bytes);
        }
        RequestBody::Memory(_) => {}
        RequestBody::Stream { mut body, .. } => {
            writer.write_all(&out).await?;
            out.clear();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(io::Error::other)?;
                if let Ok(data) = frame.into_data() {
                    write_stdin(&mut writer, &mut out, &data).await?;
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
                write_stdin(&mut writer, &mut out, &chunk[..n]).await?;
            }
            out.clear();
        }
    }
    // The whole request of a bodiless GET goes out in one write.
    record::encode_stream(&mut out, Kind::Stdin, REQUEST_ID, &[]);
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(writer)
}

async fn write_stdin(writer: &mut Writer, out: &mut BytesMut, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(()); // an empty STDIN record would end the stream
    }
    out.clear();
    record::encode_stream(out, Kind::Stdin, REQUEST_ID, data);
    writer.write_all(out).await
}

/// The read side of one request: records until END_REQUEST.
struct Exchange {
    mount: String,
    endpoint: Arc<Endpoint>,
    read_timeout: Duration,
    request_timeout: Option<Duration>,
    is_head_request: bool,
    method: Method,
    path: String,
    started: Instant,
    kill_all: CancellationToken,
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

impl Exchange {
    async fn run(
        self,
        mut lease: Lease,
        mut conn: HalfConn,
        sending: Sending,
        head_tx: oneshot::Sender<Reply>,
        body_tx: mpsc::Sender<io::Result<Bytes>>,
        complete: Arc<AtomicBool>,
    ) {
        let sending = match sending {
            Sending::Inline(writer, params, body) => {
                match write_request(writer, params, body).await {
                    Ok(writer) => Sending::Sent(writer),
                    // The read below sees why (the app closed the connection).
                    Err(_) => Sending::Failed,
                }
            }
            other => other,
        };
        let mut head_buf = BytesMut::new();
        let mut head_tx = Some(head_tx);
        let mut status = None;
        let mut sent = 0u64;
        let mut failed = None;
        let total = self
            .request_timeout
            .map(|t| tokio::time::Instant::from_std(self.started) + t);
        let end = loop {
            let (mut deadline, mut which) = if head_tx.is_some() {
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
            if let Some(total) = total.filter(|t| *t < deadline) {
                (deadline, which) = (total, Deadline::Total);
            }
            let client_gone = async {
                match head_tx.as_mut() {
                    Some(tx) => tx.closed().await,
                    None => body_tx.closed().await,
                }
            };
            let record = tokio::select! {
                record = conn.records.next() => record,
                _ = sleep_until(deadline) => break End::Deadline(which),
                _ = client_gone => break End::ClientGone,
                _ = self.kill_all.cancelled() => break End::Shutdown,
            };
            let record = match record {
                None => break End::Closed,
                Some(Err(e)) => break End::Broken(e),
                Some(Ok(r)) => r,
            };
            lease.answered();
            if record.request_id != REQUEST_ID {
                continue; // §3.3: a management record or not ours
            }
            match Kind::from_u8(record.kind) {
                Some(Kind::Stdout) if head_tx.is_some() => {
                    head_buf.extend_from_slice(&record.content);
                    if let Some(end) = response::find_head_end(&head_buf) {
                        let raw = head_buf.split_to(end);
                        let first = head_buf.split().freeze();
                        let Some(tx) = head_tx.take() else { continue };
                        match response::parse(&raw[..raw.len() - 1]) {
                            Ok(head) if head.kind == HeadKind::LocalRedirect => {
                                status = Some(head.status);
                                let location = head.location.unwrap_or_default();
                                let _ = tx.send(Reply::LocalRedirect(location));
                                break End::Redirected;
                            }
                            Ok(head) => {
                                status = Some(head.status);
                                sent += first.len() as u64;
                                let reply = Reply::Head {
                                    head,
                                    raw_head: Bytes::new(),
                                    first,
                                    is_head_request: self.is_head_request,
                                };
                                if tx.send(reply).is_err() {
                                    break End::ClientGone;
                                }
                            }
                            Err(e) => {
                                failed = Some((tx, Error::Head(e)));
                                break End::Closed;
                            }
                        }
                    } else if head_buf.len() > response::MAX_HEAD_BYTES {
                        if let Some(tx) = head_tx.take() {
                            failed = Some((tx, Error::Head(response::HeadError::TooLarge)));
                        }
                        break End::Closed;
                    }
                }
                Some(Kind::Stdout) => {
                    if record.content.is_empty() || self.is_head_request {
                        continue;
                    }
                    sent += record.content.len() as u64;
                    tokio::select! {
                        r = body_tx.send(Ok(record.content)) => if r.is_err() { break End::ClientGone },
                        _ = self.kill_all.cancelled() => break End::Shutdown,
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
                    Ok((app_status, _)) => break End::Complete { app_status },
                    Err(e) => break End::Broken(e),
                },
                _ => {}
            }
        };
        if let End::Complete { .. } = end
            && head_tx.is_none()
        {
            complete.store(true, Ordering::Release);
        }
        if let End::Deadline(Deadline::Total) = end {
            lease.mark_stuck();
        }
        // Let the client's side go before the connection is tidied up.
        drop(body_tx);
        match (head_tx, failed) {
            (_, Some((tx, error))) => {
                self.log(Err(&error), 0, &end);
                let _ = tx.send(Reply::Failed(error));
            }
            (Some(tx), None) => {
                let error = match &end {
                    End::Deadline(d) => Error::Timeout(*d),
                    End::Broken(e) => Error::Protocol(e.clone()),
                    End::ClientGone => Error::ClientGone,
                    End::Shutdown => Error::ShuttingDown,
                    End::Complete { .. } | End::Closed | End::Redirected => Error::NoHead,
                };
                self.log(Err(&error), 0, &end);
                let _ = tx.send(Reply::Failed(error));
            }
            (None, None) => self.log(Ok(status.unwrap_or(StatusCode::OK)), sent, &end),
        }
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

/// The connection, whole again, if the request was fully sent and ended cleanly.
async fn take_back(conn: HalfConn, sending: Sending) -> Option<Conn> {
    let writer = sending.finish().await?;
    Some(Conn {
        records: conn.records,
        writer,
        generation: conn.generation,
        requests: conn.requests,
    })
}

/// FCGI_ABORT_REQUEST (§5.4), then the request's records until its END_REQUEST, so the
/// app can stop cleanly; then the connection is closed.
async fn abort(conn: HalfConn, sending: Sending) {
    let Some(mut conn) = take_back(conn, sending).await else {
        return;
    };
    let mut out = BytesMut::new();
    record::encode_record(&mut out, Kind::AbortRequest, REQUEST_ID, &[]);
    let ending = async {
        conn.writer.write_all(&out).await.ok()?;
        while let Some(Ok(record)) = conn.records.next().await {
            if record.request_id == REQUEST_ID && record.is(Kind::EndRequest) {
                return Some(());
            }
        }
        None
    };
    let _ = tokio::time::timeout(ABORT_GRACE, ending).await;
}
