//! A connection while one request is on it, cut in two: the read half (`HalfConn`, its
//! records) stays with the exchange, the write half goes to whoever sends the request
//! (`send`). At the request's end the two are joined again for the pool (`take_back`), or
//! the request is aborted (FCGI_ABORT_REQUEST, §5.4) and the connection let go.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

use super::conn::{Conn, Reader, Writer};
use super::mux::{Queue, Ticket};
use super::pool::Link;
use super::record::{self, Kind, Record, RecordCodec, RecordError};
use super::send::Sending;

/// Portico's request id: one request at a time per connection.
const REQUEST_ID: u16 = 1;

/// How long an aborted request may take to end before its connection is closed instead.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Where a request's records come from: its own connection, or its queue on a shared one.
pub(super) enum Records {
    Direct(FramedRead<Reader, RecordCodec>),
    /// The ticket is held for its drop, which frees the request id.
    Shared {
        queue: Queue,
        _ticket: Ticket,
    },
}

impl Records {
    pub(super) async fn next(&mut self) -> Option<Result<Record, RecordError>> {
        match self {
            Records::Direct(records) => records.next().await,
            Records::Shared { queue, .. } => queue.recv().await,
        }
    }
}

/// A connection cut in two: the read half for the exchange, the write half for sending.
pub(super) fn split(link: Link) -> (HalfConn, Writer) {
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
                records: Records::Shared {
                    queue,
                    _ticket: ticket,
                },
                generation: 0,
                requests: 0,
            },
            writer,
        ),
    }
}

/// The peer closed its end before reading what was sent (a reset, or a write to a socket
/// already closed).
pub(super) fn is_closed(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// A connection while its write half is with the writer task.
pub(super) struct HalfConn {
    pub records: Records,
    /// The request id: 1 on a connection of its own, one of many on a shared one.
    pub id: u16,
    pub generation: u64,
    pub requests: u64,
}

/// The connection, whole again, if the request was fully sent and ended cleanly.
pub(super) async fn take_back(conn: HalfConn, sending: Sending) -> Option<Conn> {
    let writer = sending.finish().await?;
    match conn.records {
        Records::Direct(records) => Some(Conn {
            records,
            writer,
            generation: conn.generation,
            requests: conn.requests,
        }),
        // The shared connection stays with the endpoint; the request id is free again.
        Records::Shared { .. } => None,
    }
}

/// FCGI_ABORT_REQUEST (§5.4), then the request's records until its END_REQUEST, so the
/// app can stop cleanly; then its own connection is closed (a shared one stays).
pub(super) async fn abort(mut conn: HalfConn, sending: Sending) {
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
