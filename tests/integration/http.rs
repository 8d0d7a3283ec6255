//! A small raw HTTP/1.x client over `std::net::TcpStream`.
//!
//! It writes request bytes exactly as given, so targets that real clients normalise
//! (`..`, `%2e%2e`, backslashes) reach Portico unchanged, and it reads responses strictly
//! enough to check their framing (RFC 9112 §6.3): Content-Length, chunked, or
//! close-delimited, noticing a body that was cut short. Several requests may share one
//! connection, and a body can be consumed as it arrives. It knows nothing about Portico
//! itself; starting the server is `harness.rs`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Read and write timeout of every connection unless a test sets another.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Heads larger than this are treated as a broken response.
const MAX_HEAD_BYTES: usize = 1 << 20;

/// A request to be serialised byte for byte.
#[derive(Clone, Debug)]
pub struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    None,
    Fixed(Vec<u8>),
    Chunked(Vec<Vec<u8>>),
}

impl Request {
    /// `METHOD TARGET HTTP/1.1` with `Host: portico.test` and `Connection: close`.
    pub fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            version: "HTTP/1.1".to_owned(),
            headers: vec![
                ("Host".to_owned(), "portico.test".to_owned()),
                ("Connection".to_owned(), "close".to_owned()),
            ],
            body: Body::None,
        }
    }

    pub fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    pub fn head(target: &str) -> Request {
        Request::new("HEAD", target)
    }

    pub fn post(target: &str, body: impl Into<Vec<u8>>) -> Request {
        Request::new("POST", target).body(body)
    }

    /// An HTTP/1.0 request: no `Connection` header, so the connection closes after it.
    pub fn http_1_0(mut self) -> Request {
        self.version = "HTTP/1.0".to_owned();
        self.without_header("Connection")
    }

    /// Appends a header line; the same name may be added several times.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without_header(mut self, name: &str) -> Request {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Leaves the connection open for another request.
    pub fn keep_alive(self) -> Request {
        self.without_header("Connection")
    }

    /// A body sent with `Content-Length` (unless the test set one itself).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Body::Fixed(body.into());
        self
    }

    /// A body sent with `Transfer-Encoding: chunked`, one chunk per element.
    pub fn chunked(mut self, chunks: Vec<Vec<u8>>) -> Request {
        self.body = Body::Chunked(chunks);
        self
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        match &self.body {
            Body::None => out.extend_from_slice(b"\r\n"),
            Body::Fixed(body) => {
                if !has("Content-Length") {
                    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(body);
            }
            Body::Chunked(chunks) => {
                if !has("Transfer-Encoding") {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                }
                out.extend_from_slice(b"\r\n");
                for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        out
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// The body runs until the server closes the connection.
    Close,
}

/// A status line and its header fields, in the order received.
#[derive(Clone, Debug)]
pub struct Head {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn framing(&self, method: &str) -> Framing {
        if method == "HEAD" || (100..200).contains(&self.status) || matches!(self.status, 204 | 304)
        {
            return Framing::Empty;
        }
        if self
            .header("Transfer-Encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            return Framing::Chunked;
        }
        match self.header("Content-Length") {
            Some(length) => Framing::Length(
                length
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("response has a bad Content-Length {length:?}")),
            ),
            None => Framing::Close,
        }
    }
}

/// A whole response, body decoded.
#[derive(Clone, Debug)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    pub body: Vec<u8>,
    /// False when the connection ended before the framing said the body was over.
    pub complete: bool,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of header `name`, in the order received.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends one request on a fresh connection and reads the whole response.
pub fn send(addr: SocketAddr, request: &Request) -> Response {
    Connection::open(addr).round_trip(request)
}

/// One client connection; bytes read past a response stay buffered for the next one.
pub struct Connection {
    stream: TcpStream,
    buffered: Vec<u8>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> Connection {
        Connection::try_open(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    pub fn try_open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffered: Vec::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// A second handle on the socket, for writing a body from another thread.
    pub fn writer(&self) -> TcpStream {
        self.stream.try_clone().unwrap()
    }

    /// Closes both directions, as a client that goes away does.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub fn send(&mut self, request: &Request) {
        self.send_raw(&request.to_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes)
            .unwrap_or_else(|e| panic!("sending {} bytes: {e}", bytes.len()));
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    pub fn round_trip(&mut self, request: &Request) -> Response {
        self.send(request);
        self.read_response(request.method())
    }

    /// The next response to a `method` request; panics if there is none.
    pub fn read_response(&mut self, method: &str) -> Response {
        self.try_read_response(method)
            .unwrap_or_else(|e| panic!("no complete response to {method}: {e}"))
    }

    pub fn try_read_response(&mut self, method: &str) -> io::Result<Response> {
        let head = self.read_head()?;
        let framing = head.framing(method);
        let mut body = Vec::new();
        let complete = self.read_body_with(framing, &mut |bytes| body.extend_from_slice(bytes))?;
        Ok(Response {
            version: head.version,
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            framing,
            body,
            complete,
        })
    }

    /// The next final response head, skipping interim 1xx responses.
    pub fn read_head(&mut self) -> io::Result<Head> {
        loop {
            let head = self.read_one_head()?;
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            return Ok(head);
        }
    }

    fn read_one_head(&mut self) -> io::Result<Head> {
        loop {
            if let Some(end) = find(&self.buffered, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buffered.drain(..end + 4).collect();
                return parse_head(&raw[..end]);
            }
            if self.buffered.len() > MAX_HEAD_BYTES {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "response head too large",
                ));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed after {} bytes of response head: {:?}",
                        self.buffered.len(),
                        String::from_utf8_lossy(&self.buffered)
                    ),
                ));
            }
        }
    }

    /// Feeds the body to `sink` piece by piece as it arrives; returns whether it was complete.
    pub fn read_body_with(
        &mut self,
        framing: Framing,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        match framing {
            Framing::Empty => Ok(true),
            Framing::Length(length) => self.read_exactly(length, sink),
            Framing::Close => {
                self.read_exactly(u64::MAX, sink)?;
                Ok(true)
            }
            Framing::Chunked => loop {
                let Some(line) = self.read_line()? else {
                    return Ok(false);
                };
                let size = String::from_utf8_lossy(&line);
                let size = size.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16).map_err(|_| {
                    io::Error::new(ErrorKind::InvalidData, format!("bad chunk size {size:?}"))
                })?;
                if size == 0 {
                    // Trailer section, up to the empty line (RFC 9112 §7.1.2).
                    loop {
                        match self.read_line()? {
                            None => return Ok(false),
                            Some(line) if line.is_empty() => return Ok(true),
                            Some(_) => {}
                        }
                    }
                }
                if !self.read_exactly(size, sink)? {
                    return Ok(false);
                }
                match self.read_line()? {
                    Some(line) if line.is_empty() => {}
                    Some(_) => {
                        return Err(io::Error::new(
                            ErrorKind::InvalidData,
                            "chunk not followed by CRLF",
                        ));
                    }
                    None => return Ok(false),
                }
            },
        }
    }

    /// Everything until the server closes the connection, undecoded.
    pub fn read_to_end_raw(&mut self) -> io::Result<Vec<u8>> {
        let mut out = std::mem::take(&mut self.buffered);
        self.read_exactly(u64::MAX, &mut |bytes| out.extend_from_slice(bytes))?;
        Ok(out)
    }

    /// Whether the server closed the connection (EOF or reset) within the read timeout,
    /// discarding anything it sent first.
    pub fn is_closed_by_server(&mut self) -> bool {
        loop {
            match self.fill() {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Reads `length` bytes (or up to EOF for `u64::MAX`); false if EOF came first.
    fn read_exactly(&mut self, mut length: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
        while length > 0 {
            if !self.buffered.is_empty() {
                let take = self
                    .buffered
                    .len()
                    .min(usize::try_from(length).unwrap_or(usize::MAX));
                sink(&self.buffered[..take]);
                self.buffered.drain(..take);
                length -= take as u64;
                continue;
            }
            let mut chunk = [0u8; 64 * 1024];
            let want = chunk
                .len()
                .min(usize::try_from(length).unwrap_or(usize::MAX));
            let got = self.read_some(&mut chunk[..want])?;
            if got == 0 {
                return Ok(length == u64::MAX);
            }
            sink(&chunk[..got]);
            if length != u64::MAX {
                length -= got as u64;
            }
        }
        Ok(true)
    }

    /// One line without its CRLF (a bare LF is accepted); None on EOF.
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = self.buffered.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buffered.drain(..=at).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let got = self.read_some(&mut chunk)?;
        self.buffered.extend_from_slice(&chunk[..got]);
        Ok(got)
    }

    /// A read where a reset counts as the end of the stream: the server gave up on us.
    fn read_some(&mut self, into: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(into) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let bad = |what: &str| {
        io::Error::new(
            ErrorKind::InvalidData,
            format!("{what}: {:?}", String::from_utf8_lossy(raw)),
        )
    };
    let text = std::str::from_utf8(raw).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty response head"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_owned();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status code"))?;
    let reason = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("header line without a colon"))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Head {
        version,
        status,
        reason,
        headers,
    })
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}
