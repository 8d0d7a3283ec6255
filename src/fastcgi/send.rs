//! The write side of one FastCGI request (FastCGI spec §6.2): FCGI_BEGIN_REQUEST,
//! FCGI_PARAMS and the body as FCGI_STDIN, either written at once or by a task of its own
//! while the response is read, and the copy of the request kept to send it again on a
//! fresh connection when a kept one turns out closed.
//!
//! It does not read anything: that is `client`'s `Exchange`.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::conn::Writer;
use super::record::{self, Kind, Role};
use crate::body::RequestBody;

/// A body up to this size is written before the response is read: it fits in the socket's
/// buffer, so an app that answers while it reads cannot block on it.
const INLINE_BODY_BYTES: usize = 16 * 1024;

/// The write half of a connection while a request is being sent.
pub enum Sending {
    /// Not written yet: the whole request is at hand.
    Inline(Writer, u16, Opening, RequestBody),
    Sent(Writer),
    Task(JoinHandle<io::Result<Writer>>),
    Failed,
}

impl Sending {
    /// Starts sending: a body already here is written by the reader itself (`Inline`), one
    /// still arriving from the client by a task of its own, while the response is read.
    pub fn start(writer: Writer, id: u16, opening: Opening, body: RequestBody) -> Sending {
        match body {
            body @ RequestBody::None => Sending::Inline(writer, id, opening, body),
            RequestBody::Memory(bytes) if bytes.len() <= INLINE_BODY_BYTES => {
                Sending::Inline(writer, id, opening, RequestBody::Memory(bytes))
            }
            body => Sending::Task(tokio::spawn(write_request(writer, id, opening, body))),
        }
    }

    /// The write half, once the whole request is written.
    pub async fn finish(self) -> Option<Writer> {
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

    pub fn abort(self) {
        if let Sending::Task(task) = self {
            task.abort();
        }
    }
}

/// What opens a request: the role asked of the app (FastCGI §5.1, §6) and the FCGI_PARAMS
/// stream's content.
#[derive(Clone)]
pub struct Opening {
    pub role: Role,
    pub params: Bytes,
}

/// The request as it was before it was first sent, while it may still be sent again:
/// only a body that is all in memory can be.
pub struct Replay {
    pub opening: Opening,
    pub body: RequestBody,
    /// RFC 9110 §9.2.2: sending it twice has the effect of sending it once.
    pub is_idempotent: bool,
}

impl Replay {
    pub fn of(opening: &Opening, body: &RequestBody, method: &Method) -> Option<Replay> {
        let body = match body {
            RequestBody::None => RequestBody::None,
            RequestBody::Memory(bytes) => RequestBody::Memory(bytes.clone()),
            RequestBody::Stream { .. } | RequestBody::File { .. } => return None,
        };
        Some(Replay {
            opening: opening.clone(),
            body,
            is_idempotent: matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            ),
        })
    }
}

/// BEGIN_REQUEST (with FCGI_KEEP_CONN), PARAMS, then STDIN as the body arrives (§6.2).
/// Gives the write half back when the request is fully sent.
pub async fn write_request(
    mut writer: Writer,
    id: u16,
    opening: Opening,
    body: RequestBody,
) -> io::Result<Writer> {
    let mut out = BytesMut::with_capacity(4096);
    record::encode_record(
        &mut out,
        Kind::BeginRequest,
        id,
        &record::begin_request(opening.role, true),
    );
    record::encode_stream(&mut out, Kind::Params, id, &opening.params);
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
                let frame = frame?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_body_in_memory_can_be_sent_again() {
        let params = Opening {
            role: Role::Responder,
            params: Bytes::from_static(b"params"),
        };
        let memory = RequestBody::Memory(Bytes::from_static(b"body"));
        let replay = Replay::of(&params, &memory, &Method::POST).expect("replayable");
        assert!(!replay.is_idempotent);
        assert!(matches!(replay.body, RequestBody::Memory(b) if b == "body"));
        assert!(
            Replay::of(&params, &RequestBody::None, &Method::GET).is_some_and(|r| r.is_idempotent)
        );
        let file = RequestBody::File {
            file: tempfile::tempfile().expect("temp file"),
            length: 0,
        };
        assert!(Replay::of(&params, &file, &Method::PUT).is_none());
    }

    #[test]
    fn idempotent_methods_are_those_of_rfc_9110() {
        let cases = [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::OPTIONS, true),
            (Method::TRACE, true),
            (Method::PUT, true),
            (Method::DELETE, true),
            (Method::POST, false),
            (Method::PATCH, false),
            (Method::from_bytes(b"PROPFIND").expect("method"), false),
        ];
        for (method, idempotent) in cases {
            let opening = Opening {
                role: Role::Responder,
                params: Bytes::new(),
            };
            let replay = Replay::of(&opening, &RequestBody::None, &method).expect("replay");
            assert_eq!(replay.is_idempotent, idempotent, "{method}");
        }
    }
}
