//! A script's stdout (or a FastCGI app's FCGI_STDOUT), any bytes: `cgi::response` never
//! panics, and a head it accepts never carries CR, LF or NUL in a field, a status outside
//! 200-599, a Status field or a framing field toward the client (RFC 3875 §6).
//!
//! Differential: where `httparse` also accepts the same head as a header block (or, for
//! NPH, as an HTTP/1.x response head), the two agree on every field. What CGI allows and
//! httparse does not is never compared, only what both accept:
//! - CGI's Status field (§6.3.3) sets the status and is not a field of the response, and
//!   Connection, Transfer-Encoding, Upgrade and Keep-Alive are the server's (RFC 9110
//!   §7.6.1), so they are left out of the comparison; an NPH script's fields are passed
//!   on as written but for Transfer-Encoding.
//! - Portico trims a value as `trim_ascii` does (a stray CR or form feed at either end
//!   goes), httparse refuses those bytes: never both accepting, never compared.
//! - Bare LF line ends (§6.3.4 allows them) are accepted by both.
//! - An NPH status line may name any `HTTP/x` version for Portico; httparse takes 1.0 and
//!   1.1 only. Its reason phrase is "" when it holds obs-text, so it is compared only when
//!   ASCII.

#![no_main]

use bytes::BytesMut;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use portico::cgi::response::{self, Head, HeadError, Kind, MAX_HEAD_BYTES};
use portico_fuzz::has_line_break_or_nul;

fuzz_target!(|data: &[u8]| {
    // The head alone, as `take_head` hands it over (without the blank line).
    if let Ok(head) = response::parse(data) {
        check_parsed(&head);
    }
    if let Ok(head) = response::parse_nph(data) {
        check_nph(&head);
    }
    // The whole output, head then body, as read from the script.
    for is_nph in [false, true] {
        let mut buf = BytesMut::from(data);
        match response::take_head(&mut buf, is_nph) {
            None => {
                assert!(response::find_head_end(data).is_none());
                assert!(data.len() <= MAX_HEAD_BYTES);
                assert_eq!(&buf[..], data, "nothing taken while waiting");
            }
            Some((Err(HeadError::TooLarge), _)) if response::find_head_end(data).is_none() => {
                assert!(data.len() > MAX_HEAD_BYTES);
            }
            Some((parsed, raw)) => {
                let end = response::find_head_end(data).expect("a head has an end");
                assert_eq!(&raw[..], &data[..end], "the head is the input's start");
                assert_eq!(&buf[..], &data[end..], "the body stays");
                let Ok(head) = parsed else { continue };
                if is_nph {
                    check_nph(&head);
                    agrees_with_httparse_response(&raw, &head);
                } else {
                    check_parsed(&head);
                    agrees_with_httparse_headers(&raw, &head);
                }
            }
        }
    }
});

fn check_fields(headers: &HeaderMap) {
    for (name, value) in headers {
        assert!(!has_line_break_or_nul(name.as_str().as_bytes()), "{name:?}");
        assert!(
            !has_line_break_or_nul(value.as_bytes()),
            "{name}: {value:?}"
        );
    }
}

fn check_parsed(head: &Head) {
    // RFC 9110 §15: three digits, 1xx-5xx; RFC 3875 has no interim response.
    assert!(
        (200..=599).contains(&head.status.as_u16()),
        "status {}",
        head.status
    );
    check_fields(&head.headers);
    for framing in [
        "status",
        "connection",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
    ] {
        assert!(
            !head.headers.contains_key(framing),
            "{framing} reached the client"
        );
    }
    if let Some(reason) = &head.reason {
        assert!(
            !has_line_break_or_nul(reason.as_bytes()),
            "reason {reason:?}"
        );
    }
    for length in head.headers.get_all(http::header::CONTENT_LENGTH) {
        assert!(
            !length.is_empty() && length.as_bytes().iter().all(u8::is_ascii_digit),
            "Content-Length {length:?}"
        );
    }
    match head.kind {
        Kind::LocalRedirect => {
            let location = head
                .location
                .as_deref()
                .expect("a local redirect has a path");
            assert!(location.starts_with('/') && !location.starts_with("//"));
            assert!(!has_line_break_or_nul(location.as_bytes()));
        }
        Kind::Nph => panic!("an ordinary head parsed as NPH"),
        _ => assert!(head.location.is_none()),
    }
}

fn check_nph(head: &Head) {
    // The script writes the status line to the client itself; what Portico takes from it
    // (status, fields) still follows the rules.
    assert_eq!(head.kind, Kind::Nph);
    assert!(
        (200..=599).contains(&head.status.as_u16()),
        "status {}",
        head.status
    );
    check_fields(&head.headers);
    assert!(!head.headers.contains_key("transfer-encoding"));
}

/// Lower-cased names of httparse's headers, each with its values in order, less `skip`.
fn httparse_fields<'a>(
    headers: &[httparse::Header<'a>],
    skip: &[&str],
) -> Vec<(String, Vec<&'a [u8]>)> {
    let mut fields: Vec<(String, Vec<&[u8]>)> = Vec::new();
    for header in headers {
        let name = header.name.to_ascii_lowercase();
        if skip.contains(&name.as_str()) {
            continue;
        }
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(header.value),
            None => fields.push((name, vec![header.value])),
        }
    }
    fields
}

fn same_fields(ours: &HeaderMap, theirs: &[(String, Vec<&[u8]>)], raw: &[u8]) {
    assert_eq!(
        ours.keys_len(),
        theirs.len(),
        "field names differ: {:?} vs {:?} in {:?}",
        ours.keys().collect::<Vec<_>>(),
        theirs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        String::from_utf8_lossy(raw)
    );
    for (name, values) in theirs {
        let ours: Vec<&[u8]> = ours
            .get_all(name.as_str())
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(
            &ours,
            values,
            "{name} in {:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

fn header_slots(raw: &[u8]) -> Vec<httparse::Header<'_>> {
    let lines = raw.iter().filter(|&&b| b == b'\n').count();
    vec![httparse::EMPTY_HEADER; lines + 1]
}

fn agrees_with_httparse_headers(raw: &[u8], head: &Head) {
    let mut slots = header_slots(raw);
    let Ok(httparse::Status::Complete((len, headers))) = httparse::parse_headers(raw, &mut slots)
    else {
        return;
    };
    assert_eq!(len, raw.len(), "both end the head at the same blank line");
    // CGI's Status field is no response field (RFC 3875 §6.3.3); framing is the server's.
    let skip = [
        "status",
        "connection",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
    ];
    same_fields(&head.headers, &httparse_fields(headers, &skip), raw);
    // The Status field's code, when httparse saw one.
    if let Some(status) = headers
        .iter()
        .rev()
        .find(|h| h.name.eq_ignore_ascii_case("status"))
    {
        let code = status
            .value
            .get(..3)
            .and_then(|c| std::str::from_utf8(c).ok());
        assert_eq!(
            code,
            Some(head.status.as_str()),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

fn agrees_with_httparse_response(raw: &[u8], head: &Head) {
    let mut slots = header_slots(raw);
    let mut response = httparse::Response::new(&mut slots);
    let Ok(httparse::Status::Complete(len)) = response.parse(raw) else {
        return;
    };
    assert_eq!(len, raw.len(), "both end the head at the same blank line");
    assert_eq!(response.code, Some(head.status.as_u16()));
    let status_line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    if status_line.is_ascii() {
        let theirs = response.reason.unwrap_or_default().trim_ascii();
        assert_eq!(
            head.reason.as_deref().unwrap_or_default(),
            theirs,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    same_fields(
        &head.headers,
        &httparse_fields(response.headers, &["transfer-encoding"]),
        raw,
    );
}
