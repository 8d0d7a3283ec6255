//! `portico explain METHOD URL`: one request, shown the three ways the project hands it over
//! (CGI, FastCGI, WSGI), for a student.
//!
//! 1. the route and how the path split into SCRIPT_NAME and PATH_INFO;
//! 2. the meta-variables, grouped, each with the RFC 3875 section that defines it;
//! 3. for a CGI route, the command, the raw head the script printed and its response type;
//! 4. the same request as FastCGI records, params decoded;
//! 5. the same request as a WSGI environ;
//! 6. the time split: spawn, first byte, last byte.
//!
//! A CGI script is run directly, as CGI mode runs it; a FastCGI or WSGI route through an
//! in-process Portico, timed on its second request (the first meets workers starting).
//! Cookie and Authorization values are masked unless asked for.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use serde::Serialize;
use tokio_util::codec::Decoder;

use crate::cgi::response;
use crate::cli::ExplainArgs;
use crate::config::{self, Config};
use crate::fastcgi::params::{decode_pairs, encode_pairs};
use crate::fastcgi::record::{self, Kind, RecordCodec, Role};
use crate::{meta, router};

#[derive(Serialize)]
pub struct Explanation {
    pub method: String,
    pub url: String,
    pub route: Route,
    pub meta_variables: Vec<MetaVariable>,
    pub cgi: Option<CgiRun>,
    pub fastcgi_records: Vec<FastcgiRecord>,
    pub wsgi_environ: Vec<(String, String)>,
    pub timing_ms: Timing,
    pub status: u16,
}

#[derive(Serialize)]
pub struct Route {
    /// "cgi", "fastcgi" or "wsgi".
    pub kind: &'static str,
    pub mount: String,
    pub script_name: String,
    pub path_info: String,
    pub script_filename: String,
}

#[derive(Serialize)]
pub struct MetaVariable {
    pub name: String,
    pub value: String,
    /// "RFC 3875", "extra" (what servers add by custom) or "HTTP_*" (request headers).
    pub group: &'static str,
    /// Where the variable is defined.
    pub source: &'static str,
}

#[derive(Serialize)]
pub struct CgiRun {
    pub command: Vec<String>,
    pub raw_head: String,
    /// RFC 3875 §6.2's response types, or NPH (§5).
    pub response_type: &'static str,
    pub exit_status: Option<i32>,
}

#[derive(Serialize)]
pub struct FastcgiRecord {
    pub kind: &'static str,
    pub request_id: u16,
    pub content_length: usize,
    /// For FCGI_PARAMS: the pairs the record carries.
    pub params: Vec<(String, String)>,
}

#[derive(Serialize, Default)]
pub struct Timing {
    /// Until the script's process existed (CGI only).
    pub spawn: Option<f64>,
    pub first_byte: f64,
    pub last_byte: f64,
}

/// Why a request could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Bench(#[from] crate::bench::BenchError),
    #[error("bad request: {0}")]
    Request(String),
    #[error("{0}")]
    Route(#[from] crate::error::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

const MASK: &str = "*** (--show-secrets shows it)";

pub fn run(args: &ExplainArgs) -> Result<Explanation, ExplainError> {
    let serve = crate::cli::ServeArgs {
        config: args.config.clone(),
        ..Default::default()
    };
    let config = config::load(&serve)?;
    let method: Method = args
        .method
        .parse()
        .map_err(|_| ExplainError::Request(format!("method `{}`", args.method)))?;
    let uri: Uri = args
        .url
        .parse()
        .map_err(|_| ExplainError::Request(format!("URL `{}`", args.url)))?;
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let path = uri.path().to_owned();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::HOST,
        HeaderValue::from_str(uri.authority().map_or("localhost", |a| a.as_str()))
            .map_err(|_| ExplainError::Request("host".into()))?,
    );
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| ExplainError::Request(format!("header `{header}`: NAME: value")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ExplainError::Request(format!("header name `{name}`")))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| ExplainError::Request(format!("header value of `{name}`")))?;
        headers.append(name, value);
    }
    let body = args.data.clone().unwrap_or_default().into_bytes();
    if args.data.is_some() && !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let local = config.listen[0];
    let info = meta::RequestInfo {
        method: &method,
        uri: &path_and_query.parse().unwrap_or(uri.clone()),
        version: Version::HTTP_11,
        headers: &headers,
        remote: SocketAddr::from(([127, 0, 0, 1], 50000)),
        local,
        content_length: args.data.as_ref().map(|d| d.len() as u64),
        remote_user: None,
    };
    let show = args.show_secrets;

    let (route, vars, cgi_match) = match router::resolve_fastcgi(&config, &path) {
        Some(app) => {
            let app = app?;
            let kind = match app.mount.launch.as_ref().and_then(|l| l.script) {
                Some(_) => "wsgi",
                None => "fastcgi",
            };
            let route = Route {
                kind,
                mount: app.mount.mount.clone(),
                script_name: lossy(&app.script_name),
                path_info: lossy(&app.path_info),
                script_filename: app.script_filename.display().to_string(),
            };
            (route, meta::build(&config, &app.target(), &info)?, None)
        }
        None => {
            let script = router::resolve(&config, &path)?;
            let route = Route {
                kind: "cgi",
                mount: script.mount.mount.clone(),
                script_name: lossy(&script.script_name),
                path_info: lossy(&script.path_info),
                script_filename: script.script_path.display().to_string(),
            };
            let vars = meta::build(&config, &script.target(), &info)?;
            let mut argv: Vec<OsString> = script.interpreter.map(<[_]>::to_vec).unwrap_or_default();
            argv.push(script.script_path.clone().into_os_string());
            let cwd = script.script_path.parent().map(ToOwned::to_owned);
            (route, vars, Some((argv, cwd, script.is_nph)))
        }
    };

    let meta_variables = vars
        .iter()
        .map(|(name, value)| {
            let (group, source) = describe(name, &config);
            MetaVariable {
                name: name.clone(),
                value: masked(name, &value.to_string_lossy(), show),
                group,
                source,
            }
        })
        .collect();
    let fastcgi_records = records(&vars, &body, show);
    let wsgi_environ = environ(&vars, show);

    let (cgi, timing, status) = match cgi_match {
        Some((argv, cwd, is_nph)) => run_cgi(&config, &vars, &argv, cwd, is_nph, &body)?,
        None => {
            let server = crate::bench::Server::start(args.config.clone())?;
            // The first request meets workers still starting; the second shows a warm one.
            let addr = server.addr().0;
            let result = fetch(addr, &method, &path_and_query, &headers, &body)
                .and_then(|_| fetch(addr, &method, &path_and_query, &headers, &body));
            server.stop();
            let (timing, status) = result?;
            (None, timing, status)
        }
    };
    Ok(Explanation {
        method: method.to_string(),
        url: args.url.clone(),
        route,
        meta_variables,
        cgi,
        fastcgi_records,
        wsgi_environ,
        timing_ms: timing,
        status,
    })
}

fn lossy(text: &std::ffi::OsStr) -> String {
    text.to_string_lossy().into_owned()
}

fn masked(name: &str, value: &str, show: bool) -> String {
    let secret = matches!(
        name,
        "HTTP_COOKIE" | "HTTP_AUTHORIZATION" | "HTTP_PROXY_AUTHORIZATION"
    );
    if secret && !show {
        MASK.to_owned()
    } else {
        value.to_owned()
    }
}

/// The variable's group and the place that defines it.
fn describe(name: &str, config: &Config) -> (&'static str, &'static str) {
    let section = match name {
        "AUTH_TYPE" => "RFC 3875 §4.1.1",
        "CONTENT_LENGTH" => "RFC 3875 §4.1.2",
        "CONTENT_TYPE" => "RFC 3875 §4.1.3",
        "GATEWAY_INTERFACE" => "RFC 3875 §4.1.4",
        "PATH_INFO" => "RFC 3875 §4.1.5",
        "PATH_TRANSLATED" => "RFC 3875 §4.1.6",
        "QUERY_STRING" => "RFC 3875 §4.1.7",
        "REMOTE_ADDR" => "RFC 3875 §4.1.8",
        "REMOTE_HOST" => "RFC 3875 §4.1.9",
        "REMOTE_IDENT" => "RFC 3875 §4.1.10",
        "REMOTE_USER" => "RFC 3875 §4.1.11",
        "REQUEST_METHOD" => "RFC 3875 §4.1.12",
        "SCRIPT_NAME" => "RFC 3875 §4.1.13",
        "SERVER_NAME" => "RFC 3875 §4.1.14",
        "SERVER_PORT" => "RFC 3875 §4.1.15",
        "SERVER_PROTOCOL" => "RFC 3875 §4.1.16",
        "SERVER_SOFTWARE" => "RFC 3875 §4.1.17",
        n if n.starts_with("HTTP_") => return ("HTTP_*", "RFC 3875 §4.1.18 (request headers)"),
        "REDIRECT_STATUS" => return ("extra", "php-cgi's force-redirect check (Apache)"),
        "REQUEST_URI" | "SCRIPT_FILENAME" | "DOCUMENT_ROOT" | "REMOTE_PORT" | "SERVER_ADDR"
        | "REQUEST_SCHEME" | "HTTPS" => return ("extra", "de facto (Apache, nginx)"),
        n if config.script_env.iter().any(|(k, _)| k == n) => {
            return ("configured", "[env] in the config");
        }
        _ => return ("extra", "Portico"),
    };
    ("RFC 3875", section)
}

/// The request as FastCGI would carry it (FastCGI spec §3.3, §5): encoded, then decoded.
fn records(vars: &meta::MetaVars, body: &[u8], show: bool) -> Vec<FastcgiRecord> {
    let mut out = BytesMut::new();
    record::encode_record(
        &mut out,
        Kind::BeginRequest,
        1,
        &record::begin_request(Role::Responder, true),
    );
    let pairs =
        encode_pairs(vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).unwrap_or_default();
    record::encode_stream(&mut out, Kind::Params, 1, &pairs);
    record::encode_stream(&mut out, Kind::Params, 1, &[]);
    if !body.is_empty() {
        record::encode_stream(&mut out, Kind::Stdin, 1, body);
    }
    record::encode_stream(&mut out, Kind::Stdin, 1, &[]);
    let mut codec = RecordCodec;
    let mut list = Vec::new();
    while let Ok(Some(r)) = codec.decode(&mut out) {
        let kind = match Kind::from_u8(r.kind) {
            Some(Kind::BeginRequest) => "FCGI_BEGIN_REQUEST",
            Some(Kind::Params) => "FCGI_PARAMS",
            Some(Kind::Stdin) => "FCGI_STDIN",
            _ => "other",
        };
        let params = if r.is(Kind::Params) {
            decode_pairs(&r.content)
                .unwrap_or_default()
                .into_iter()
                .map(|(n, v)| {
                    let name = String::from_utf8_lossy(n).into_owned();
                    let value = masked(&name, &String::from_utf8_lossy(v), show);
                    (name, value)
                })
                .collect()
        } else {
            Vec::new()
        };
        list.push(FastcgiRecord {
            kind,
            request_id: r.request_id,
            content_length: r.content.len(),
            params,
        });
    }
    list
}

/// The WSGI environ Portico's adapter builds (PEP 3333): the meta-variables plus wsgi.*.
fn environ(vars: &meta::MetaVars, show: bool) -> Vec<(String, String)> {
    let mut environ: Vec<(String, String)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), masked(n, &v.to_string_lossy(), show)))
        .collect();
    let scheme = vars
        .iter()
        .find(|(n, _)| n == "REQUEST_SCHEME")
        .map_or("http".to_owned(), |(_, v)| v.to_string_lossy().into_owned());
    for (key, value) in [
        ("wsgi.version", "(1, 0)".to_owned()),
        ("wsgi.url_scheme", scheme),
        ("wsgi.input", "FCGI_STDIN, read as the app asks".to_owned()),
        ("wsgi.errors", "FCGI_STDERR, into Portico's log".to_owned()),
        ("wsgi.multithread", "False".to_owned()),
        ("wsgi.multiprocess", "True".to_owned()),
        ("wsgi.run_once", "False".to_owned()),
    ] {
        environ.push((key.to_owned(), value));
    }
    environ
}

type Run = (Option<CgiRun>, Timing, u16);

/// Runs the script as CGI mode does: cleared environment plus the meta-variables, its own
/// directory, the body on stdin.
fn run_cgi(
    config: &Config,
    vars: &meta::MetaVars,
    argv: &[OsString],
    cwd: Option<std::path::PathBuf>,
    is_nph: bool,
    body: &[u8],
) -> Result<Run, ExplainError> {
    let started = Instant::now();
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(config.script_env.iter().map(|(k, v)| (k, v)))
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn()?;
    let spawn = started.elapsed();
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body);
    }
    let mut stdout = child
        .stdout
        .take()
        .ok_or(ExplainError::Request("no stdout".into()))?;
    let (output, first, last) = read_timed(&mut stdout, started)?;
    let exit = child.wait()?.code();
    let head_end = response::find_head_end(&output).unwrap_or(output.len());
    let raw = &output[..head_end];
    let trimmed = raw.strip_suffix(b"\n").unwrap_or(raw);
    let (response_type, status) = if is_nph {
        let status = response::parse_nph(trimmed).map_or(502, |h| h.status.as_u16());
        ("NPH: the script's own HTTP response (RFC 3875 §5)", status)
    } else {
        match response::parse(trimmed) {
            Ok(head) => (
                match head.kind {
                    response::Kind::Document => "document response (RFC 3875 §6.2.1)",
                    response::Kind::LocalRedirect => "local redirect response (RFC 3875 §6.2.2)",
                    response::Kind::ClientRedirect => "client redirect response (RFC 3875 §6.2.3)",
                    response::Kind::ClientRedirectWithDocument => {
                        "client redirect response with document (RFC 3875 §6.2.4)"
                    }
                    response::Kind::Nph => "NPH: the script's own HTTP response (RFC 3875 §5)",
                },
                head.status.as_u16(),
            ),
            Err(_) => ("invalid head: Portico answers 502", 502),
        }
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok((
        Some(CgiRun {
            command: argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            raw_head: String::from_utf8_lossy(raw).into_owned(),
            response_type,
            exit_status: exit,
        }),
        Timing {
            spawn: Some(ms(spawn)),
            first_byte: ms(first.unwrap_or(last)),
            last_byte: ms(last),
        },
        status,
    ))
}

/// One HTTP/1.1 request to the in-process Portico, timed to its first and last byte.
fn fetch(
    addr: SocketAddr,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Timing, u16), ExplainError> {
    let mut request = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let (response, first, last) = read_timed(&mut stream, started)?;
    let status = String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok((
        Timing {
            spawn: None,
            first_byte: ms(first.unwrap_or(last)),
            last_byte: ms(last),
        },
        status,
    ))
}

impl Explanation {
    /// The terminal text, section by section.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let r = &self.route;
        out += &format!(
            "{} {}\n\n1. Route: a {} mount at {}\n",
            self.method,
            self.url,
            r.kind,
            display_mount(&r.mount)
        );
        out += &format!(
            "   SCRIPT_NAME     = {}\n   PATH_INFO       = {}\n   SCRIPT_FILENAME = {}\n",
            r.script_name, r.path_info, r.script_filename
        );
        out += "\n2. Meta-variables\n";
        for group in ["RFC 3875", "extra", "configured", "HTTP_*"] {
            let vars: Vec<_> = self
                .meta_variables
                .iter()
                .filter(|v| v.group == group)
                .collect();
            if vars.is_empty() {
                continue;
            }
            out += &format!("   {group}:\n");
            for v in vars {
                out += &format!("     {:<18} = {:<40} {}\n", v.name, v.value, v.source);
            }
        }
        out += "\n3. As CGI\n";
        match &self.cgi {
            Some(cgi) => {
                out += &format!(
                    "   command: {}\n   the script printed this head:\n",
                    cgi.command.join(" ")
                );
                for line in cgi.raw_head.lines() {
                    out += &format!("     | {line}\n");
                }
                out += &format!(
                    "   response type: {}\n   exit status: {}\n",
                    cgi.response_type,
                    cgi.exit_status
                        .map_or("signal".to_owned(), |c| c.to_string())
                );
            }
            None => out += "   (this route is served by persistent workers; see 4 and 5)\n",
        }
        out += "\n4. As FastCGI records (the same meta-variables, as FCGI_PARAMS)\n";
        for rec in &self.fastcgi_records {
            out += &format!(
                "   {:<19} request id {}  {} bytes\n",
                rec.kind, rec.request_id, rec.content_length
            );
            for (name, value) in &rec.params {
                out += &format!("       {name} = {value}\n");
            }
        }
        out += "\n5. As a WSGI environ (PEP 3333)\n";
        for (key, value) in &self.wsgi_environ {
            out += &format!("   {key:<18} {value}\n");
        }
        let t = &self.timing_ms;
        out += &format!("\n6. Time (status {})\n", self.status);
        if let Some(spawn) = t.spawn {
            out += &format!("   spawn       {spawn:>9.3} ms\n");
        }
        out += &format!(
            "   first byte  {:>9.3} ms\n   last byte   {:>9.3} ms\n",
            t.first_byte, t.last_byte
        );
        out
    }
}

/// Reads `from` to its end: the bytes, and the time from `started` to the first and to
/// the last of them.
fn read_timed(
    from: &mut impl Read,
    started: Instant,
) -> std::io::Result<(Vec<u8>, Option<Duration>, Duration)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut first = None;
    loop {
        let n = from.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(|| started.elapsed());
        bytes.extend_from_slice(&chunk[..n]);
    }
    Ok((bytes, first, started.elapsed()))
}

fn display_mount(mount: &str) -> &str {
    if mount.is_empty() { "/" } else { mount }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_unless_shown() {
        assert_eq!(masked("HTTP_COOKIE", "a=1", false), MASK);
        assert_eq!(masked("HTTP_COOKIE", "a=1", true), "a=1");
        assert_eq!(masked("HTTP_ACCEPT", "*/*", false), "*/*");
    }
}
