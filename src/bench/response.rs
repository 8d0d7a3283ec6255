//! One HTTP/1.1 response as the load generator reads it: the head parsed, the body read
//! past by its framing (RFC 9112 §6.3: Content-Length, chunked, or until close) and never
//! kept, so that a connection can send its next request.
//!
//! Only what a load run counts comes out: the status, the bytes on the wire, whether the
//! connection may be kept; a failure says only which way it failed (write, read, parse).

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

pub(super) enum Failure {
    Write,
    Read,
    Parse,
}

pub(super) struct Response {
    pub(super) status: u16,
    pub(super) bytes: u64,
    pub(super) keep_alive: bool,
}

/// Reads one response: the head, then the body by its framing (RFC 9112 §6.3).
pub(super) async fn read_response(
    socket: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Response, Failure> {
    let (status, head_len, framing, keep_alive) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = parsed.code.unwrap_or(0);
                let mut framing = Framing::UntilClose;
                let mut keep_alive = parsed.version == Some(1);
                for h in parsed.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let n = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or(Failure::Parse)?;
                        framing = Framing::Length(n);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                        && h.value.eq_ignore_ascii_case(b"chunked")
                    {
                        framing = Framing::Chunked;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        keep_alive = !h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                // No body for these whatever the headers say (RFC 9112 §6.3).
                if status == 204 || status == 304 || (100..200).contains(&status) {
                    framing = Framing::Length(0);
                }
                break (status, len, framing, keep_alive);
            }
            Ok(httparse::Status::Partial) => fill(socket, buf).await?,
            Err(_) => return Err(Failure::Parse),
        }
    };
    buf.advance(head_len);
    let mut bytes = head_len as u64;
    match framing {
        Framing::Length(length) => {
            skip(socket, buf, length).await?;
            bytes += length;
        }
        Framing::Chunked => bytes += read_chunked(socket, buf).await?,
        Framing::UntilClose => {
            bytes += buf.len() as u64;
            buf.clear();
            loop {
                match socket.read_buf(buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        bytes += n as u64;
                        buf.clear();
                    }
                    Err(_) => return Err(Failure::Read),
                }
            }
            return Ok(Response {
                status,
                bytes,
                keep_alive: false,
            });
        }
    }
    Ok(Response {
        status,
        bytes,
        keep_alive,
    })
}

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// A chunked body (RFC 9112 §7.1): size lines, data, and the trailer section.
async fn read_chunked(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<u64, Failure> {
    let mut bytes = 0u64;
    loop {
        let line = read_line(socket, buf).await?;
        bytes += line.len() as u64 + 2;
        let size = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| u64::from_str_radix(l.split(';').next()?.trim(), 16).ok())
            .ok_or(Failure::Parse)?;
        if size == 0 {
            // Trailer fields, up to the empty line.
            loop {
                let line = read_line(socket, buf).await?;
                bytes += line.len() as u64 + 2;
                if line.is_empty() {
                    return Ok(bytes);
                }
            }
        }
        skip(socket, buf, size + 2).await?; // the data and its CRLF
        bytes += size + 2;
    }
}

/// Reads past `length` body bytes without keeping them.
async fn skip(socket: &mut TcpStream, buf: &mut BytesMut, mut length: u64) -> Result<(), Failure> {
    while length > 0 {
        if buf.is_empty() {
            fill(socket, buf).await?;
        }
        let n = (buf.len() as u64).min(length);
        buf.advance(n as usize);
        length -= n;
    }
    Ok(())
}

async fn read_line(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<Vec<u8>, Failure> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = buf.split_to(end).to_vec();
            buf.advance(2);
            return Ok(line);
        }
        if buf.len() > 64 * 1024 {
            return Err(Failure::Parse);
        }
        fill(socket, buf).await?;
    }
}

async fn fill(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<(), Failure> {
    buf.reserve(16 * 1024);
    match socket.read_buf(buf).await {
        Ok(0) | Err(_) => Err(Failure::Read),
        Ok(_) => Ok(()),
    }
}
