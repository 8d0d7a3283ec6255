//! Parsing a script's response head (RFC 3875 §6): Status, Location, Content-Type and the
//! other header fields, and which of the RFC's response types it is. Sans-I/O: it takes
//! bytes and gives a decision, so FastCGI's STDOUT stream reuses it unchanged.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

/// A head larger than this is a broken script, not a response.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The RFC 3875 §6.2 response types (NPH, §5, is told apart by the script's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// §6.2.1: Content-Type (and maybe Status), then the document.
    Document,
    /// §6.2.2: only a Location with an abs-path; the server fetches that path instead.
    LocalRedirect,
    /// §6.2.3: a Location with an absolute URI and no document.
    ClientRedirect,
    /// §6.2.4: a Location with an absolute URI, a Status and a document.
    ClientRedirectWithDocument,
    /// §5: the script wrote the whole HTTP response itself.
    Nph,
}

#[derive(Debug)]
pub struct Head {
    pub kind: Kind,
    pub status: StatusCode,
    /// The reason phrase the script gave on its Status line, if any.
    pub reason: Option<String>,
    /// Header fields to send, in the script's order; Status is not among them.
    pub headers: HeaderMap,
    /// For `LocalRedirect`: the path (and query) to fetch instead.
    pub location: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("head line {0} is not a header field")]
    NotAField(usize),
    #[error("head line {0} has an invalid field name")]
    BadName(usize),
    #[error("head line {0} has an invalid field value")]
    BadValue(usize),
    #[error("invalid Status field")]
    BadStatus,
    #[error("invalid NPH status line")]
    BadStatusLine,
    #[error("invalid Content-Length field")]
    BadContentLength,
    #[error("invalid local redirect Location")]
    BadLocation,
    #[error("no Content-Type, Location or Status field")]
    NoContentType,
}

impl From<HeadError> for crate::error::Error {
    fn from(error: HeadError) -> Self {
        crate::error::Error::Head(Box::new(error))
    }
}

/// Where the head ends in `buf`: the offset of the first body byte, once the blank line
/// that ends the head has arrived. Lines may end in LF or CRLF (RFC 3875 §6.3.4 allows both).
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl];
        if line.is_empty() || line == b"\r" {
            return Some(start + nl + 1);
        }
        start += nl + 1;
    }
    None
}

/// The one head accumulator, for a script's stdout and a FastCGI app's FCGI_STDOUT alike:
/// once the head at the start of `buf` is all there, it is taken off `buf` (blank line
/// included, returned as written for NPH) and parsed; what stays in `buf` is body. `None`
/// while more is needed; a head longer than `MAX_HEAD_BYTES` is an error.
pub fn take_head(buf: &mut BytesMut, is_nph: bool) -> Option<(Result<Head, HeadError>, Bytes)> {
    let Some(end) = find_head_end(buf) else {
        return (buf.len() > MAX_HEAD_BYTES).then(|| (Err(HeadError::TooLarge), Bytes::new()));
    };
    let raw = buf.split_to(end).freeze();
    // Without the blank line's last LF: the parsers take the head's lines.
    let head = &raw[..raw.len() - 1];
    let parsed = if is_nph { parse_nph(head) } else { parse(head) };
    Some((parsed, raw))
}

/// Parses the head of an ordinary (parsed-header) CGI response, `head` excluding the blank line.
pub fn parse(head: &[u8]) -> Result<Head, HeadError> {
    let mut status = None;
    let mut reason = None;
    let mut location = None;
    let mut headers = HeaderMap::new();
    for (index, line) in lines(head).enumerate() {
        let (name, value) = field(index + 1, line)?;
        if name.as_str() == "status" {
            let (code, phrase) = parse_status(value.as_bytes()).ok_or(HeadError::BadStatus)?;
            status = Some(code);
            reason = phrase;
        } else if name == header::LOCATION {
            location = Some(
                value
                    .to_str()
                    .map_err(|_| HeadError::BadValue(index + 1))?
                    .to_owned(),
            );
            headers.append(name, value);
        } else if !is_hop_by_hop(&name) {
            if name == header::CONTENT_LENGTH && !is_valid_length(&value) {
                return Err(HeadError::BadContentLength);
            }
            headers.append(name, value);
        }
    }

    let has_document = headers.contains_key(header::CONTENT_TYPE);
    let (kind, status, location) = match location {
        // §6.2.2: an abs-path (not a network-path `//host`) and no Status of its own.
        Some(loc) if loc.starts_with('/') && !loc.starts_with("//") && status.is_none() => {
            if loc.parse::<http::uri::PathAndQuery>().is_err() {
                return Err(HeadError::BadLocation);
            }
            (Kind::LocalRedirect, StatusCode::OK, Some(loc))
        }
        Some(_) => {
            let kind = if has_document {
                Kind::ClientRedirectWithDocument
            } else {
                Kind::ClientRedirect
            };
            // §6.2.3: 302 Found unless the script said otherwise.
            (kind, status.unwrap_or(StatusCode::FOUND), None)
        }
        None if has_document || status.is_some() => {
            (Kind::Document, status.unwrap_or(StatusCode::OK), None)
        }
        None => return Err(HeadError::NoContentType),
    };
    Ok(Head {
        kind,
        status,
        reason,
        headers,
        location,
    })
}

/// Parses an NPH script's status line and header fields (RFC 3875 §5). They are passed on
/// as written; only framing fields are left to the server, which owns the connection.
pub fn parse_nph(head: &[u8]) -> Result<Head, HeadError> {
    let mut lines = lines(head);
    let status_line = lines.next().ok_or(HeadError::BadStatusLine)?;
    let rest = status_line
        .strip_prefix(b"HTTP/")
        .and_then(|r| r.iter().position(|&b| b == b' ').map(|sp| &r[sp + 1..]))
        .ok_or(HeadError::BadStatusLine)?;
    let (status, reason) = parse_status(rest).ok_or(HeadError::BadStatusLine)?;
    let mut headers = HeaderMap::new();
    for (index, line) in lines.enumerate() {
        let (name, value) = field(index + 2, line)?;
        if name != header::TRANSFER_ENCODING {
            headers.append(name, value);
        }
    }
    Ok(Head {
        kind: Kind::Nph,
        status,
        reason,
        headers,
        location: None,
    })
}

fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

fn field(line_no: usize, line: &[u8]) -> Result<(HeaderName, HeaderValue), HeadError> {
    // obs-fold continuation lines start with white space and have no name: refused.
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::NotAField(line_no))?;
    let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| HeadError::BadName(line_no))?;
    let value = line[colon + 1..].trim_ascii();
    let value = HeaderValue::from_bytes(value).map_err(|_| HeadError::BadValue(line_no))?;
    Ok((name, value))
}

/// `404 Not Found` -> (404, Some("Not Found")). RFC 3875 §6.3.3.
fn parse_status(value: &[u8]) -> Option<(StatusCode, Option<String>)> {
    let value = value.trim_ascii();
    let code = value.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let rest = &value[3..];
    if !rest.is_empty() && rest[0] != b' ' && rest[0] != b'\t' {
        return None;
    }
    let status = StatusCode::from_bytes(code).ok()?;
    // A CGI response cannot be interim; `http` takes 100-999, HTTP has only 1xx-5xx
    // (RFC 9110 §15).
    if !(200..=599).contains(&status.as_u16()) {
        return None;
    }
    let phrase = std::str::from_utf8(rest.trim_ascii()).ok()?;
    let phrase = (!phrase.is_empty()).then(|| phrase.to_owned());
    Some((status, phrase))
}

/// Framing belongs to the server's connection, not to the script (RFC 9110 §7.6.1).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || name.as_str() == "keep-alive"
}

fn is_valid_length(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 19 && bytes.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_head_waits_for_the_whole_head_and_leaves_the_body() {
        let mut buf = BytesMut::from(&b"Content-Type: text/plain\r\n"[..]);
        assert!(take_head(&mut buf, false).is_none(), "no blank line yet");
        buf.extend_from_slice(b"\r\nbody");
        let (head, raw) = take_head(&mut buf, false).expect("whole head");
        assert_eq!(head.expect("parses").status, StatusCode::OK);
        assert_eq!(&raw[..], b"Content-Type: text/plain\r\n\r\n");
        assert_eq!(&buf[..], b"body");

        let mut nph = BytesMut::from(&b"HTTP/1.1 201 Made\nX: y\n\nrest"[..]);
        let (head, _) = take_head(&mut nph, true).expect("whole head");
        assert_eq!(head.expect("parses").status, StatusCode::CREATED);

        let mut endless = BytesMut::from(&vec![b'a'; MAX_HEAD_BYTES + 1][..]);
        let (head, _) = take_head(&mut endless, false).expect("too large");
        assert!(matches!(head, Err(HeadError::TooLarge)));
    }

    #[test]
    fn head_end_is_the_first_blank_line() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (b"Content-Type: a\n\nbody", Some(17)),
            (b"Content-Type: a\r\n\r\nbody", Some(19)),
            (b"Content-Type: a\r\n\nbody", Some(18)),
            (b"\nbody", Some(1)),
            (b"Content-Type: a\n", None),
            (b"Content-Type: a\r\n\r", None),
        ];
        for (buf, want) in cases {
            assert_eq!(
                find_head_end(buf),
                *want,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    fn ok(head: &str) -> Head {
        parse(head.as_bytes()).unwrap_or_else(|e| panic!("{head:?}: {e}"))
    }

    #[test]
    fn response_types() {
        // (head, kind, status)
        let cases = [
            ("Content-Type: text/plain", Kind::Document, 200),
            (
                "Status: 404 Not Found\nContent-Type: text/html",
                Kind::Document,
                404,
            ),
            ("Status: 204", Kind::Document, 204),
            ("Location: /other?x=1", Kind::LocalRedirect, 200),
            ("Location: http://example.org/", Kind::ClientRedirect, 302),
            (
                "Location: https://example.org/\nStatus: 301 Moved",
                Kind::ClientRedirect,
                301,
            ),
            ("Location: //evil.example/", Kind::ClientRedirect, 302),
            (
                "Location: /local\nStatus: 303 See Other",
                Kind::ClientRedirect,
                303,
            ),
            (
                "Status: 302 Found\nLocation: http://e.org/\nContent-Type: text/html",
                Kind::ClientRedirectWithDocument,
                302,
            ),
        ];
        for (text, kind, status) in cases {
            let head = ok(text);
            assert_eq!(head.kind, kind, "{text:?}");
            assert_eq!(head.status.as_u16(), status, "{text:?}");
            assert!(!head.headers.contains_key("status"), "{text:?}");
        }
        assert_eq!(ok("Location: /a?b").location.as_deref(), Some("/a?b"));
    }

    #[test]
    fn status_reason_and_repeated_fields_are_kept() {
        let head = ok(
            "Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2",
        );
        assert_eq!(head.status.as_u16(), 418);
        assert_eq!(head.reason.as_deref(), Some("I'm a teapot"));
        let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn framing_fields_are_dropped_and_length_kept() {
        let head =
            ok("Content-Type: a\nTransfer-Encoding: chunked\nConnection: close\nContent-Length: 5");
        assert!(!head.headers.contains_key("transfer-encoding"));
        assert!(!head.headers.contains_key("connection"));
        assert_eq!(head.headers["content-length"], "5");
    }

    #[test]
    fn malformed_heads() {
        let cases: &[(&str, HeadError)] = &[
            ("", HeadError::NoContentType),
            ("X-Only: 1", HeadError::NoContentType),
            ("hello world", HeadError::NotAField(1)),
            ("Content-Type: a\n folded", HeadError::NotAField(2)),
            ("Bad Name: x", HeadError::BadName(1)),
            ("Content-Type: a\nX: \x01", HeadError::BadValue(2)),
            ("Status: abc", HeadError::BadStatus),
            ("Status: 20", HeadError::BadStatus),
            ("Status: 2000", HeadError::BadStatus),
            ("Status: 100 Continue", HeadError::BadStatus),
            // Three digits, but no HTTP status (RFC 9110 §15): found by fuzz/cgi_head.
            ("Status: 600 Beyond", HeadError::BadStatus),
            (
                "Status: 844\nContent-Type: text/plain",
                HeadError::BadStatus,
            ),
            ("Status: 999", HeadError::BadStatus),
            (
                "Content-Type: a\nContent-Length: -1",
                HeadError::BadContentLength,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text.as_bytes()).unwrap_err(), *want, "{text:?}");
        }
    }

    #[test]
    fn nph_heads() {
        let head =
            parse_nph(b"HTTP/1.1 299 Fine\r\nContent-Type: text/plain\r\nX-NPH: yes\r\n").unwrap();
        assert_eq!(head.kind, Kind::Nph);
        assert_eq!(head.status.as_u16(), 299);
        assert_eq!(head.reason.as_deref(), Some("Fine"));
        assert_eq!(head.headers["x-nph"], "yes");
        assert_eq!(
            parse_nph(b"Status: 200\r\n").unwrap_err(),
            HeadError::BadStatusLine
        );
        assert_eq!(
            parse_nph(b"HTTP/1.1 OK\r\n").unwrap_err(),
            HeadError::BadStatusLine
        );
        assert_eq!(
            parse_nph(b"HTTP/1.1 700 Seven\r\n").unwrap_err(),
            HeadError::BadStatusLine
        );
    }
}
