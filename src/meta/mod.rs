//! RFC 3875 meta-variables from a request, its route match, the connection and the config.
//! Pure: no I/O. The same list becomes a CGI script's environment today and FastCGI
//! PARAMS or a WSGI environ later, which is why it lives apart from the spawner.
//!
//! Here is the builder: the RFC 3875 §4.1 set, then the de-facto extras. `headers` makes
//! the HTTP_* variables, `server` SERVER_NAME and SERVER_PROTOCOL, and `input` holds what
//! [`build`] takes and gives.

mod headers;
mod input;
mod server;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use http::{Uri, header};

use crate::config::Config;
use crate::error::Error;
use headers::{add_http_headers, header_value};
use server::{protocol, server_name, server_port};

pub use input::{MetaVars, RequestInfo, Target};

pub const SERVER_SOFTWARE: &str = concat!("Portico/", env!("CARGO_PKG_VERSION"));

pub fn build(
    config: &Config,
    route: &Target<'_>,
    req: &RequestInfo<'_>,
) -> Result<MetaVars, Error> {
    let mut vars: MetaVars = Vec::with_capacity(32 + req.headers.keys_len());
    let mut set = |name: &str, value: OsString| vars.push((name.to_owned(), value));

    // RFC 3875 §4.1.1, §4.1.11: AUTH_TYPE and REMOTE_USER say how the server authenticated
    // the user, so they come only from the mount's own check. An Authorization header the
    // server did not check proves nothing: echoing its scheme would let any client pose as
    // authenticated to a script that trusts AUTH_TYPE. A mount that passes the header on
    // (HTTP_AUTHORIZATION) leaves the checking to the app, which reads the header itself.
    if let Some(user) = req.remote_user {
        set("AUTH_TYPE", "Basic".into());
        set("REMOTE_USER", user.into());
    }
    // §4.1.2, §4.1.3: only when there is a body.
    if let Some(length) = req.content_length {
        set("CONTENT_LENGTH", length.to_string().into());
        if let Some(ct) = req.headers.get(header::CONTENT_TYPE) {
            set("CONTENT_TYPE", header_value(ct.as_bytes())?);
        }
    }
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    if !route.path_info.is_empty() {
        set("PATH_INFO", route.path_info.to_owned());
        // §4.1.6: SHOULD be set when there is path info (and not without it). Quick mode
        // always has a document root; a config without `document_root` has no tree to map to.
        if let Some(root) = &config.document_root {
            set("PATH_TRANSLATED", path_translated(root, route.path_info));
        }
    }
    // §4.1.7: raw, and the empty string when absent.
    set("QUERY_STRING", req.uri.query().unwrap_or("").into());
    let remote_ip = req.remote.ip().to_canonical().to_string();
    set("REMOTE_ADDR", remote_ip.clone().into());
    // §4.1.9: no reverse lookup; REMOTE_ADDR stands in for the host name.
    set("REMOTE_HOST", remote_ip.into());
    set("REQUEST_METHOD", req.method.as_str().into());
    set("SCRIPT_NAME", route.script_name.to_owned());
    set("SERVER_NAME", server_name(config, req).into());
    set("SERVER_PORT", server_port(req).to_string().into());
    set("SERVER_PROTOCOL", protocol(req.version).into());
    set("SERVER_SOFTWARE", SERVER_SOFTWARE.into());

    // De-facto extras (Apache, nginx, PHP rely on them).
    set("REQUEST_URI", request_uri(req.uri).into());
    set(
        "SCRIPT_FILENAME",
        route.script_filename.as_os_str().to_owned(),
    );
    if let Some(root) = &config.document_root {
        set("DOCUMENT_ROOT", root.clone().into_os_string());
    }
    set("REMOTE_PORT", req.remote.port().to_string().into());
    set(
        "SERVER_ADDR",
        req.local.ip().to_canonical().to_string().into(),
    );
    // Apache's: HTTPS=on only when the client's connection was HTTPS: Portico's own TLS,
    // or as a trusted proxy says (`wsgi.url_scheme` follows it).
    let https = req.forwarded.https.unwrap_or(req.tls);
    set(
        "REQUEST_SCHEME",
        if https { "https" } else { "http" }.into(),
    );
    if https {
        set("HTTPS", "on".into());
    }
    // php-cgi refuses to run without it (its force-cgi-redirect check).
    set("REDIRECT_STATUS", "200".into());
    // Apache's mod_unique_id name: the id of the request in Portico's log lines.
    set("UNIQUE_ID", req.id.to_string().into());

    add_http_headers(&mut vars, req.headers, route.pass_authorization)?;
    Ok(vars)
}

/// RFC 3875 §4.1.6: PATH_INFO mapped onto the document tree the way Apache does it, the
/// document root joined with it byte for byte, "irrespective of whether it maps to a valid
/// repository location". PATH_INFO starts with `/` (the router makes it so).
fn path_translated(root: &Path, path_info: &OsStr) -> OsString {
    let root = root.as_os_str().as_bytes();
    // A root of `/` would otherwise give `//a`.
    let root = root.strip_suffix(b"/").unwrap_or(root);
    let mut translated = Vec::with_capacity(root.len() + path_info.len());
    translated.extend_from_slice(root);
    translated.extend_from_slice(path_info.as_bytes());
    OsString::from_vec(translated)
}

fn request_uri(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CgiMount;
    use http::{HeaderMap, Method, Version};
    use std::path::PathBuf;

    fn config() -> Config {
        Config {
            document_root: Some(PathBuf::from("/srv/www")),
            cgi: vec![CgiMount {
                mount: "/cgi-bin".into(),
                dir: PathBuf::from("/srv/cgi"),
                script: None,
                auth: None,
                pass_authorization: false,
                authorizer: None,
                x_sendfile: None,
                interpreters: vec![],
                suexec: false,
                persistent: Vec::new(),
            }],
            ..Default::default()
        }
    }

    fn vars(
        config: &Config,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<u64>,
    ) -> Result<MetaVars, Error> {
        vars_for(config, uri, "/a b", headers, body, None)
    }

    /// The meta-variables of a POST to `/cgi-bin/env` with `path_info`, run for `remote_user`
    /// when the mount's authentication let one in.
    fn vars_for(
        config: &Config,
        uri: &str,
        path_info: &str,
        headers: &[(&str, &str)],
        body: Option<u64>,
        remote_user: Option<&str>,
    ) -> Result<MetaVars, Error> {
        let route = Target {
            script_name: OsStr::new("/cgi-bin/env"),
            path_info: OsStr::new(path_info),
            script_filename: Path::new("/srv/cgi/env"),
            pass_authorization: config.cgi[0].pass_authorization,
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        let uri: Uri = uri.parse().unwrap();
        let req = RequestInfo {
            method: &Method::POST,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &map,
            remote: "127.0.0.2:5555".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            content_length: body,
            remote_user,
            id: &"00000000000000ab".parse().unwrap(),
            forwarded: &Default::default(),
            tls: false,
        };
        build(config, &route, &req)
    }

    fn get<'a>(vars: &'a MetaVars, name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn rfc_3875_variables() {
        let c = config();
        let v = vars(
            &c,
            "/cgi-bin/env/a%20b?x=1&y",
            &[("host", "example.org:8080")],
            None,
        )
        .unwrap();
        let want = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("PATH_INFO", "/a b"),
            ("PATH_TRANSLATED", "/srv/www/a b"),
            ("QUERY_STRING", "x=1&y"),
            ("REMOTE_ADDR", "127.0.0.2"),
            ("REMOTE_HOST", "127.0.0.2"),
            ("REMOTE_PORT", "5555"),
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/cgi-bin/env"),
            ("SERVER_NAME", "example.org"),
            ("SERVER_PORT", "8080"),
            ("SERVER_ADDR", "127.0.0.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_SOFTWARE", SERVER_SOFTWARE),
            ("REQUEST_URI", "/cgi-bin/env/a%20b?x=1&y"),
            ("SCRIPT_FILENAME", "/srv/cgi/env"),
            ("DOCUMENT_ROOT", "/srv/www"),
            ("REQUEST_SCHEME", "http"),
            ("REDIRECT_STATUS", "200"),
            ("UNIQUE_ID", "00000000000000ab"),
            ("HTTP_HOST", "example.org:8080"),
        ];
        for (name, value) in want {
            assert_eq!(get(&v, name), Some(value), "{name}");
        }
        for absent in [
            "CONTENT_LENGTH",
            "CONTENT_TYPE",
            "AUTH_TYPE",
            "REMOTE_USER",
            "HTTPS",
        ] {
            assert_eq!(get(&v, absent), None, "{absent}");
        }
    }

    #[test]
    fn body_variables_only_with_a_body() {
        let c = config();
        let headers = [("content-type", "text/plain"), ("content-length", "5")];
        let v = vars(&c, "/", &headers, Some(5)).unwrap();
        assert_eq!(get(&v, "CONTENT_LENGTH"), Some("5"));
        assert_eq!(get(&v, "CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get(&v, "HTTP_CONTENT_TYPE"), None);
        assert_eq!(get(&v, "HTTP_CONTENT_LENGTH"), None);
        let v = vars(&c, "/", &headers, None).unwrap();
        assert_eq!(get(&v, "CONTENT_TYPE"), None);
    }

    #[test]
    fn header_table() {
        let c = config();
        let headers = [
            ("accept", "a"),
            ("accept", "b"),
            ("cookie", "x=1"),
            ("cookie", "y=2"),
            ("proxy", "http://evil"),
            ("x_foo", "smuggled"),
            ("x-foo", "real"),
            ("redirect-status", "999"),
            ("authorization", "Basic dTpw"),
        ];
        let v = vars(&c, "/", &headers, None).unwrap();
        assert_eq!(get(&v, "HTTP_ACCEPT"), Some("a, b"));
        assert_eq!(get(&v, "HTTP_COOKIE"), Some("x=1; y=2"));
        assert_eq!(get(&v, "HTTP_PROXY"), None);
        assert_eq!(get(&v, "HTTP_X_FOO"), Some("real"));
        assert_eq!(get(&v, "REDIRECT_STATUS"), Some("200"));
        assert_eq!(get(&v, "HTTP_REDIRECT_STATUS"), Some("999"));
        assert_eq!(get(&v, "HTTP_AUTHORIZATION"), None);
        assert_eq!(v.iter().filter(|(n, _)| n == "HTTP_X_FOO").count(), 1);

        let mut c = config();
        c.cgi[0].pass_authorization = true;
        let v = vars(&c, "/", &headers, None).unwrap();
        assert_eq!(get(&v, "HTTP_AUTHORIZATION"), Some("Basic dTpw"));
    }

    /// RFC 3875 §4.1.1, §4.1.11: AUTH_TYPE and REMOTE_USER only when the mount itself
    /// authenticated the request, whatever Authorization the client sends; the header as
    /// HTTP_AUTHORIZATION only where the mount passes it on.
    #[test]
    fn auth_variables_come_only_from_the_mount_s_own_authentication() {
        let basic = Some("Basic dTpw");
        // (Authorization sent, user the mount let in, pass_authorization)
        //     -> (AUTH_TYPE, REMOTE_USER, HTTP_AUTHORIZATION)
        let cases = [
            ((None, None, false), (None, None, None)),
            ((None, None, true), (None, None, None)),
            ((basic, None, false), (None, None, None)),
            ((basic, None, true), (None, None, basic)),
            ((Some("Bearer abc"), None, false), (None, None, None)),
            (
                (Some("Bearer abc"), None, true),
                (None, None, Some("Bearer abc")),
            ),
            (
                (Some("Digest username=\"u\""), None, false),
                (None, None, None),
            ),
            ((Some("Negotiate YII="), None, false), (None, None, None)),
            ((basic, Some("u"), false), (Some("Basic"), Some("u"), None)),
            ((basic, Some("u"), true), (Some("Basic"), Some("u"), basic)),
        ];
        for ((authorization, user, pass), want) in cases {
            let mut c = config();
            c.cgi[0].pass_authorization = pass;
            let headers: Vec<_> = authorization
                .map(|value| ("authorization", value))
                .into_iter()
                .collect();
            let v = vars_for(&c, "/", "/a b", &headers, None, user).unwrap();
            let got = (
                get(&v, "AUTH_TYPE"),
                get(&v, "REMOTE_USER"),
                get(&v, "HTTP_AUTHORIZATION"),
            );
            assert_eq!(got, want, "{authorization:?}, user {user:?}, pass {pass}");
        }
    }

    /// RFC 3875 §4.1.6: PATH_TRANSLATED is the document root joined with PATH_INFO when
    /// there is path info, and unset without it; DOCUMENT_ROOT is there either way.
    #[test]
    fn path_translated_is_the_document_root_joined_with_path_info() {
        // (document_root, PATH_INFO) -> PATH_TRANSLATED
        let cases = [
            (Some("/srv/www"), "/a b", Some("/srv/www/a b")),
            (Some("/srv/www"), "/", Some("/srv/www/")),
            (
                Some("/srv/www"),
                "/no/such/file.html",
                Some("/srv/www/no/such/file.html"),
            ),
            (Some("/"), "/a", Some("/a")),
            (Some("/srv/www"), "", None),
            (None, "/a", None),
        ];
        for (root, path_info, want) in cases {
            let mut c = config();
            c.document_root = root.map(PathBuf::from);
            let v = vars_for(&c, "/", path_info, &[], None, None).unwrap();
            assert_eq!(get(&v, "PATH_TRANSLATED"), want, "{root:?} + {path_info:?}");
            assert_eq!(get(&v, "DOCUMENT_ROOT"), root, "{root:?}");
            let info = (!path_info.is_empty()).then_some(path_info);
            assert_eq!(get(&v, "PATH_INFO"), info, "{path_info:?}");
        }
    }

    #[test]
    fn configured_server_name_wins_and_bad_hosts_are_ignored() {
        let mut c = config();
        let v = vars(&c, "/", &[("host", "bad host$")], None).unwrap();
        assert_eq!(get(&v, "SERVER_NAME"), Some("127.0.0.1"));
        let v = vars(&c, "/", &[("host", "[::1]:80")], None).unwrap();
        assert_eq!(get(&v, "SERVER_NAME"), Some("[::1]"));
        c.server_name = Some("portico.test".into());
        let v = vars(&c, "/", &[("host", "example.org")], None).unwrap();
        assert_eq!(get(&v, "SERVER_NAME"), Some("portico.test"));
    }
}
