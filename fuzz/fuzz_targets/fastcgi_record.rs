//! Any bytes from a FastCGI upstream through `fastcgi::record`'s decoder: never a panic;
//! records exactly as a reference reading of the spec (§3.3) frames them; a record whose
//! lengths claim more than the stream holds is an error at its end, never a short record;
//! no allocation beyond the bytes that came and the record the header declares (8 +
//! contentLength + paddingLength, at most 65798 bytes), doubled as a growing buffer may be;
//! the same records whether the bytes arrive at once or a few at a time.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portico::fastcgi::record::{
    HEADER_LEN, Kind, MAX_CONTENT_LEN, Record, RecordCodec, RecordError, VERSION,
};
use portico_fuzz::{Measuring, measure};
use tokio_util::codec::{Decoder, Encoder};

#[global_allocator]
static ALLOCATOR: Measuring = Measuring;

/// What a stream of bytes is, read straight from the spec: the records, then how it ends.
#[derive(Debug, PartialEq)]
enum End {
    Clean,
    BadVersion(u8),
    /// A record started but the stream ended inside it.
    Truncated,
}

/// A record as the spec frames it: its type, requestId and content.
type Framed<'a> = (u8, u16, &'a [u8]);

fn reference(mut data: &[u8]) -> (Vec<Framed<'_>>, End) {
    let mut records = Vec::new();
    loop {
        if data.is_empty() {
            return (records, End::Clean);
        }
        if data.len() < 8 {
            return (records, End::Truncated);
        }
        // FCGI_Header: version, type, requestIdB1/B0, contentLengthB1/B0, paddingLength,
        // reserved.
        if data[0] != 1 {
            return (records, End::BadVersion(data[0]));
        }
        let content = (data[4] as usize) << 8 | data[5] as usize;
        let padding = data[6] as usize;
        if data.len() < 8 + content + padding {
            return (records, End::Truncated);
        }
        let request_id = (data[2] as u16) << 8 | data[3] as u16;
        records.push((data[1], request_id, &data[8..8 + content]));
        data = &data[8 + content + padding..];
    }
}

/// `bytes` keeps a buffer's first capacity, up to 64 KiB, when it reallocates one.
const BYTES_ORIGINAL_CAPACITY: usize = 64 * 1024;

/// Decodes `src`, into which `fed` bytes have been put in all, until it needs more,
/// checking each call's allocations against the record at the front of the buffer.
fn decode_all(
    src: &mut BytesMut,
    fed: usize,
    at_eof: bool,
) -> (Vec<Record>, Result<(), RecordError>) {
    let mut records = Vec::new();
    loop {
        let declared = declared_len(src);
        let (result, allocated) = measure(|| {
            if at_eof {
                RecordCodec.decode_eof(src)
            } else {
                RecordCodec.decode(src)
            }
        });
        // What came and what the header declares, doubled as a growing buffer may be;
        // nothing that a length could claim beyond that.
        let bound = 2 * (fed + declared).max(BYTES_ORIGINAL_CAPACITY);
        assert!(
            allocated.largest <= bound && allocated.total <= 2 * bound,
            "allocated {allocated:?} for a record of {declared} bytes after {fed} bytes"
        );
        match result {
            Ok(Some(record)) => records.push(record),
            Ok(None) => return (records, Ok(())),
            Err(e) => return (records, Err(e)),
        }
    }
}

/// The length the header at the front of `src` declares, or a header's when it is short.
fn declared_len(src: &[u8]) -> usize {
    match src.get(..HEADER_LEN) {
        Some(h) => HEADER_LEN + ((h[4] as usize) << 8 | h[5] as usize) + h[6] as usize,
        None => HEADER_LEN,
    }
}

fuzz_target!(|data: &[u8]| {
    let (want, end) = reference(data);

    // All at once, then the end of the stream.
    let mut src = BytesMut::from(data);
    let (records, result) = decode_all(&mut src, data.len(), true);
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.kind, r.request_id, &r.content[..]))
        .collect();
    assert_eq!(got, want);
    match (&result, &end) {
        (Ok(()), End::Clean) => assert!(src.is_empty()),
        (Err(RecordError::Version(v)), End::BadVersion(w)) => assert_eq!(v, w),
        (Err(RecordError::Truncated), End::Truncated) => {}
        (got, want) => panic!("decoder ended with {got:?}, the spec with {want:?}"),
    }
    for record in &records {
        assert!(record.content.len() <= MAX_CONTENT_LEN);
        let body = record.end_request();
        assert_eq!(
            body.is_ok(),
            record.is(Kind::EndRequest) && record.content.len() == 8,
            "{record:?}"
        );
        // Encoding a decoded record and decoding it again gives it back.
        let mut out = BytesMut::new();
        RecordCodec
            .encode(record.clone(), &mut out)
            .expect("fits a record");
        assert_eq!(out[0], VERSION);
        assert_eq!(RecordCodec.decode_eof(&mut out), Ok(Some(record.clone())));
        assert!(out.is_empty());
    }

    // A few bytes at a time, as a socket may deliver them: the same records.
    let step = data.first().map_or(1, |b| *b as usize % 13 + 1);
    let mut src = BytesMut::new();
    let mut streamed = Vec::new();
    let mut failed = None;
    let mut fed = 0;
    for chunk in data.chunks(step) {
        src.extend_from_slice(chunk);
        fed += chunk.len();
        let (mut records, result) = decode_all(&mut src, fed, false);
        streamed.append(&mut records);
        if let Err(e) = result {
            failed = Some(e);
            break;
        }
    }
    if failed.is_none() {
        let (mut records, result) = decode_all(&mut src, fed, true);
        streamed.append(&mut records);
        failed = result.err();
    }
    assert_eq!(streamed, records, "streamed in chunks of {step}");
    assert_eq!(failed, result.err());
});
