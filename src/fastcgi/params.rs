//! Name-value pairs (FastCGI spec §3.4): how FCGI_PARAMS carries the meta-variables and
//! FCGI_GET_VALUES its queries. Each length is one byte below 128, else four bytes with the
//! high bit set.

use bytes::{BufMut, BytesMut};

/// The largest length the four-byte form can say.
const MAX_LEN: usize = 0x7fff_ffff;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    #[error("a name or value longer than 2^31-1 bytes")]
    TooLong,
    #[error("name-value pairs end inside a pair")]
    Truncated,
}

/// Appends one pair.
pub fn encode_pair(out: &mut BytesMut, name: &[u8], value: &[u8]) -> Result<(), ParamsError> {
    if name.len() > MAX_LEN || value.len() > MAX_LEN {
        return Err(ParamsError::TooLong);
    }
    out.reserve(8 + name.len() + value.len());
    put_len(out, name.len());
    put_len(out, value.len());
    out.put_slice(name);
    out.put_slice(value);
    Ok(())
}

fn put_len(out: &mut BytesMut, len: usize) {
    if len < 128 {
        out.put_u8(len as u8);
    } else {
        out.put_u32(len as u32 | 0x8000_0000);
    }
}

/// A whole params stream's content, pair after pair.
pub fn encode_pairs<'a>(
    pairs: impl IntoIterator<Item = Pair<'a>>,
) -> Result<BytesMut, ParamsError> {
    let mut out = BytesMut::with_capacity(1024);
    for (name, value) in pairs {
        encode_pair(&mut out, name, value)?;
    }
    Ok(out)
}

/// A name and its value, borrowed from the decoded stream.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The pairs of a complete params stream, in order.
pub fn decode_pairs(mut data: &[u8]) -> Result<Vec<Pair<'_>>, ParamsError> {
    let mut pairs = Vec::new();
    while !data.is_empty() {
        let name_len = take_len(&mut data)?;
        let value_len = take_len(&mut data)?;
        if data.len() < name_len + value_len {
            return Err(ParamsError::Truncated);
        }
        let (name, rest) = data.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        pairs.push((name, value));
        data = rest;
    }
    Ok(pairs)
}

fn take_len(data: &mut &[u8]) -> Result<usize, ParamsError> {
    let first = *data.first().ok_or(ParamsError::Truncated)?;
    if first < 128 {
        *data = &data[1..];
        return Ok(first as usize);
    }
    let bytes: [u8; 4] = data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(ParamsError::Truncated)?;
    *data = &data[4..];
    Ok((u32::from_be_bytes(bytes) & 0x7fff_ffff) as usize)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn length_forms_follow_section_3_4() {
        // (name length, value length, encoded length prefix)
        let cases: &[(usize, usize, &[u8])] = &[
            (0, 0, &[0, 0]),
            (11, 5, &[11, 5]),
            (127, 1, &[127, 1]),
            (128, 0, &[0x80, 0, 0, 128, 0]),
            (1, 70_000, &[1, 0x80, 0x01, 0x11, 0x70]),
        ];
        for (name_len, value_len, prefix) in cases {
            let name = vec![b'N'; *name_len];
            let value = vec![b'v'; *value_len];
            let mut out = BytesMut::new();
            encode_pair(&mut out, &name, &value).unwrap();
            assert_eq!(&out[..prefix.len()], *prefix, "{name_len}/{value_len}");
            assert_eq!(out.len(), prefix.len() + name_len + value_len);
            assert_eq!(decode_pairs(&out).unwrap(), vec![(&name[..], &value[..])]);
        }
    }

    #[test]
    fn several_pairs_keep_their_order() {
        let mut out = BytesMut::new();
        encode_pair(&mut out, b"SCRIPT_NAME", b"/cgi-bin/x").unwrap();
        encode_pair(&mut out, b"QUERY_STRING", b"").unwrap();
        encode_pair(&mut out, b"HTTP_COOKIE", b"a=1; b=2").unwrap();
        let pairs = decode_pairs(&out).unwrap();
        assert_eq!(
            pairs,
            vec![
                (&b"SCRIPT_NAME"[..], &b"/cgi-bin/x"[..]),
                (&b"QUERY_STRING"[..], &b""[..]),
                (&b"HTTP_COOKIE"[..], &b"a=1; b=2"[..]),
            ]
        );
    }

    #[test]
    fn truncated_streams_are_refused() {
        for bad in [
            &[5u8][..],
            &[0x80, 0, 0][..],
            &[3, 1, b'a', b'b'][..],
            &[1][..],
        ] {
            assert_eq!(decode_pairs(bad), Err(ParamsError::Truncated), "{bad:?}");
        }
    }

    /// A name or value: mostly around the one-byte form's limit of 127, sometimes longer.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..140),
            1 => prop::collection::vec(any::<u8>(), 0..2000),
        ]
    }

    proptest! {
        /// §3.4 both ways: any pairs, encoded with each length in its shortest form, decode
        /// to themselves, in order.
        #[test]
        fn encoded_pairs_decode_to_themselves(
            pairs in prop::collection::vec((bytes(), bytes()), 0..8)
        ) {
            let borrowed: Vec<Pair<'_>> = pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
            let encoded = encode_pairs(borrowed.iter().copied()).unwrap();
            let prefix = |len: usize| if len < 128 { 1 } else { 4 };
            let want_len: usize = pairs
                .iter()
                .map(|(n, v)| prefix(n.len()) + prefix(v.len()) + n.len() + v.len())
                .sum();
            prop_assert_eq!(encoded.len(), want_len);
            prop_assert_eq!(decode_pairs(&encoded).unwrap(), borrowed);
        }
    }
}
