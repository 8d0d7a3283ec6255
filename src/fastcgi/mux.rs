//! Several requests on one connection, for an application that says FCGI_MPXS_CONNS=1 in
//! FCGI_GET_VALUES (§4.1; Go's net/http/fcgi does): each request has its own request id
//! (§3.3), a reader task routes incoming records by id, and a writer task sends each
//! request's records whole, so records of different requests interleave only at record
//! boundaries.
//!
//! FastCGI has no flow control per request: a client that reads slowly holds up the others
//! on its connection once its bounded queue is full. Memory stays bounded either way.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};

use super::conn::{Conn, Writer};
use super::record::{Kind, Record, RecordError};

/// Records queued per request before the reader waits for that request's client.
const QUEUE_RECORDS: usize = 16;

/// One request's records, as the reader task routes them.
pub type Queue = mpsc::Receiver<Result<Record, RecordError>>;

/// A connection shared by the requests in flight on it.
pub struct MuxConn {
    out: mpsc::Sender<Bytes>,
    routes: Mutex<HashMap<u16, Route>>,
    /// Numbers each request opened here, so that a ticket tells its own route from a later
    /// request's that got the same id once the application had ended the first.
    opened: AtomicU64,
    dead: AtomicBool,
    /// Ends both tasks, which closes the connection.
    close: CancellationToken,
}

enum Route {
    Active(u64, mpsc::Sender<Result<Record, RecordError>>),
    /// Ended on Portico's side (aborted): its records are dropped until END_REQUEST.
    Draining,
}

/// One request's place on a shared connection; leaving it frees the request id once the
/// application has ended the request.
pub struct Ticket {
    mux: Arc<MuxConn>,
    pub id: u16,
    serial: u64,
}

impl MuxConn {
    /// Takes over a new connection: a reader task and a writer task serve it from now on.
    pub fn start(conn: Conn) -> Arc<MuxConn> {
        let (out, mut queue) = mpsc::channel::<Bytes>(64);
        let mux = Arc::new(MuxConn {
            out,
            routes: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            close: CancellationToken::new(),
        });
        let Conn {
            mut records,
            mut writer,
            ..
        } = conn;
        let writing = mux.clone();
        tokio::spawn(async move {
            let close = writing.close.clone();
            let pump = async {
                while let Some(bytes) = queue.recv().await {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                () = pump => {}
                () = close.cancelled() => {}
            }
            writing.die();
        });
        let reading = mux.clone();
        tokio::spawn(async move {
            let close = reading.close.clone();
            let pump = async {
                while let Some(Ok(record)) = records.next().await {
                    reading.route(record).await;
                }
            };
            tokio::select! {
                () = pump => {}
                () = close.cancelled() => {}
            }
            reading.die();
        });
        mux
    }

    pub fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire)
    }

    /// A request id free on this connection, its record queue and a writer for its records.
    pub fn open(self: &Arc<Self>) -> Option<(Ticket, Queue, Writer)> {
        if !self.is_alive() {
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE_RECORDS);
        let mut routes = self.routes();
        let id = (1..=u16::MAX).find(|id| !routes.contains_key(id))?;
        let serial = self.opened.fetch_add(1, Ordering::Relaxed);
        routes.insert(id, Route::Active(serial, tx));
        drop(routes);
        let writer = Box::new(MuxWriter(PollSender::new(self.out.clone())));
        Some((
            Ticket {
                mux: self.clone(),
                id,
                serial,
            },
            rx,
            writer,
        ))
    }

    async fn route(&self, record: Record) {
        let ends = record.is(Kind::EndRequest);
        let tx = match self.routes().get(&record.request_id) {
            Some(Route::Active(_, tx)) => Some(tx.clone()),
            Some(Route::Draining) => None,
            None => return, // §3.3: a management record or an inactive request
        };
        if ends {
            self.routes().remove(&record.request_id);
        }
        if let Some(tx) = tx {
            let _ = tx.send(Ok(record)).await;
        }
    }

    /// Closes the connection; requests still on it see it end.
    pub fn close(&self) {
        self.close.cancel();
    }

    fn die(&self) {
        self.dead.store(true, Ordering::Release);
        self.close.cancel();
        // Dropping the queues ends every request on the connection.
        self.routes().clear();
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<u16, Route>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut routes = self.mux.routes();
        // Not ended by the application: its id stays taken until it is. Once it has ended,
        // the id may be another request's already, which must be left alone.
        if let Some(route) = routes.get_mut(&self.id)
            && matches!(route, Route::Active(serial, _) if *serial == self.serial)
        {
            *route = Route::Draining;
        }
    }
}

/// A request's writer on a shared connection: each write goes to the writer task as one
/// message, and Portico writes whole records at a time.
struct MuxWriter(PollSender<Bytes>);

impl AsyncWrite for MuxWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "connection closed");
        match self.0.poll_reserve(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(closed())),
            Poll::Ready(Ok(())) => match self.0.send_item(Bytes::copy_from_slice(buf)) {
                Ok(()) => Poll::Ready(Ok(buf.len())),
                Err(_) => Poll::Ready(Err(closed())),
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
