//! The access log file: one line per request in the Common or Combined Log Format, the
//! format Apache, nginx and lighttpd write and log analysers read. Its start (client, time,
//! request line, and for Combined the Referer and User-Agent) is taken when the request
//! arrives; whoever ends the request (a script's owner, a FastCGI exchange, the gateway for
//! errors before either) adds the status and the body bytes and writes it. The file is
//! opened with each gateway, so the new gateway of a SIGHUP reload reopens it: that is
//! how a rotated log is let go.
//!
//! The `portico::access` tracing lines stay as they are; this file is for tools.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Request, header};

/// Which of the two standard line formats (`format = "common"` or `"combined"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `host ident user [time] "request" status bytes`.
    Common,
    /// Common plus `"referer" "user-agent"`.
    #[default]
    Combined,
}

pub struct AccessLog {
    file: Mutex<File>,
    format: Format,
    /// A failed write is reported once, not on every request, until a write succeeds.
    failing: AtomicBool,
}

/// A request's line, waiting for its status and size. Its clones go with each attempt at
/// the request (a local redirect makes another); the first `finish` writes it.
#[derive(Clone)]
pub struct Pending {
    log: Arc<AccessLog>,
    /// The client's address.
    client: Arc<str>,
    /// `%u`: the user a mount's authentication let in.
    user: Arc<std::sync::OnceLock<String>>,
    /// From the time up to and including the space before the status.
    head: Arc<str>,
    /// After the size: empty, or the Combined fields.
    tail: Arc<str>,
    written: Arc<AtomicBool>,
}

impl AccessLog {
    /// Opens `path` for appending, creating it (mode 0640) if needed.
    pub fn open(path: &Path, format: Format) -> io::Result<AccessLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(AccessLog {
            file: Mutex::new(file),
            format,
            failing: AtomicBool::new(false),
        })
    }

    /// The start of the line of a request that has just arrived.
    pub fn begin<B>(self: &Arc<Self>, request: &Request<B>, remote: IpAddr) -> Pending {
        let now = time::OffsetDateTime::now_utc();
        let format = time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        );
        let when = now.format(&format).unwrap_or_default();
        let mut head = format!("[{when}] \"");
        escape_into(&mut head, request.method().as_str().as_bytes());
        head.push(' ');
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        escape_into(&mut head, target.as_bytes());
        let _ = write!(head, " {:?}\" ", request.version());
        let tail = match self.format {
            Format::Common => String::new(),
            Format::Combined => {
                let mut tail = String::from(" \"");
                quoted_header(&mut tail, request.headers(), header::REFERER);
                tail.push_str("\" \"");
                quoted_header(&mut tail, request.headers(), header::USER_AGENT);
                tail.push('"');
                tail
            }
        };
        Pending {
            log: self.clone(),
            client: remote.to_string().into(),
            user: Arc::default(),
            head: head.into(),
            tail: tail.into(),
            written: Arc::default(),
        }
    }

    fn write(&self, line: &str) {
        let written = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes());
        match written {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "cannot write the access log");
                }
            }
        }
    }
}

impl Pending {
    /// Names the user the request was let in as.
    pub fn set_user(&self, user: &str) {
        let _ = self.user.set(user.to_owned());
    }

    /// Writes the line, unless a clone has: the status sent and the body bytes (`-` for
    /// none), as `%>s %b`.
    pub fn finish(&self, status: u16, bytes: u64) {
        if self.written.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut line = String::with_capacity(self.head.len() + self.tail.len() + 64);
        line.push_str(&self.client);
        line.push_str(" - ");
        match self.user.get() {
            Some(user) => escape_into(&mut line, user.as_bytes()),
            None => line.push('-'),
        }
        line.push(' ');
        line.push_str(&self.head);
        let _ = write!(line, "{status} ");
        if bytes == 0 {
            line.push('-');
        } else {
            let _ = write!(line, "{bytes}");
        }
        line.push_str(&self.tail);
        line.push('\n');
        self.log.write(&line);
    }
}

/// A header's value for a quoted field; `-` when absent, as Apache writes it.
fn quoted_header(out: &mut String, headers: &HeaderMap, name: header::HeaderName) {
    match headers.get(name) {
        Some(value) => escape_into(out, value.as_bytes()),
        None => out.push('-'),
    }
}

/// Apache's escaping of logged request data: `"` and `\` get a backslash, and bytes outside
/// printable ASCII become `\xhh`, so a client cannot forge a line or a field.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, &[u8])]) -> Request<()> {
        let mut request = Request::get(target);
        for (name, value) in headers {
            request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        request.body(()).unwrap()
    }

    fn line(format: Format, request: &Request<()>, status: u16, bytes: u64) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = Arc::new(AccessLog::open(&path, format).unwrap());
        log.begin(request, "127.0.0.1".parse().unwrap())
            .finish(status, bytes);
        std::fs::read_to_string(&path).unwrap()
    }

    /// The line with its `[time]` field replaced by `[T]`.
    fn without_time(line: &str) -> String {
        let (before, rest) = line.split_once(" [").unwrap();
        let (_, after) = rest.split_once("] ").unwrap();
        format!("{before} [T] {after}")
    }

    #[test]
    fn lines_in_both_formats() {
        let sent = request(
            "/cgi-bin/a.pl/x?q=1",
            &[("Referer", b"http://e.test/"), ("User-Agent", b"curl/8")],
        );
        let cases = [
            (
                Format::Common,
                200,
                6,
                "127.0.0.1 - - [T] \"GET /cgi-bin/a.pl/x?q=1 HTTP/1.1\" 200 6\n",
            ),
            (
                Format::Common,
                404,
                0,
                "127.0.0.1 - - [T] \"GET /cgi-bin/a.pl/x?q=1 HTTP/1.1\" 404 -\n",
            ),
            (
                Format::Combined,
                200,
                6,
                "127.0.0.1 - - [T] \"GET /cgi-bin/a.pl/x?q=1 HTTP/1.1\" 200 6 \"http://e.test/\" \"curl/8\"\n",
            ),
        ];
        for (format, status, bytes, expected) in cases {
            assert_eq!(without_time(&line(format, &sent, status, bytes)), expected);
        }
        let bare = line(Format::Combined, &request("/", &[]), 200, 1);
        assert!(bare.ends_with(" 200 1 \"-\" \"-\"\n"), "{bare}");
    }

    #[test]
    fn a_line_is_written_once_whichever_clone_finishes_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = Arc::new(AccessLog::open(&path, Format::Common).unwrap());
        let pending = log.begin(&request("/", &[]), "127.0.0.1".parse().unwrap());
        pending.clone().finish(502, 0);
        pending.finish(200, 5);
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), 1, "{written}");
        assert!(written.ends_with(" 502 -\n"), "{written}");
    }

    #[test]
    fn time_is_apaches_clf_time_in_utc() {
        let logged = line(Format::Common, &request("/", &[]), 200, 1);
        let time = logged.split_once('[').unwrap().1.split_once(']').unwrap().0;
        let format = time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        );
        let parsed = time::PrimitiveDateTime::parse(time, &format);
        assert!(parsed.is_ok(), "{time}");
    }

    #[test]
    fn client_data_cannot_forge_a_field_or_a_line() {
        let sent = request(
            "/a",
            &[
                ("User-Agent", b"x\" 200 9 \"y\\z \xff\t"),
                ("Referer", b"r"),
            ],
        );
        let logged = line(Format::Combined, &sent, 200, 1);
        assert_eq!(
            without_time(&logged),
            "127.0.0.1 - - [T] \"GET /a HTTP/1.1\" 200 1 \"r\" \"x\\\" 200 9 \\\"y\\\\z \\xff\\x09\"\n"
        );
    }
}
