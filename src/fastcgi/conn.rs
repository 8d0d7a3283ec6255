//! One connection to a FastCGI application: opening it, telling whether a kept-open one
//! is still usable, and asking the application what it can take (FCGI_GET_VALUES, §4.1).

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;

use super::params::{decode_pairs, encode_pairs};
use super::record::{self, Kind, RecordCodec};
use crate::config::Upstream;
use crate::error::{Deadline, Error};

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// An open connection, kept between requests when the application agrees (FCGI_KEEP_CONN).
pub struct Conn {
    pub records: FramedRead<Reader, RecordCodec>,
    pub writer: Writer,
    /// The endpoint's generation when this was opened; a worker replaced since makes it stale.
    pub generation: u64,
    /// Requests this connection has carried.
    pub requests: u64,
}

impl Conn {
    pub async fn open(
        address: &Upstream,
        timeout: Duration,
        generation: u64,
    ) -> Result<Conn, Error> {
        let (reader, writer) = match tokio::time::timeout(timeout, open_stream(address)).await {
            Ok(result) => result.map_err(Error::Upstream)?,
            Err(_) => return Err(Error::Timeout(Deadline::Connect)),
        };
        Ok(Conn {
            records: FramedRead::new(reader, RecordCodec),
            writer,
            generation,
            requests: 0,
        })
    }

    /// False when an idle connection has been closed by the application or has bytes
    /// nobody asked for: either way it must not carry a request.
    pub fn is_usable(&mut self) -> bool {
        self.records.next().now_or_never().is_none()
    }
}

async fn open_stream(address: &Upstream) -> io::Result<(Reader, Writer)> {
    Ok(match address {
        Upstream::Unix(path) => {
            let (r, w) = connect_unix(path).await?.into_split();
            (Box::new(r), Box::new(w))
        }
        Upstream::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        }
    })
}

/// Connects to a unix socket, waiting while its listen queue is full.
///
/// A non-blocking connect(2) to a unix socket whose backlog is full fails with EAGAIN
/// (unix(7)) where TCP would wait for the SYN to be retried: under a burst that would turn
/// requests the application is about to accept into 502s. They wait instead, within the
/// caller's connect timeout, as a blocking connect would.
async fn connect_unix(path: &std::path::Path) -> io::Result<tokio::net::UnixStream> {
    let mut pause = Duration::from_micros(500);
    loop {
        match tokio::net::UnixStream::connect(path).await {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// What an application said about itself in FCGI_GET_VALUES_RESULT (§4.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Values {
    pub max_conns: Option<usize>,
    pub max_reqs: Option<usize>,
    pub mpxs_conns: Option<bool>,
}

impl Values {
    pub fn parse(content: &[u8]) -> Values {
        let mut values = Values::default();
        for (name, value) in decode_pairs(content).unwrap_or_default() {
            let number = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
            match name {
                b"FCGI_MAX_CONNS" => values.max_conns = number,
                b"FCGI_MAX_REQS" => values.max_reqs = number,
                b"FCGI_MPXS_CONNS" => values.mpxs_conns = number.map(|n| n != 0),
                _ => {}
            }
        }
        values
    }

    /// Requests the application can serve at once, when it said.
    pub fn capacity(&self) -> Option<usize> {
        match (self.max_conns, self.max_reqs) {
            (Some(c), Some(r)) => Some(c.min(r)),
            (c, r) => c.or(r),
        }
        .filter(|&n| n > 0)
    }
}

/// Asks on a connection of its own, which is then closed: php-fpm answers FCGI_GET_VALUES
/// and closes, so the question cannot share a connection with a request.
pub async fn ask_values(address: &Upstream, timeout: Duration) -> Option<Values> {
    let asking = async {
        let mut conn = Conn::open(address, timeout, 0).await.ok()?;
        let names: [&[u8]; 3] = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"];
        let query = encode_pairs(names.map(|name| (name, &b""[..]))).ok()?;
        let mut out = BytesMut::new();
        record::encode_management(&mut out, Kind::GetValues, &query);
        conn.writer.write_all(&out).await.ok()?;
        // An app answers at once or not at all; a request must not wait long for this.
        let answer = async {
            while let Some(Ok(record)) = conn.records.next().await {
                if record.is(Kind::GetValuesResult) {
                    return Some(Values::parse(&record.content));
                }
            }
            None
        };
        tokio::time::timeout(ANSWER_TIMEOUT, answer)
            .await
            .ok()
            .flatten()
    };
    tokio::time::timeout(timeout + ANSWER_TIMEOUT, asking)
        .await
        .ok()
        .flatten()
}

/// How long an application may take to answer FCGI_GET_VALUES.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_give_the_smaller_limit() {
        let content = encode_pairs([
            (&b"FCGI_MAX_CONNS"[..], &b"5"[..]),
            (b"FCGI_MAX_REQS", b"3"),
            (b"FCGI_MPXS_CONNS", b"0"),
        ])
        .unwrap();
        let values = Values::parse(&content);
        assert_eq!(values.capacity(), Some(3));
        assert_eq!(values.mpxs_conns, Some(false));
        assert_eq!(Values::parse(b"").capacity(), None);
    }
}
