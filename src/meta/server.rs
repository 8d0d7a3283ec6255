//! What the meta-variables say of the server itself: the name it goes by (SERVER_NAME,
//! RFC 3875 §4.1.14) and the protocol the request came in (SERVER_PROTOCOL, §4.1.16).
//!
//! A script names the server by SERVER_NAME in the URLs it writes back (§4.1.14), so the
//! client's Host is used only when it looks like a host name; anything else falls back to
//! the server's own address.

use http::{Version, header};

use super::input::RequestInfo;
use crate::config::Config;

/// RFC 3875 §4.1.14: the configured name, else the host the client asked for, else our address.
pub(super) fn server_name(config: &Config, req: &RequestInfo<'_>) -> String {
    if let Some(name) = &config.server_name {
        return name.clone();
    }
    // The host the client asked the proxy for, then the one it asked us for.
    let host = req
        .forwarded
        .host
        .as_deref()
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .or_else(|| req.uri.host())
        .map(strip_port)
        .filter(|h| is_host_name(h));
    match host {
        Some(h) => h.to_owned(),
        None => req.local.ip().to_canonical().to_string(),
    }
}

/// RFC 3875 §4.1.15: the port the client reached; behind a trusted proxy, the one it asked
/// the proxy for (in its host, else the scheme's own), not Portico's.
pub(super) fn server_port(req: &RequestInfo<'_>) -> u16 {
    let forwarded = req.forwarded;
    if let Some(port) = forwarded
        .host
        .as_deref()
        .and_then(|h| h.strip_prefix(strip_port(h)))
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|p| p.parse().ok())
    {
        return port;
    }
    match forwarded.https {
        Some(true) => 443,
        Some(false) => 80,
        None => req.local.port(),
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

pub(super) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}
