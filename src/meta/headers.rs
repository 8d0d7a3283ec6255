//! Request headers as meta-variables: one HTTP_* variable per header (RFC 3875 §4.1.18),
//! and the check every header value passes before it becomes an environment value.
//!
//! What is left out is the point: the body's headers (carried by CONTENT_LENGTH and
//! CONTENT_TYPE), `Proxy` (httpoxy, CVE-2016-5385), Authorization unless the mount passes
//! it on, and names with `_` that would pose as another header.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use http::{HeaderMap, header};

use super::input::MetaVars;
use crate::error::Error;

/// RFC 3875 §4.1.18: one HTTP_* variable per request header.
pub(super) fn add_http_headers(
    vars: &mut MetaVars,
    headers: &HeaderMap,
    pass_authorization: bool,
) -> Result<(), Error> {
    for name in headers.keys() {
        let lower = name.as_str();
        if *name == header::CONTENT_LENGTH || *name == header::CONTENT_TYPE {
            continue; // carried by CONTENT_LENGTH / CONTENT_TYPE
        }
        if lower == "proxy" {
            continue; // httpoxy, CVE-2016-5385: HTTP_PROXY would steer the script's HTTP clients
        }
        if *name == header::AUTHORIZATION && !pass_authorization {
            continue; // credentials stay with the server unless the mount opts in
        }
        // `X_Foo` would become HTTP_X_FOO and pose as `X-Foo`; such names are dropped.
        if !lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        let separator: &[u8] = if *name == header::COOKIE {
            b"; "
        } else {
            b", "
        };
        let mut value = Vec::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(separator);
            }
            value.extend_from_slice(v.as_bytes());
        }
        let mut var = String::with_capacity(5 + lower.len());
        var.push_str("HTTP_");
        var.extend(lower.chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        vars.push((var, header_value(&value)?));
    }
    Ok(())
}

/// A header value as an environment value; CR, LF and NUL could forge more of the environment.
pub(super) fn header_value(bytes: &[u8]) -> Result<OsString, Error> {
    if bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Error::BadRequest("control character in a header value"));
    }
    Ok(OsString::from_vec(bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_values_are_refused() {
        assert!(header_value(b"a\0b").is_err());
        assert!(header_value(b"a\nb").is_err());
        assert!(header_value(b"a\tb").is_ok());
    }
}
