//! One HTTP/1.1 request to the in-process Portico, as any client sends it: the body is
//! written while the response is read, so a script that echoes its input as it reads it
//! never fills a socket buffer that nobody empties. The response's head is kept as it came;
//! its body is counted, by its framing (RFC 9112 §6.3), and timed to its first and last
//! byte.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::request::Request;

/// A response slower than this, between two reads, is a hung request.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Exchange {
    /// The connection's two ends: what the server saw as the remote and local address.
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub response: Response,
}

/// The exchange's connection, open until dropped: Portico takes a closed connection for a
/// client gone and ends a script that has not exited yet. The write half stays open too:
/// hyper ends a connection whose client half-closes it.
pub struct Connection {
    _halves: (OwnedReadHalf, OwnedWriteHalf),
}

pub struct Response {
    pub status: u16,
    /// The status line and header fields, without the blank line.
    pub head: String,
    pub body_bytes: u64,
    /// Whether the body ended as its framing says (a cut response does not).
    pub complete: bool,
    /// From the first request byte written.
    pub first_byte: Duration,
    pub last_byte: Duration,
}

pub async fn send(addr: SocketAddr, request: &Request) -> io::Result<(Exchange, Connection)> {
    let stream = TcpStream::connect(addr).await?;
    let client = stream.local_addr()?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let started = Instant::now();
    let write = async {
        writer.write_all(&request.head()).await?;
        writer.write_all(&request.body).await
    };
    let is_head = request.method == http::Method::HEAD;
    let read = read_response(&mut reader, started, is_head);
    // A server may answer before it has read the whole body (413, a script that exits
    // early) and close: then the write fails, and the answer is what counts.
    let (_, response) = tokio::join!(write, read);
    let exchange = Exchange {
        client,
        server: addr,
        response: response?,
    };
    let connection = Connection {
        _halves: (reader.into_inner(), writer),
    };
    Ok((exchange, connection))
}

async fn read_response(
    reader: &mut (impl AsyncBufRead + Unpin),
    started: Instant,
    is_head: bool,
) -> io::Result<Response> {
    timed(reader.fill_buf()).await?;
    let first_byte = started.elapsed();
    let mut head = String::new();
    loop {
        let mut line = Vec::new();
        if timed(reader.read_until(b'\n', &mut line)).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        head.push_str(line);
        head.push('\n');
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no status line"))?;
    let field = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let chunked = field("transfer-encoding").is_some_and(|v| v.ends_with("chunked"));
    let length = field("content-length").and_then(|v| v.parse::<u64>().ok());
    let (body_bytes, complete) = if is_head || status == 204 || status == 304 {
        (0, true)
    } else if chunked {
        read_chunked(reader).await
    } else if let Some(length) = length {
        let read = count(reader, Some(length)).await;
        (read, read == length)
    } else {
        // Delimited by the connection's close: an NPH script's own response, say.
        (count(reader, None).await, true)
    };
    Ok(Response {
        status,
        head: head.trim_end().to_owned(),
        body_bytes,
        complete,
        first_byte,
        last_byte: started.elapsed(),
    })
}

/// RFC 9112 §7.1: the data bytes of a chunked body, and whether its last chunk came.
async fn read_chunked(reader: &mut (impl AsyncBufRead + Unpin)) -> (u64, bool) {
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        if !matches!(timed(reader.read_until(b'\n', &mut line)).await, Ok(n) if n > 0) {
            return (total, false);
        }
        let text = String::from_utf8_lossy(&line);
        let size = text.trim().split(';').next().unwrap_or("");
        let Ok(size) = u64::from_str_radix(size, 16) else {
            return (total, false);
        };
        if size == 0 {
            // Trailer fields, up to the blank line.
            loop {
                line.clear();
                match timed(reader.read_until(b'\n', &mut line)).await {
                    Ok(n) if n > 0 && line.trim_ascii().is_empty() => return (total, true),
                    Ok(n) if n > 0 => continue,
                    _ => return (total, false),
                }
            }
        }
        let read = count(&mut *reader, Some(size)).await;
        total += read;
        line.clear();
        if read < size || timed(reader.read_until(b'\n', &mut line)).await.is_err() {
            return (total, false);
        }
    }
}

/// Reads and drops up to `limit` bytes (all of them without one); the count read.
async fn count(reader: &mut (impl AsyncBufRead + Unpin), limit: Option<u64>) -> u64 {
    let mut total = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let want = limit.map_or(chunk.len(), |l| {
            (l - total).min(chunk.len() as u64) as usize
        });
        if want == 0 {
            return total;
        }
        match timed(reader.read(&mut chunk[..want])).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n as u64,
        }
    }
}

async fn timed<T>(read: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer within 60 s"))?
}
