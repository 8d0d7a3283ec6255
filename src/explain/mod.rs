//! `portico explain METHOD URL`: one request, shown the three ways the project hands it over
//! (CGI, FastCGI, WSGI), for a student.
//!
//! 1. the route and how the path split into SCRIPT_NAME and PATH_INFO;
//! 2. the meta-variables, grouped, each with the RFC 3875 section that defines it;
//! 3. for a CGI route, the command, the script's run, the head Portico answered with and
//!    the script's response type (`cgi`);
//! 4. the same request as FastCGI records, params decoded (`records`);
//! 5. the same request as a WSGI environ ([`crate::wsgi::environ`]);
//! 6. the time to the first and the last byte.
//!
//! The request goes to Portico's own server, in-process ([`crate::server::Local`]), as any
//! client sends it (`exchange`): the route's real backend runs it, in full duplex. What is
//! shown is what the product builds, not a copy of it: `meta::build` with the connection's
//! own addresses, the FCGI_PARAMS a FastCGI job carries, the adapter's environ, and the
//! request's access line in the log (`access_line`) for what only the server sees. A
//! FastCGI or WSGI route is timed on its second request (the first meets workers
//! starting). Cookie and Authorization values are masked unless asked for.
//!
//! `text` shows the explanation on a terminal; `page` is the same explanation as a page
//! in a browser (`[explain]`), the one part of the tools the gateway calls.

mod access_line;
mod cgi;
mod error;
mod exchange;
mod narrow;
pub mod page;
mod records;
mod request;
mod text;
mod variables;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Version;
use serde::Serialize;

use crate::backend::{Request as BackendRequest, RequestLine};
use crate::body::RequestBody;
use crate::cli::{ExplainArgs, ServeArgs};
use crate::config::{self, Config};
use crate::fastcgi::params;
use crate::request_id::RequestId;
use crate::{fastcgi, forwarded, meta, router, server, wsgi};
use access_line::AccessLines;
pub use error::ExplainError;
use exchange::Exchange;
use request::Request;

pub use cgi::{CgiRun, ScriptRun};
pub use records::FastcgiRecord;
pub use variables::MetaVariable;

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
    pub response_body_bytes: u64,
    /// Whether the body ended as its framing says.
    pub response_complete: bool,
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
pub struct Timing {
    /// From the first byte of the request written.
    pub first_byte: f64,
    pub last_byte: f64,
}

/// Which backend answers the path, as the gateway decides it.
enum Backend<'c> {
    Cgi(router::Match<'c>),
    Fastcgi(router::FastcgiMatch<'c>),
}

/// `portico explain`: the request of the command line, against the config it names.
pub fn run(args: &ExplainArgs) -> Result<Explanation, ExplainError> {
    let serve = ServeArgs {
        config: args.config.clone(),
        ..Default::default()
    };
    let config = Arc::new(config::load(&serve)?);
    let request = Request::from_args(args)?;
    explain(config, &request, args.show_secrets)
}

/// Sends `request` to an in-process server of `config` and shows what each generation
/// makes of it. It blocks: the server runs on a runtime of this thread's own, so that the
/// thread's subscriber sees its access lines; the thread must not be a runtime's.
fn explain(
    config: Arc<Config>,
    request: &Request,
    show: bool,
) -> Result<Explanation, ExplainError> {
    let path = request.uri.path();
    let backend = match router::resolve_fastcgi(&config, path) {
        Some(app) => Backend::Fastcgi(app?),
        None => Backend::Cgi(router::resolve(&config, path)?),
    };
    let route = describe_route(&backend);

    // A runtime on this thread, so that the subscriber set for it sees every event.
    let lines = AccessLines::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let warm_up = matches!(backend, Backend::Fastcgi(_));
    let served = Arc::new(narrow::for_mount(&config, &route.mount));
    let (exchange, user) = tracing::subscriber::with_default(lines.subscriber(), || {
        runtime.block_on(serve_one(&served, request, warm_up, &lines))
    })?;
    let line = lines.last();

    // The id the server gave the request, as its access line names it.
    let id: RequestId = line
        .as_ref()
        .and_then(|l| l.get("id")?.parse().ok())
        .unwrap_or_default();
    // As the gateway reads them: a trusted proxy may name the client, scheme and host.
    let forwarded = forwarded::read(
        &request.headers,
        Some(exchange.client.ip()),
        &config.trusted_proxies,
    );
    let info = meta::RequestInfo {
        method: &request.method,
        uri: &request.uri,
        version: Version::HTTP_11,
        headers: &request.headers,
        remote: forwarded.client.map_or(exchange.client, |ip| {
            std::net::SocketAddr::new(ip, exchange.client.port())
        }),
        forwarded: &forwarded,
        tls: false,
        local: exchange.server,
        content_length: request.content_length(),
        remote_user: user.as_deref(),
        id: &id,
    };
    let (vars, fcgi_params, cgi) = match &backend {
        Backend::Cgi(script) => {
            let vars = meta::build(&config, &script.target(), &info)?;
            let pairs = vars
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_encoded_bytes()));
            let encoded = params::encode_pairs(pairs)
                .map_err(|e| ExplainError::Request(e.to_string()))?
                .freeze();
            let cgi = cgi::run(script, path, &exchange.response, line.as_ref());
            (vars, encoded, Some(cgi))
        }
        Backend::Fastcgi(app) => {
            let vars = meta::build(&config, &app.target(), &info)?;
            (vars.clone(), fastcgi_params(app, request, vars)?, None)
        }
    };
    let decoded = params::decode_pairs(&fcgi_params).unwrap_or_default();
    // A `[[wsgi]]` mount's workers may serve several requests at once (`threads`).
    let threads = match &backend {
        Backend::Fastcgi(app) => wsgi::environ::threads(app.mount),
        Backend::Cgi(_) => 1,
    };
    let wsgi_environ = wsgi::environ::view_with_threads(&decoded, threads)
        .into_iter()
        .map(|(k, v)| {
            let v = variables::masked(&k, &v, show);
            (k, v)
        })
        .collect();
    let response = &exchange.response;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(Explanation {
        method: request.method.to_string(),
        url: request.url.clone(),
        route,
        meta_variables: variables::list(&vars, &config, show),
        cgi,
        fastcgi_records: records::list(&fcgi_params, &request.body, show),
        wsgi_environ,
        timing_ms: Timing {
            first_byte: ms(response.first_byte),
            last_byte: ms(response.last_byte),
        },
        status: response.status,
        response_body_bytes: response.body_bytes,
        response_complete: response.complete,
    })
}

/// How long a script may take to exit once its response has ended, before the server is
/// shut down anyway (ending it).
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// About what a launched worker takes to start, as `portico bench` waits for it too.
const WORKERS_START: Duration = Duration::from_millis(200);

/// Starts the server, sends the request (twice when workers may still be starting),
/// waits for its access line, stops the server; with the user that the mount's
/// authentication lets in, as the gateway finds it for REMOTE_USER.
async fn serve_one(
    config: &Arc<Config>,
    request: &Request,
    warm_up: bool,
    lines: &AccessLines,
) -> Result<(Exchange, Option<String>), ExplainError> {
    let local = server::Local::start(config.clone()).await?;
    let sent = async {
        if warm_up {
            // Launched workers start in the background: a moment for all of them to
            // accept, then a first request that meets the slowest.
            tokio::time::sleep(WORKERS_START).await;
            let _ = exchange::send(local.addr(), request).await?;
            lines.wait_for(1, EXIT_GRACE).await;
        }
        let (exchange, connection) = exchange::send(local.addr(), request).await?;
        // Portico ends a script whose client has gone, and shutting down ends every
        // script: the connection stays open until the script has exited and its line is
        // written, so that the line shows how the script ended by itself. Then it closes,
        // or the server's lingering close would wait for it.
        lines.wait_for(1 + usize::from(warm_up), EXIT_GRACE).await;
        drop(connection);
        Ok::<_, std::io::Error>(exchange)
    }
    .await;
    local.shutdown().await?;
    let user = match router::auth_for(config, request.uri.path()) {
        Some(auth) => auth.check(&request.headers).await.ok(),
        None => None,
    };
    Ok((sent?, user))
}

/// The FCGI_PARAMS content the FastCGI backend sends: the meta-variables, then the
/// mount's own params, encoded by the job the backend runs.
fn fastcgi_params(
    app: &router::FastcgiMatch<'_>,
    request: &Request,
    vars: meta::MetaVars,
) -> Result<Bytes, ExplainError> {
    let backend_request = BackendRequest {
        meta: vars,
        body: RequestBody::None,
        // Never written: no request runs from this job.
        line: RequestLine {
            id: RequestId::new(),
            metrics: None,
            method: request.method.clone(),
            path: request.uri.path().into(),
            client: std::net::Ipv4Addr::LOCALHOST.into(),
            started: Instant::now(),
            access: None,
        },
    };
    Ok(fastcgi::job::Job::new(app, backend_request)?.params)
}

fn describe_route(backend: &Backend<'_>) -> Route {
    let lossy = |text: &std::ffi::OsStr| text.to_string_lossy().into_owned();
    match backend {
        Backend::Fastcgi(app) => Route {
            kind: fastcgi_kind(app.mount),
            mount: app.mount.mount.clone(),
            script_name: lossy(&app.script_name),
            path_info: lossy(&app.path_info),
            script_filename: app.script_filename.display().to_string(),
        },
        Backend::Cgi(script) => Route {
            kind: "cgi",
            mount: script.mount.mount.clone(),
            script_name: lossy(&script.script_name),
            path_info: lossy(&script.path_info),
            script_filename: script.script_path.display().to_string(),
        },
    }
}

/// "wsgi" for a mount whose launched workers run the WSGI adapter, else "fastcgi".
fn fastcgi_kind(mount: &config::FastcgiMount) -> &'static str {
    match mount.launch.as_ref().and_then(|l| l.script) {
        Some(_) => "wsgi",
        None => "fastcgi",
    }
}
