//! FastCGI records (FastCGI spec §3.3): an 8-byte header, up to 65535 bytes of content and
//! up to 255 bytes of padding. A `tokio_util` codec, so a socket becomes a stream of
//! `Record`s with `FramedRead` and a sink with `FramedWrite`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// FCGI_VERSION_1, the only version there is.
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
pub const MAX_CONTENT_LEN: usize = 0xffff;
/// FCGI_NULL_REQUEST_ID: management records (§4) use request id 0.
pub const NULL_REQUEST_ID: u16 = 0;
/// FCGI_KEEP_CONN (§5.1): the application keeps the connection open after the request.
pub const KEEP_CONN: u8 = 1;

/// Record types (§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BeginRequest = 1,
    AbortRequest = 2,
    EndRequest = 3,
    Params = 4,
    Stdin = 5,
    Stdout = 6,
    Stderr = 7,
    Data = 8,
    GetValues = 9,
    GetValuesResult = 10,
    UnknownType = 11,
}

impl Kind {
    pub fn from_u8(value: u8) -> Option<Kind> {
        Some(match value {
            1 => Kind::BeginRequest,
            2 => Kind::AbortRequest,
            3 => Kind::EndRequest,
            4 => Kind::Params,
            5 => Kind::Stdin,
            6 => Kind::Stdout,
            7 => Kind::Stderr,
            8 => Kind::Data,
            9 => Kind::GetValues,
            10 => Kind::GetValuesResult,
            11 => Kind::UnknownType,
            _ => return None,
        })
    }
}

/// Roles (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Responder = 1,
    Authorizer = 2,
    Filter = 3,
}

/// END_REQUEST protocol status (§5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    RequestComplete,
    CantMpxConn,
    Overloaded,
    UnknownRole,
    Other(u8),
}

impl ProtocolStatus {
    pub fn code(self) -> u8 {
        match self {
            ProtocolStatus::RequestComplete => 0,
            ProtocolStatus::CantMpxConn => 1,
            ProtocolStatus::Overloaded => 2,
            ProtocolStatus::UnknownRole => 3,
            ProtocolStatus::Other(code) => code,
        }
    }
}

impl From<u8> for ProtocolStatus {
    fn from(value: u8) -> Self {
        match value {
            0 => ProtocolStatus::RequestComplete,
            1 => ProtocolStatus::CantMpxConn,
            2 => ProtocolStatus::Overloaded,
            3 => ProtocolStatus::UnknownRole,
            other => ProtocolStatus::Other(other),
        }
    }
}

/// One record as read from the wire. `kind` stays a byte: an unknown type is legal
/// (§4.2) and is answered, not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub request_id: u16,
    pub content: Bytes,
}

impl Record {
    pub fn new(kind: Kind, request_id: u16, content: impl Into<Bytes>) -> Record {
        Record {
            kind: kind as u8,
            request_id,
            content: content.into(),
        }
    }

    pub fn is(&self, kind: Kind) -> bool {
        self.kind == kind as u8
    }

    /// The body of an END_REQUEST record: (appStatus, protocolStatus).
    pub fn end_request(&self) -> Result<(u32, ProtocolStatus), RecordError> {
        let mut body = self.content.as_ref();
        if !self.is(Kind::EndRequest) || body.len() != 8 {
            return Err(RecordError::BadBody("END_REQUEST"));
        }
        let app_status = body.get_u32();
        Ok((app_status, ProtocolStatus::from(body.get_u8())))
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record version {0}, not 1")]
    Version(u8),
    #[error("malformed {0} body")]
    BadBody(&'static str),
    #[error("record content longer than 65535 bytes")]
    TooLong,
    #[error("connection closed inside a record")]
    Truncated,
    #[error(transparent)]
    Io(#[from] IoError),
}

/// `std::io::Error` is neither `Eq` nor `Clone`; the codec's errors keep only its kind.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0:?}")]
pub struct IoError(pub std::io::ErrorKind);

/// Records that end a request early: an I/O error is the upstream failing, anything else
/// the upstream breaking the protocol.
impl From<RecordError> for crate::error::Error {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Io(e) => crate::error::Error::Upstream(e.0.into()),
            e => crate::error::Error::Protocol(Box::new(e)),
        }
    }
}

impl From<std::io::Error> for RecordError {
    fn from(e: std::io::Error) -> Self {
        RecordError::Io(IoError(e.kind()))
    }
}

/// The body of a BEGIN_REQUEST record (§5.1).
pub fn begin_request(role: Role, keep_conn: bool) -> Bytes {
    let mut body = BytesMut::with_capacity(8);
    body.put_u16(role as u16);
    body.put_u8(if keep_conn { KEEP_CONN } else { 0 });
    body.put_bytes(0, 5);
    body.freeze()
}

/// The body of an END_REQUEST record (§5.5).
pub fn end_request(app_status: u32, status: ProtocolStatus) -> Bytes {
    let mut body = BytesMut::with_capacity(8);
    body.put_u32(app_status);
    body.put_u8(status.code());
    body.put_bytes(0, 3);
    body.freeze()
}

/// Appends `data` as records of one stream (PARAMS, STDIN, STDOUT...), cut at 65535 bytes.
/// An empty `data` appends the empty record that ends the stream (§3.3).
pub fn encode_stream(out: &mut BytesMut, kind: Kind, request_id: u16, data: &[u8]) {
    if data.is_empty() {
        encode(out, kind as u8, request_id, &[]);
    }
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        encode(out, kind as u8, request_id, chunk);
    }
}

/// Appends one record of a fixed-size body (BEGIN_REQUEST, END_REQUEST...).
pub fn encode_record(out: &mut BytesMut, kind: Kind, request_id: u16, content: &[u8]) {
    encode(out, kind as u8, request_id, content);
}

/// Appends one record, padded so the next header starts on an 8-byte boundary (§3.3
/// recommends it; servers such as php-fpm read faster aligned).
/// Appends a management record (§4) that ends a write: padded by at least one byte, since
/// libfcgi reads a record's content, then blocks for more input before it looks at a record
/// that ends exactly there, and would not answer FCGI_GET_VALUES until something follows.
pub fn encode_management(out: &mut BytesMut, kind: Kind, content: &[u8]) {
    let padding = 8 - content.len() % 8;
    encode_padded(out, kind as u8, NULL_REQUEST_ID, content, padding);
}

fn encode(out: &mut BytesMut, kind: u8, request_id: u16, content: &[u8]) {
    encode_padded(out, kind, request_id, content, (8 - content.len() % 8) % 8);
}

/// The header, the content and `padding` zero bytes (§3.3 recommends 8-byte alignment).
fn encode_padded(out: &mut BytesMut, kind: u8, request_id: u16, content: &[u8], padding: usize) {
    debug_assert!(content.len() <= MAX_CONTENT_LEN && padding <= 255);
    out.reserve(HEADER_LEN + content.len() + padding);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u16(request_id);
    out.put_u16(content.len() as u16);
    out.put_u8(padding as u8);
    out.put_u8(0);
    out.put_slice(content);
    out.put_bytes(0, padding);
}

/// Frames a byte stream into `Record`s and back.
#[derive(Debug, Default)]
pub struct RecordCodec;

impl Decoder for RecordCodec {
    type Item = Record;
    type Error = RecordError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Record>, RecordError> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN);
            return Ok(None);
        }
        if src[0] != VERSION {
            return Err(RecordError::Version(src[0]));
        }
        let content_len = u16::from_be_bytes([src[4], src[5]]) as usize;
        let padding_len = src[6] as usize;
        let total = HEADER_LEN + content_len + padding_len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let kind = src[1];
        let request_id = u16::from_be_bytes([src[2], src[3]]);
        src.advance(HEADER_LEN);
        let content = src.split_to(content_len).freeze();
        src.advance(padding_len);
        Ok(Some(Record {
            kind,
            request_id,
            content,
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Record>, RecordError> {
        match self.decode(src)? {
            Some(record) => Ok(Some(record)),
            None if src.is_empty() => Ok(None),
            None => Err(RecordError::Truncated),
        }
    }
}

impl Encoder<Record> for RecordCodec {
    type Error = RecordError;

    fn encode(&mut self, record: Record, dst: &mut BytesMut) -> Result<(), RecordError> {
        if record.content.len() > MAX_CONTENT_LEN {
            return Err(RecordError::TooLong);
        }
        encode(dst, record.kind, record.request_id, &record.content);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn management_records_always_carry_padding() {
        for len in [0, 5, 8, 48] {
            let mut out = BytesMut::new();
            encode_management(&mut out, Kind::GetValues, &vec![b'x'; len]);
            let padding = out[6] as usize;
            assert!(padding >= 1, "content {len}: padding {padding}");
            assert_eq!(out.len(), HEADER_LEN + len + padding);
            assert_eq!((len + padding) % 8, 0);
        }
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Record>, RecordError> {
        let mut src = BytesMut::from(bytes);
        let mut records = Vec::new();
        while let Some(record) = RecordCodec.decode_eof(&mut src)? {
            records.push(record);
        }
        Ok(records)
    }

    #[test]
    fn header_layout_follows_section_3_3() {
        let mut out = BytesMut::new();
        encode_stream(&mut out, Kind::Stdout, 0x0102, b"hello");
        assert_eq!(
            &out[..],
            &[
                1, 6, 0x01, 0x02, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0
            ]
        );
        assert_eq!(out.len() % 8, 0);
    }

    #[test]
    fn streams_are_cut_at_65535_bytes_and_ended_by_an_empty_record() {
        // (data length, content lengths of the records written)
        let cases: &[(usize, &[usize])] = &[
            (0, &[0]),
            (1, &[1]),
            (65535, &[65535]),
            (65536, &[65535, 1]),
            (200_000, &[65535, 65535, 65535, 3395]),
        ];
        for (len, want) in cases {
            let data = vec![7u8; *len];
            let mut out = BytesMut::new();
            encode_stream(&mut out, Kind::Stdin, 1, &data);
            let records = decode_all(&out).unwrap();
            let lengths: Vec<usize> = records.iter().map(|r| r.content.len()).collect();
            assert_eq!(lengths, *want, "{len}");
            assert!(
                records
                    .iter()
                    .all(|r| r.is(Kind::Stdin) && r.request_id == 1)
            );
        }
    }

    #[test]
    fn partial_input_waits_for_the_whole_record() {
        let mut out = BytesMut::new();
        encode_stream(&mut out, Kind::Stderr, 3, b"warning\n");
        for cut in [0, 1, 7, 8, 15] {
            let mut src = BytesMut::from(&out[..cut]);
            assert_eq!(RecordCodec.decode(&mut src).unwrap(), None, "cut at {cut}");
        }
        let mut src = BytesMut::from(&out[..15]);
        assert_eq!(
            RecordCodec.decode_eof(&mut src),
            Err(RecordError::Truncated)
        );
        let mut src = out.clone();
        let record = RecordCodec.decode(&mut src).unwrap().unwrap();
        assert_eq!(record, Record::new(Kind::Stderr, 3, &b"warning\n"[..]));
        assert!(src.is_empty());
    }

    #[test]
    fn unknown_version_is_refused_and_unknown_type_is_kept() {
        assert_eq!(
            decode_all(&[2, 6, 0, 1, 0, 0, 0, 0]),
            Err(RecordError::Version(2))
        );
        let records = decode_all(&[1, 42, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(records[0].kind, 42);
        assert_eq!(Kind::from_u8(42), None);
    }

    #[test]
    fn begin_and_end_request_bodies() {
        assert_eq!(
            &begin_request(Role::Responder, true)[..],
            &[0, 1, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            &begin_request(Role::Filter, false)[..],
            &[0, 3, 0, 0, 0, 0, 0, 0]
        );
        let end = Record::new(
            Kind::EndRequest,
            9,
            end_request(0x01020304, ProtocolStatus::Overloaded),
        );
        assert_eq!(&end.content[..], &[1, 2, 3, 4, 2, 0, 0, 0]);
        assert_eq!(
            end.end_request(),
            Ok((0x01020304, ProtocolStatus::Overloaded))
        );
        let short = Record::new(Kind::EndRequest, 9, &[0u8; 4][..]);
        assert!(short.end_request().is_err());
    }

    #[test]
    fn encoder_refuses_oversized_content() {
        let mut dst = BytesMut::new();
        let big = Record::new(Kind::Stdout, 1, vec![0u8; MAX_CONTENT_LEN + 1]);
        assert_eq!(RecordCodec.encode(big, &mut dst), Err(RecordError::TooLong));
        let ok = Record::new(Kind::Stdout, 1, vec![0u8; 10]);
        RecordCodec.encode(ok.clone(), &mut dst).unwrap();
        assert_eq!(decode_all(&dst).unwrap(), vec![ok]);
    }

    /// `len` bytes that differ from their neighbours, cheaper to make than random ones.
    fn long(len: impl Strategy<Value = usize>) -> impl Strategy<Value = Vec<u8>> {
        (any::<u8>(), len).prop_map(|(seed, len)| {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed)
                .collect()
        })
    }

    /// Content lengths from empty to the largest a record holds, the edges more often.
    fn content() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..300),
            1 => long(MAX_CONTENT_LEN - 8..=MAX_CONTENT_LEN),
        ]
    }

    fn record() -> impl Strategy<Value = Record> {
        (any::<u8>(), any::<u16>(), content()).prop_map(|(kind, request_id, content)| Record {
            kind,
            request_id,
            content: content.into(),
        })
    }

    proptest! {
        /// §3.3 both ways: records encoded one after another decode to themselves, whether
        /// the bytes come at once or cut anywhere, as a socket may deliver them.
        #[test]
        fn encoded_records_decode_to_themselves(
            records in prop::collection::vec(record(), 0..5),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut wire = BytesMut::new();
            for record in &records {
                RecordCodec.encode(record.clone(), &mut wire).unwrap();
            }
            prop_assert_eq!(wire.len() % 8, 0, "every record padded to 8 bytes");
            prop_assert_eq!(&decode_all(&wire).unwrap(), &records);

            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let (mut src, mut from, mut decoded) = (BytesMut::new(), 0, Vec::new());
            for cut in cuts {
                src.extend_from_slice(&wire[from..cut]);
                from = cut;
                while let Some(record) = RecordCodec.decode(&mut src).unwrap() {
                    decoded.push(record);
                }
            }
            prop_assert!(src.is_empty());
            prop_assert_eq!(decoded, records);
        }

        /// A stream's data, cut into records of at most 65535 bytes, joins back to itself;
        /// an empty one is the one empty record that ends a stream.
        #[test]
        fn a_stream_joins_back_to_its_data(
            kind in prop::sample::select(
                vec![Kind::Params, Kind::Stdin, Kind::Stdout, Kind::Stderr]
            ),
            request_id in any::<u16>(),
            data in prop_oneof![
                4 => prop::collection::vec(any::<u8>(), 0..300),
                1 => long(65_530..140_000usize),
            ],
        ) {
            let mut out = BytesMut::new();
            encode_stream(&mut out, kind, request_id, &data);
            let records = decode_all(&out).unwrap();
            prop_assert_eq!(records.len(), data.len().div_ceil(MAX_CONTENT_LEN).max(1));
            prop_assert!(records.iter().all(|r| r.is(kind) && r.request_id == request_id));
            let joined: Vec<u8> = records.iter().flat_map(|r| r.content.iter().copied()).collect();
            prop_assert_eq!(joined, data);
        }
    }
}
