//! Bodies. Request bodies on their way to a script: length checks against the body limit,
//! and spooling of bodies sent without a length (chunked), first in memory and then in an
//! anonymous temp file, so the script still gets CONTENT_LENGTH (RFC 3875 §4.1.2).
//! Response bodies: one boxed type for script output and Portico's own short answers.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use tokio::io::AsyncWriteExt;

use crate::error::Error;

/// Every response body Portico sends.
pub type ResponseBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A short body Portico writes itself.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body as the script will read it.
pub enum RequestBody {
    None,
    /// A body with a declared length, streamed as it arrives.
    Stream {
        body: Incoming,
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
        body: Incoming,
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
            return Ok(if length == 0 {
                RequestBody::None
            } else {
                RequestBody::Stream { body, length }
            });
        }
        if body.is_end_stream() {
            return Ok(RequestBody::None);
        }
        spool(body, max_bytes, memory_bytes).await
    }
}

async fn spool(
    mut body: Incoming,
    max_bytes: u64,
    memory_bytes: usize,
) -> Result<RequestBody, Error> {
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
