//! One request to a FastCGI application over one connection (FastCGI spec §6.2, the
//! Responder role), in full duplex: the body is written as FCGI_STDIN by one task while
//! FCGI_STDOUT is read by another, so an app that answers as it reads never deadlocks.
//!
//! The connection is opened without FCGI_KEEP_CONN and closed after the request: dropping
//! it is how a client that went away aborts the request (§5.4 allows either). Connection
//! reuse, FCGI_ABORT_REQUEST and FCGI_GET_VALUES come with the pool.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::params::encode_pair;
use super::record::{self, Kind, RecordCodec, Role};
use crate::body::RequestBody;
use crate::cgi::response::{self, Kind as HeadKind};
use crate::cgi::{Outcome, Reply, reply_channel};
use crate::config::Upstream;
use crate::error::{Deadline, Error};

/// Portico's request id on a connection of its own.
const REQUEST_ID: u16 = 1;

/// One request for a FastCGI application.
pub struct Job {
    pub upstream: Upstream,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Meta-variables, then the mount's extra params.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: RequestBody,
    pub method: Method,
    pub path: String,
    pub started: Instant,
}

/// The FastCGI backend: the owners of all requests in flight.
#[derive(Default)]
pub struct FastCgi {
    kill_all: CancellationToken,
    tasks: TaskTracker,
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

impl FastCgi {
    pub async fn run(&self, job: Job) -> Result<Outcome, Error> {
        let (reader, writer) = connect(&job.upstream, job.connect_timeout).await?;
        let (tx, rx) = reply_channel();
        let exchange = Exchange {
            upstream: job.upstream.to_string(),
            read_timeout: job.read_timeout,
            is_head_request: job.method == Method::HEAD,
            method: job.method,
            path: job.path,
            started: job.started,
            kill_all: self.kill_all.clone(),
        };
        let writer_task = tokio::spawn(write_request(writer, job.params, job.body));
        self.tasks.spawn(async move {
            exchange
                .read_response(reader, tx.head, tx.body, tx.complete)
                .await;
            writer_task.abort();
        });
        Ok(rx.outcome().await)
    }

    /// Ends every request in flight and waits for their tasks.
    pub async fn kill_all_and_wait(&self) {
        self.kill_all.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn connect(upstream: &Upstream, timeout: Duration) -> Result<(Reader, Writer), Error> {
    let connecting = async {
        Ok::<(Reader, Writer), io::Error>(match upstream {
            Upstream::Unix(path) => {
                let (r, w) = tokio::net::UnixStream::connect(path).await?.into_split();
                (Box::new(r), Box::new(w))
            }
            Upstream::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
                stream.set_nodelay(true)?;
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
        })
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(result) => result.map_err(Error::Upstream),
        Err(_) => Err(Error::Timeout(Deadline::Connect)),
    }
}

/// BEGIN_REQUEST, PARAMS, then STDIN as the body arrives (§6.2).
async fn write_request(
    mut writer: Writer,
    params: Vec<(Vec<u8>, Vec<u8>)>,
    body: RequestBody,
) -> io::Result<()> {
    let mut out = BytesMut::with_capacity(4096);
    record::encode_record(
        &mut out,
        Kind::BeginRequest,
        REQUEST_ID,
        &record::begin_request(Role::Responder, false),
    );
    let mut pairs = BytesMut::new();
    for (name, value) in &params {
        encode_pair(&mut pairs, name, value).map_err(io::Error::other)?;
    }
    record::encode_stream(&mut out, Kind::Params, REQUEST_ID, &pairs);
    record::encode_stream(&mut out, Kind::Params, REQUEST_ID, &[]);
    writer.write_all(&out).await?;
    out.clear();
    match body {
        RequestBody::None => {}
        RequestBody::Memory(bytes) => write_stdin(&mut writer, &mut out, &bytes).await?,
        RequestBody::Stream { mut body, .. } => {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(io::Error::other)?;
                if let Ok(data) = frame.into_data() {
                    write_stdin(&mut writer, &mut out, &data).await?;
                }
            }
        }
        RequestBody::File { file, .. } => {
            let mut file = tokio::fs::File::from_std(file);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                write_stdin(&mut writer, &mut out, &chunk[..n]).await?;
            }
        }
    }
    out.clear();
    record::encode_stream(&mut out, Kind::Stdin, REQUEST_ID, &[]);
    writer.write_all(&out).await?;
    writer.flush().await
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
    upstream: String,
    read_timeout: Duration,
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
    async fn read_response(
        self,
        reader: Reader,
        head_tx: oneshot::Sender<Reply>,
        body_tx: mpsc::Sender<io::Result<Bytes>>,
        complete: Arc<AtomicBool>,
    ) {
        let mut records = FramedRead::new(reader, RecordCodec);
        let mut head_buf = BytesMut::new();
        let mut head_tx = Some(head_tx);
        let mut status = None;
        let mut sent = 0u64;
        let end = loop {
            let deadline = tokio::time::Instant::now() + self.read_timeout;
            let which = if head_tx.is_some() {
                Deadline::Head
            } else {
                Deadline::Idle
            };
            // Dropping the connection is the abort (§5.4): the app sees it on its next write.
            let client_gone = async {
                match head_tx.as_mut() {
                    Some(tx) => tx.closed().await,
                    None => body_tx.closed().await,
                }
            };
            let record = tokio::select! {
                record = records.next() => record,
                _ = sleep_until(deadline) => break End::Deadline(which),
                _ = client_gone => break End::ClientGone,
                _ = self.kill_all.cancelled() => break End::Shutdown,
            };
            let record = match record {
                None => break End::Closed,
                Some(Err(e)) => break End::Broken(e),
                Some(Ok(r)) if r.request_id != REQUEST_ID => continue, // §3.3: not ours
                Some(Ok(r)) => r,
            };
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
                                let error = Error::Head(e);
                                self.log(Err(&error), 0, &End::Closed);
                                let _ = tx.send(Reply::Failed(error));
                                return;
                            }
                        }
                    } else if head_buf.len() > response::MAX_HEAD_BYTES {
                        let error = Error::Head(response::HeadError::TooLarge);
                        self.log(Err(&error), 0, &End::Closed);
                        if let Some(tx) = head_tx.take() {
                            let _ = tx.send(Reply::Failed(error));
                        }
                        return;
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
                        tracing::warn!(target: "portico::stderr", upstream = %self.upstream, "{line}");
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
        match head_tx {
            Some(tx) => {
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
            None => self.log(Ok(status.unwrap_or(StatusCode::OK)), sent, &end),
        }
    }

    fn log(&self, outcome: Result<StatusCode, &Error>, bytes: u64, end: &End) {
        let duration_ms = format_args!("{:.2}", self.started.elapsed().as_secs_f64() * 1000.0);
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
                duration_ms, upstream = %self.upstream, app_status,
            ),
            Ok(status) => tracing::warn!(
                target: "portico::access", method = %self.method, path = %self.path, status = status.as_u16(), bytes,
                duration_ms, upstream = %self.upstream, app_status, ended,
            ),
            Err(error) => tracing::warn!(
                target: "portico::access", method = %self.method, path = %self.path, status = error.status().as_u16(),
                bytes, duration_ms, upstream = %self.upstream, app_status, ended, cause = crate::error::chain(error),
            ),
        }
    }
}
