//! What `meta::build` takes, the request being served ([`RequestInfo`]) and the program a
//! route chose for it ([`Target`]), and what it gives: the one list ([`MetaVars`]) that
//! every generation is made from (the CGI environment, FCGI_PARAMS, the WSGI environ).
//!
//! Apart from the builder so that its parts (`headers`, `server`) name these types without
//! reaching back into it. The inputs borrow from the request the gateway (or `explain`)
//! holds; nothing is copied until a value goes into the list.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::Path;

use http::{HeaderMap, Method, Uri, Version};

/// Ordered (name, value) pairs: the RFC 3875 set, the de-facto extras, then HTTP_*.
pub type MetaVars = Vec<(String, OsString)>;

/// The program a request goes to, as a route decided it (CGI script or FastCGI app).
pub struct Target<'a> {
    pub script_name: &'a OsStr,
    pub path_info: &'a OsStr,
    pub script_filename: &'a Path,
    /// Whether HTTP_AUTHORIZATION is passed (like Apache's CGIPassAuth).
    pub pass_authorization: bool,
}

/// What meta-variables are made from, borrowed from the request being served.
pub struct RequestInfo<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Length of the body the script will read on stdin; `None` when there is none.
    pub content_length: Option<u64>,
    /// The user the mount's Basic authentication let in: the only source of AUTH_TYPE and
    /// REMOTE_USER.
    pub remote_user: Option<&'a str>,
    /// The request's id, UNIQUE_ID to the program.
    pub id: &'a crate::request_id::RequestId,
    /// What a trusted proxy said of the scheme and host (its client is `remote` already).
    pub forwarded: &'a crate::forwarded::Forwarded,
    /// The client's connection to Portico is TLS.
    pub tls: bool,
}
