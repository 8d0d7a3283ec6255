//! Name-value pairs (FastCGI spec §3.4) through `fastcgi::params`:
//! - any bytes from an upstream (FCGI_GET_VALUES_RESULT) decode as a reference reading of
//!   §3.4 decodes them, never panic, and allocate in proportion to the input, whatever
//!   lengths they claim; a length that claims more than is left is an error;
//! - encode(decode(x)) decodes to the same pairs, and is `x` itself when `x` wrote every
//!   length in its shortest form (§3.4 allows the four-byte form for short ones too);
//! - arbitrary pairs, encoded then decoded, come back unchanged.

#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use portico::fastcgi::params::{ParamsError, decode_pairs, encode_pairs};
use portico_fuzz::{Measuring, measure};

#[global_allocator]
static ALLOCATOR: Measuring = Measuring;

/// §3.4 read straight: a length is one byte below 0x80, else four bytes, big-endian, with
/// the high bit cleared.
fn reference(data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    fn length(data: &[u8], at: &mut usize) -> Option<u64> {
        let first = *data.get(*at)?;
        if first >> 7 == 0 {
            *at += 1;
            return Some(u64::from(first));
        }
        let bytes = data.get(*at..*at + 4)?;
        *at += 4;
        Some(
            u64::from(bytes[0] & 0x7f) << 24
                | u64::from(bytes[1]) << 16
                | u64::from(bytes[2]) << 8
                | u64::from(bytes[3]),
        )
    }
    let mut pairs = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let name = length(data, &mut at)?;
        let value = length(data, &mut at)?;
        let left = (data.len() - at) as u64;
        if name + value > left {
            return None;
        }
        let name_end = at + name as usize;
        let value_end = name_end + value as usize;
        pairs.push((&data[at..name_end], &data[name_end..value_end]));
        at = value_end;
    }
    Some(pairs)
}

fuzz_target!(|data: &[u8]| {
    let (decoded, allocated) = measure(|| decode_pairs(data));
    // A pair takes two bytes at least: at most len/2 pairs of two slices (32 bytes), in a
    // vector that may double as it grows.
    let bound = 2 * 32 * (data.len() / 2 + 4);
    assert!(
        allocated.total <= 2 * bound,
        "{allocated:?} for {} bytes",
        data.len()
    );
    match (&decoded, reference(data)) {
        (Ok(pairs), Some(want)) => assert_eq!(*pairs, want),
        (Err(ParamsError::Truncated), None) => {}
        (got, want) => panic!("decoded {got:?}, the spec says {want:?}"),
    }
    if let Ok(pairs) = decoded {
        let encoded = encode_pairs(pairs.iter().copied()).expect("decoded pairs fit");
        assert!(
            encoded.len() <= data.len(),
            "the shortest forms are no longer"
        );
        assert_eq!(decode_pairs(&encoded).as_ref(), Ok(&pairs));
        if encoded.len() == data.len() {
            assert_eq!(&encoded[..], data, "every length was in its shortest form");
        }
    }

    // The same bytes as arbitrary pairs, through the encoder first.
    let mut input = Unstructured::new(data);
    if let Ok(pairs) = Vec::<(Vec<u8>, Vec<u8>)>::arbitrary(&mut input) {
        let encoded =
            encode_pairs(pairs.iter().map(|(n, v)| (&n[..], &v[..]))).expect("short pairs fit");
        let decoded = decode_pairs(&encoded).expect("what was encoded decodes");
        let want: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(decoded, want);
    }
});
