//! Percent-decoding of a URL path, one segment at a time and once only (`%252e` stays the
//! name `%2e`, never a dot), refusing what decoding could smuggle in.
//!
//! Shared by CGI and FastCGI mounts: the segments that name a file and PATH_INFO
//! (RFC 3875 §4.1.5), which becomes PATH_TRANSLATED, are held to the same rules.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use percent_encoding::percent_decode;

use crate::error::Error;

/// One segment, decoded once: a decoded '/' or '\\' would smuggle a separator in,
/// dot segments would climb out, and NUL would cut the path short in the kernel.
pub(super) fn decode_segment(raw: &str) -> Result<Vec<u8>, Error> {
    let segment: Vec<u8> = percent_decode(raw.as_bytes()).collect();
    if segment.contains(&0) {
        return Err(Error::BadRequest("NUL byte in path"));
    }
    if segment == b"." || segment == b".." {
        return Err(Error::Forbidden("dot segment in path"));
    }
    if segment.contains(&b'/') || segment.contains(&b'\\') {
        return Err(Error::Forbidden("encoded separator in path"));
    }
    Ok(segment)
}

/// RFC 3875 §4.1.5: PATH_INFO is decoded. It names no file Portico opens, but it becomes
/// PATH_TRANSLATED, so dot segments and NUL are refused here too.
pub(super) fn decode_path_info<'a>(
    segments: impl Iterator<Item = &'a str>,
) -> Result<OsString, Error> {
    let mut info = Vec::new();
    for raw in segments {
        let segment: Vec<u8> = percent_decode(raw.as_bytes()).collect();
        if segment.contains(&0) {
            return Err(Error::BadRequest("NUL byte in path"));
        }
        if segment
            .split(|b| *b == b'/')
            .any(|s| s == b".." || s == b".")
        {
            return Err(Error::Forbidden("dot segment in path"));
        }
        info.push(b'/');
        info.extend_from_slice(&segment);
    }
    Ok(OsString::from_vec(info))
}
