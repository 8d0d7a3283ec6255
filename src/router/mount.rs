//! Which mount claims a URL path: the longest whose path is a whole-segment prefix of the
//! raw, still percent-encoded path, FastCGI mounts before CGI ones.
//!
//! Both resolving a path and asking for credentials start here, before anything is decoded
//! or any file looked at: the gateway asks for the mount's authentication first.

use std::sync::Arc;

use crate::auth::BasicAuth;
use crate::config::{CgiMount, Config, FastcgiMount};

/// The Basic authentication of the mount that claims a raw URL path, FastCGI mounts first
/// as in `resolve_fastcgi`. Asked before the path is resolved, so that a client without
/// credentials learns nothing of what the mount holds (401, never 404 or 403).
pub fn auth_for<'c>(config: &'c Config, raw_path: &str) -> Option<&'c Arc<BasicAuth>> {
    match find_fastcgi_mount(config, raw_path) {
        Some(mount) => mount.auth.as_ref(),
        None => find_mount(config, raw_path).and_then(|(mount, _)| mount.auth.as_ref()),
    }
}

/// The FastCGI Authorizer of the mount that claims `raw_path`, if it has one.
pub fn authorizer_for<'c>(config: &'c Config, raw_path: &str) -> Option<&'c FastcgiMount> {
    match find_fastcgi_mount(config, raw_path) {
        Some(mount) => mount.authorizer.as_deref(),
        None => find_mount(config, raw_path).and_then(|(mount, _)| mount.authorizer.as_deref()),
    }
}

/// The longest FastCGI mount whose path is a whole-segment prefix of `raw_path`.
pub(super) fn find_fastcgi_mount<'c>(
    config: &'c Config,
    raw_path: &str,
) -> Option<&'c FastcgiMount> {
    config
        .fastcgi
        .iter()
        .filter(|m| is_under(&m.mount, raw_path))
        .max_by_key(|m| m.mount.len())
}

/// The longest mount whose path is a whole-segment prefix of `raw_path`, and the rest.
pub(super) fn find_mount<'c, 'p>(
    config: &'c Config,
    raw_path: &'p str,
) -> Option<(&'c CgiMount, &'p str)> {
    config
        .cgi
        .iter()
        .filter(|m| is_under(&m.mount, raw_path))
        .max_by_key(|m| m.mount.len())
        .map(|m| (m, &raw_path[m.mount.len()..]))
}

/// Whether `mount` is a whole-segment prefix of `raw_path` (`/cgi-bin` is not under `/cgi`).
fn is_under(mount: &str, raw_path: &str) -> bool {
    raw_path
        .strip_prefix(mount)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
