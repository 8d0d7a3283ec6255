//! Request smuggling (RFC 9112 §6.3, §11.2): a request whose body is framed two ways, or
//! whose head a proxy in front might read differently, gets a 400, its connection is
//! closed (so a request hidden in its body is never read as the next one), and no script
//! starts. Each case sends its bytes, then an ordinary request on the same connection.
//!
//! Two framings RFC 9112 lets a server accept, and hyper does: Content-Length beside
//! Transfer-Encoding is read by the Transfer-Encoding alone and the connection is closed
//! after the answer (§6.3 item 3), and the same Content-Length twice is one value (RFC
//! 9110 §8.6). The first is checked here too: one answer, then the connection closes.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::Fixture;

/// The request that would be smuggled: it must never be answered.
const NEXT: &[u8] = b"GET /cgi-bin/hello HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn smuggled_requests_are_never_answered_and_ambiguous_heads_are_400_without_a_script() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    fx.script("echo", crate::scripts::ECHO);
    let portico = fx.serve(&[]);
    let post = "POST /cgi-bin/echo HTTP/1.1\r\nHost: a\r\n";
    // (case, request, the status of the one answer)
    let cases: &[(&str, String, u16)] = &[
        (
            "Content-Length and Transfer-Encoding",
            format!("{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            200,
        ),
        (
            "two Content-Length values",
            format!("{post}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            400,
        ),
        (
            "a Content-Length list",
            format!("{post}Content-Length: 5, 5\r\n\r\nhello"),
            400,
        ),
        (
            "Transfer-Encoding: chunked, identity",
            format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "Transfer-Encoding: identity",
            format!("{post}Transfer-Encoding: identity\r\n\r\nhello"),
            400,
        ),
        (
            "an unknown transfer coding",
            format!("{post}Transfer-Encoding: xchunked\r\n\r\nhello"),
            400,
        ),
        (
            "white space before the colon",
            format!("{post}Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "a chunk size that overflows",
            format!(
                "{post}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "a chunk extension ended by a bare LF",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "chunked in HTTP/1.0",
            "POST /cgi-bin/echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n"
                .to_owned(),
            400,
        ),
        (
            "a bare CR in the head",
            "GET /cgi-bin/hello HTTP/1.1\rHost: a\r\n\r\n".to_owned(),
            400,
        ),
        (
            "a control byte in a header value",
            "GET /cgi-bin/hello HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n".to_owned(),
            400,
        ),
        (
            "a NUL in a header name",
            "GET /cgi-bin/hello HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n".to_owned(),
            400,
        ),
        (
            "an obsolete line fold",
            "GET /cgi-bin/hello HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n".to_owned(),
            400,
        ),
    ];
    for (case, request, status) in cases {
        let mut stream = portico.connect_raw();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        // The connection may already be closed; the write of the next request may fail.
        let _ = stream.write_all(NEXT);
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            read.is_ok() || !answer.is_empty(),
            "{case}: the connection stayed open: {read:?}"
        );
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{case}: {answer:?}"
        );
        assert_eq!(
            answer.matches("HTTP/1.").count(),
            1,
            "{case}: the request after it was answered too: {answer:?}"
        );
    }
    // Only the request framed by its Transfer-Encoding reached a script.
    let log = portico.log();
    assert_eq!(log.matches("script=").count(), 1, "{log}");
    // The same connection handling still serves an honest request.
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
}
