//! Bodies. Request bodies on their way to a script: length checks against the body limit,
//! and spooling of bodies sent without a length (chunked), first in memory and then in an
//! anonymous temp file, so the script still gets CONTENT_LENGTH (RFC 3875 §4.1.2).
//! Response bodies: one boxed type for script output and Portico's own short answers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::time::Sleep;

use crate::error::Error;

/// Every response body Portico sends.
pub type ResponseBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A short body Portico writes itself.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body as the client sends it, which fails once the client has sent nothing
/// for the body read timeout (nginx's `client_body_timeout`): a slow upload holds its
/// connection, and the script or FastCGI request reading it, only that long per pause.
pub struct ClientBody {
    body: Incoming,
    timeout: Duration,
    /// Armed while the next frame is awaited; a frame disarms it.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl ClientBody {
    pub fn new(body: Incoming, timeout: Duration) -> ClientBody {
        ClientBody {
            body,
            timeout,
            waiting: None,
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.waiting = None;
            return Poll::Ready(frame.map(|f| f.map_err(io::Error::other)));
        }
        let timeout = this.timeout;
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(waiting.as_mut().poll(cx));
        tracing::info!(
            "client sent no body byte for {:.1} s (body_read_timeout_seconds): closing",
            timeout.as_secs_f64()
        );
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped sending its body",
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body as the script will read it.
pub enum RequestBody {
    None,
    /// A body with a declared length, streamed as it arrives.
    Stream {
        body: ClientBody,
        length: u64,
    },
    /// A body read to its end before the script starts.
    Memory(Bytes),
    File {
        file: std::fs::File,
        length: u64,
    },
}

impl RequestBody {
    /// CONTENT_LENGTH for the script, `None` when there is no body.
    pub fn length(&self) -> Option<u64> {
        match self {
            RequestBody::None => None,
            RequestBody::Stream { length, .. } | RequestBody::File { length, .. } => Some(*length),
            RequestBody::Memory(bytes) => Some(bytes.len() as u64),
        }
    }

    /// Checks the declared length, or spools a body that has none.
    pub async fn prepare(
        headers: &HeaderMap,
        body: ClientBody,
        max_bytes: u64,
        memory_bytes: usize,
    ) -> Result<RequestBody, Error> {
        if let Some(value) = headers.get(header::CONTENT_LENGTH) {
            let length: u64 = value
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or(Error::BadRequest("invalid Content-Length"))?;
            if length > max_bytes {
                return Err(Error::BodyTooLarge);
            }
            if length == 0 {
                return Ok(RequestBody::None);
            }
            // A body that fits in memory is read before the script starts or the FastCGI
            // request goes out, as nginx buffers one: a slow upload then holds a connection
            // only, never a script slot or an application's worker.
            if length <= memory_bytes as u64 {
                return read_whole(body, length).await;
            }
            return Ok(RequestBody::Stream { body, length });
        }
        if body.is_end_stream() {
            return Ok(RequestBody::None);
        }
        spool(body, max_bytes, memory_bytes).await
    }
}

/// Reads a body of a declared `length` to its end, in memory.
async fn read_whole(mut body: ClientBody, length: u64) -> Result<RequestBody, Error> {
    let mut memory = BytesMut::with_capacity(length as usize);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(Error::BodyRead)?.into_data() {
            memory.extend_from_slice(&data);
        }
    }
    Ok(RequestBody::Memory(memory.freeze()))
}

/// Reads a body without a declared length to its end. Generic over the body so the unit
/// tests can feed it frames without a connection; in production it is a `ClientBody`.
async fn spool<B>(mut body: B, max_bytes: u64, memory_bytes: usize) -> Result<RequestBody, Error>
where
    B: hyper::body::Body<Data = Bytes, Error = io::Error> + Unpin,
{
    let mut memory = BytesMut::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut length: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Error::BodyRead)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing a CGI script can read
        };
        length += data.len() as u64;
        if length > max_bytes {
            return Err(Error::BodyTooLarge);
        }
        if file.is_none() && memory.len() + data.len() > memory_bytes {
            let mut spill = tokio::fs::File::from_std(tempfile::tempfile().map_err(Error::Spool)?);
            spill.write_all(&memory).await.map_err(Error::Spool)?;
            memory = BytesMut::new();
            file = Some(spill);
        }
        match &mut file {
            Some(f) => f.write_all(&data).await.map_err(Error::Spool)?,
            None => memory.extend_from_slice(&data),
        }
    }
    Ok(match file {
        None if length == 0 => RequestBody::None,
        None => RequestBody::Memory(memory.freeze()),
        Some(mut f) => {
            f.flush().await.map_err(Error::Spool)?;
            let mut file = f.into_std().await;
            std::io::Seek::rewind(&mut file).map_err(Error::Spool)?;
            RequestBody::File { file, length }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use http_body_util::StreamBody;
    use hyper::body::Frame;

    use super::*;

    /// A chunked body as hyper would hand it over, one frame per chunk.
    fn chunked(chunks: &[&[u8]]) -> impl hyper::body::Body<Data = Bytes, Error = io::Error> {
        let frames: Vec<Result<Frame<Bytes>, io::Error>> = chunks
            .iter()
            .map(|chunk| Ok(Frame::data(Bytes::copy_from_slice(chunk))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    /// What the script would read on stdin, and the CONTENT_LENGTH it would be given.
    fn contents(body: RequestBody) -> (&'static str, String, Option<u64>) {
        let length = body.length();
        match body {
            RequestBody::None => ("none", String::new(), length),
            RequestBody::Memory(bytes) => {
                ("memory", String::from_utf8_lossy(&bytes).into(), length)
            }
            RequestBody::File { mut file, .. } => {
                let mut text = String::new();
                file.read_to_string(&mut text).unwrap();
                ("file", text, length)
            }
            RequestBody::Stream { .. } => panic!("a spooled body is never streamed"),
        }
    }

    #[tokio::test]
    async fn chunked_body_is_spooled_to_memory_up_to_body_memory_bytes_then_to_a_file() {
        // (chunks, max_body_bytes, body_memory_bytes, where the body ends up)
        let cases: &[(&[&[u8]], u64, usize, &str)] = &[
            (&[], 100, 10, "none"),
            (&[b"abc", b"def"], 100, 10, "memory"),
            (&[b"abcde", b"fghij"], 100, 10, "memory"),
            (&[b"abcde", b"fghij", b"k"], 100, 10, "file"),
            (&[b"abcdefghijklmnop"], 100, 10, "file"),
            (&[b"abc", b"defghijklmnop", b"qrs"], 100, 10, "file"),
            (&[b"abcdefghij"], 10, 4, "file"),
        ];
        for (chunks, max_bytes, memory_bytes, place) in cases {
            let sent = String::from_utf8(chunks.concat()).unwrap();
            let body = spool(chunked(chunks), *max_bytes, *memory_bytes)
                .await
                .unwrap_or_else(|e| panic!("{chunks:?}: {e}"));
            let expected_length = (!sent.is_empty()).then_some(sent.len() as u64);
            assert_eq!(
                contents(body),
                (*place, sent, expected_length),
                "chunks {chunks:?}, max {max_bytes}, memory {memory_bytes}"
            );
        }
    }

    #[tokio::test]
    async fn chunked_body_over_max_body_bytes_is_413() {
        let cases: &[(&[&[u8]], u64, usize)] = &[
            (&[b"abcdefghijk"], 10, 100),
            (&[b"abcde", b"fghij", b"k"], 10, 100),
            (&[b"abcde", b"fghij", b"k"], 10, 4),
        ];
        for (chunks, max_bytes, memory_bytes) in cases {
            let error = match spool(chunked(chunks), *max_bytes, *memory_bytes).await {
                Ok(body) => panic!("{chunks:?} was accepted as {:?}", contents(body)),
                Err(error) => error,
            };
            assert!(matches!(error, Error::BodyTooLarge), "{chunks:?}: {error}");
            assert_eq!(error.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
}
