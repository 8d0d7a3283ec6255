//! The request as FastCGI carries it (FastCGI spec §3.3, §5): the FCGI_PARAMS content the
//! product built, framed into records with its own codec, then decoded again record by
//! record, as an application reads them.

use bytes::BytesMut;
use serde::Serialize;
use tokio_util::codec::Decoder;

use super::variables::masked;
use crate::fastcgi::params::decode_pairs;
use crate::fastcgi::record::{self, Kind, RecordCodec, Role};

/// Portico's request id on a connection of its own (a multiplexing app may get others).
const REQUEST_ID: u16 = 1;

#[derive(Serialize)]
pub struct FastcgiRecord {
    pub kind: &'static str,
    pub request_id: u16,
    pub content_length: usize,
    /// For FCGI_PARAMS: the pairs the record carries.
    pub params: Vec<(String, String)>,
}

/// BEGIN_REQUEST, the `params` stream, the `body` as the STDIN stream, each stream ended
/// by its empty record.
pub fn list(params: &[u8], body: &[u8], show: bool) -> Vec<FastcgiRecord> {
    let mut out = BytesMut::new();
    record::encode_record(
        &mut out,
        Kind::BeginRequest,
        REQUEST_ID,
        &record::begin_request(Role::Responder, true),
    );
    record::encode_stream(&mut out, Kind::Params, REQUEST_ID, params);
    record::encode_stream(&mut out, Kind::Params, REQUEST_ID, &[]);
    if !body.is_empty() {
        record::encode_stream(&mut out, Kind::Stdin, REQUEST_ID, body);
    }
    record::encode_stream(&mut out, Kind::Stdin, REQUEST_ID, &[]);
    let mut codec = RecordCodec;
    let mut list = Vec::new();
    while let Ok(Some(r)) = codec.decode(&mut out) {
        let kind = match Kind::from_u8(r.kind) {
            Some(Kind::BeginRequest) => "FCGI_BEGIN_REQUEST",
            Some(Kind::Params) => "FCGI_PARAMS",
            Some(Kind::Stdin) => "FCGI_STDIN",
            _ => "other",
        };
        // A long params stream may split a pair across records (§3.4 allows it); each
        // record shows the pairs that decode from it alone.
        let params = if r.is(Kind::Params) {
            decode_pairs(&r.content)
                .unwrap_or_default()
                .into_iter()
                .map(|(n, v)| {
                    let name = String::from_utf8_lossy(n).into_owned();
                    let value = masked(&name, &String::from_utf8_lossy(v), show);
                    (name, value)
                })
                .collect()
        } else {
            Vec::new()
        };
        list.push(FastcgiRecord {
            kind,
            request_id: r.request_id,
            content_length: r.content.len(),
            params,
        });
    }
    list
}

/// The records as runs to show: a body's FCGI_STDIN records are all full but the last, so
/// more than two alike in a row are one run; each other record is a run of one.
pub fn runs(records: &[FastcgiRecord]) -> Vec<(&FastcgiRecord, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let rec = &records[i];
        let alike = records[i..]
            .iter()
            .take_while(|r| r.kind == rec.kind && r.content_length == rec.content_length)
            .count();
        let run = if alike > 2 && rec.params.is_empty() && rec.content_length > 0 {
            alike
        } else {
            1
        };
        runs.push((rec, run));
        i += run;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::params::encode_pairs;

    #[test]
    fn a_body_is_records_of_at_most_64_kib_then_an_empty_one() {
        let params = encode_pairs([(&b"A"[..], &b"1"[..])]).unwrap();
        let body = vec![b'x'; 70_000];
        let records = list(&params, &body, false);
        let shape: Vec<(&str, usize)> =
            records.iter().map(|r| (r.kind, r.content_length)).collect();
        assert_eq!(
            shape,
            [
                ("FCGI_BEGIN_REQUEST", 8),
                ("FCGI_PARAMS", 4),
                ("FCGI_PARAMS", 0),
                ("FCGI_STDIN", 65535),
                ("FCGI_STDIN", 70_000 - 65535),
                ("FCGI_STDIN", 0),
            ]
        );
        assert_eq!(records[1].params, [("A".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn a_run_of_full_stdin_records_is_shown_once_with_its_count() {
        let params = encode_pairs([(&b"A"[..], &b"1"[..])]).unwrap();
        let records = list(&params, &vec![b'x'; 4 * 65535 + 10], false);
        let shown: Vec<(&str, usize, usize)> = runs(&records)
            .into_iter()
            .map(|(r, run)| (r.kind, r.content_length, run))
            .collect();
        assert_eq!(
            shown,
            [
                ("FCGI_BEGIN_REQUEST", 8, 1),
                ("FCGI_PARAMS", 4, 1),
                ("FCGI_PARAMS", 0, 1),
                ("FCGI_STDIN", 65535, 4),
                ("FCGI_STDIN", 10, 1),
                ("FCGI_STDIN", 0, 1),
            ]
        );
    }
}
