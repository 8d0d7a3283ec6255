//! The hyper service: route the request, run its script, turn errors into responses and
//! write the access-log line for requests that never reached a script (the script's
//! owner writes it for the others, with the script's pid, exit status and rusage).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;

use crate::access_log::{AccessLog, Pending};
use crate::backend::{Outcome, Request as BackendRequest, RequestLine, Runner, Stop};
use crate::body::{ClientBody, RequestBody, ResponseBody, full};
use crate::cgi::Cgi;
use crate::config::Config;
use crate::connection::Takeover;
use crate::error::Error;
use crate::fastcgi::client::FastCgi;
use crate::forwarded::{self, Forwarded};
use crate::metrics::{MountMetrics, metrics};
use crate::request_id::RequestId;
use crate::supervisor::{AppStatus, Supervisor};
use crate::{explain, fastcgi, meta, router, sendfile, status};

mod authorize;
mod persistent;

/// Where a trusted proxy's id for the request comes, unless `request_id_header` names another.
static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The connection a request came on.
#[derive(Clone)]
pub struct Peer {
    /// The client: the socket's peer, or the client a trusted proxy names.
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// What a trusted proxy said of the request (`forwarded`); nothing when none did.
    pub forwarded: Forwarded,
    /// The connection is TLS (HTTPS=on, REQUEST_SCHEME=https).
    pub tls: bool,
    /// The connection came over a unix socket: `remote` stands for this host.
    pub unix: bool,
    /// For NPH responses on HTTP/1.x: the socket itself.
    pub takeover: Option<Takeover>,
}

pub struct Gateway {
    config: Arc<Config>,
    access_log: Option<Arc<AccessLog>>,
    cgi: Cgi,
    fastcgi: FastCgi,
    /// The launched apps' supervisors, by mount.
    supervisors: Vec<(String, Supervisor)>,
    /// The persistent scripts that run as plain CGI, their runner having failed them.
    marks: crate::persistent::Marks,
}

impl Gateway {
    /// Also starts the workers of every `launch` mount.
    pub fn new(config: Arc<Config>) -> std::io::Result<Gateway> {
        status::mark_start();
        // Opened with each gateway, so that a reload lets go of a rotated file.
        let access_log = match &config.access_log {
            Some(file) => Some(Arc::new(AccessLog::open(&file.path, file.format).map_err(
                |e| std::io::Error::new(e.kind(), format!("{}: {e}", file.path.display())),
            )?)),
            None => None,
        };
        let cgi = Cgi::new(config.limits.clone(), &config.script_env)?;
        let fastcgi = FastCgi::new(&config);
        let mut supervisors = Vec::new();
        let hidden = config.authorizers().chain(config.persistent_runners());
        for mount in config.fastcgi.iter().chain(hidden) {
            let (Some(launch), Some(pool)) = (&mount.launch, fastcgi.pool(&mount.mount)) else {
                continue;
            };
            let supervisor = Supervisor::start(
                mount,
                launch,
                pool.clone(),
                &config.script_env,
                config.limits.kill_grace,
            )?;
            supervisors.push((mount.mount.clone(), supervisor));
        }
        Ok(Gateway {
            config,
            access_log,
            cgi,
            fastcgi,
            supervisors,
            marks: crate::persistent::Marks::default(),
        })
    }

    /// Ends every script and FastCGI request still running, waits for them, then stops
    /// the launched workers.
    pub async fn kill_all_and_wait(&self) {
        tokio::join!(
            self.cgi.kill_all_and_wait(),
            self.fastcgi.kill_all_and_wait()
        );
        for (_, supervisor) in &self.supervisors {
            supervisor.stop().await;
        }
    }

    /// Waits until every script and FastCGI request started so far has ended.
    pub async fn wait_idle(&self) {
        tokio::join!(self.cgi.wait_idle(), self.fastcgi.wait_idle());
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn fastcgi(&self) -> &FastCgi {
        &self.fastcgi
    }

    pub fn cgi(&self) -> &Cgi {
        &self.cgi
    }

    /// A launched app's workers as its supervisor last published them.
    pub fn app_status(&self, mount: &str) -> Option<AppStatus> {
        self.supervisors
            .iter()
            .find(|(m, _)| m == mount)
            .map(|(_, s)| s.status.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    pub async fn handle(
        &self,
        request: Request<Incoming>,
        mut peer: Peer,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let mut given = None;
        let trusted = &self.config.trusted_proxies;
        let from = (!peer.unix).then(|| peer.remote.ip());
        if trusted.trusts(from) {
            // A trusted proxy's own id for the request is kept, joining its log with ours.
            let name = self
                .config
                .request_id_header
                .as_ref()
                .unwrap_or(&X_REQUEST_ID);
            given = request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(RequestId::given);
            peer.forwarded = forwarded::read(request.headers(), from, trusted);
            if let Some(client) = peer.forwarded.client {
                peer.remote = SocketAddr::new(client, peer.remote.port());
            }
        }
        let id = given.unwrap_or_default();
        let method = request.method().clone();
        let path = request.uri().path().into();
        let client = peer.remote.ip().to_canonical();
        let access = self
            .access_log
            .as_ref()
            .map(|log| log.begin(&request, peer.remote.ip()));
        // The mount that took the request, once one has: its counters count an error too.
        let mut counted = None;
        let served = self.serve(
            request,
            peer,
            started,
            id.clone(),
            access.as_ref(),
            &mut counted,
        );
        let mut response = match served.await {
            Ok(response) => response,
            Err(error) => {
                let line = RequestLine {
                    id: id.clone(),
                    metrics: Some(counted.unwrap_or_else(|| metrics().mount(""))),
                    method,
                    path,
                    client,
                    started,
                    access,
                };
                let status = error.status().as_u16();
                line.write(status, 0, &Stop::Ended, Runner::Gateway, Some(&error));
                error_response(&error, &self.config)
            }
        };
        // An NPH script's head is its own, written as it is; this field goes nowhere then.
        if let Some(name) = &self.config.request_id_header
            && let Ok(value) = HeaderValue::from_str(&id.to_string())
        {
            response.headers_mut().insert(name.clone(), value);
        }
        response
    }

    /// The user the Basic authentication of the path's mount lets in (also for the access
    /// log); `None` for a mount without it.
    async fn authenticate(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        access: Option<&Pending>,
    ) -> Result<Option<String>, Error> {
        let Some(auth) = router::auth_for(&self.config, path) else {
            return Ok(None);
        };
        let user = auth.check(headers).await?;
        if let Some(access) = access {
            access.set_user(&user);
        }
        Ok(Some(user))
    }

    async fn serve(
        &self,
        request: Request<Incoming>,
        peer: Peer,
        started: Instant,
        id: RequestId,
        access: Option<&Pending>,
        counted: &mut Option<Arc<MountMetrics>>,
    ) -> Result<Response<ResponseBody>, Error> {
        let limits = &self.config.limits;
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > limits.max_header_bytes {
            return Err(Error::HeadersTooLarge);
        }
        if request.method() == Method::CONNECT {
            return Err(Error::MethodNotAllowed);
        }
        if let Some(page) = &self.config.status
            && request.uri().path() == page.path
        {
            let response = status::respond(self, page, request.uri(), peer.remote)?;
            if let Some(access) = access {
                let bytes = hyper::body::Body::size_hint(response.body()).exact();
                access.finish(response.status().as_u16(), bytes.unwrap_or(0));
            }
            return Ok(response);
        }
        if let Some(page) = &self.config.explain
            && request.uri().path() == page.path
        {
            let (uri, headers) = (request.uri(), request.headers());
            let response = explain::page::respond(&self.config, page, uri, headers, peer.remote);
            let response = response.await?;
            if let Some(access) = access {
                let bytes = hyper::body::Body::size_hint(response.body()).exact();
                access.finish(response.status().as_u16(), bytes.unwrap_or(0));
            }
            return Ok(response);
        }
        if let Some(page) = &self.config.metrics
            && request.uri().path() == page.path
        {
            if !page.allow_remote && !peer.remote.ip().to_canonical().is_loopback() {
                return Err(Error::Forbidden("the metrics are for loopback clients"));
            }
            status::sample_gauges(self);
            let mut response = Response::new(full(metrics().encode()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return Ok(response);
        }
        let (parts, body) = request.into_parts();
        // Before the path is resolved and the body read: a client without credentials
        // learns nothing of the mount and sends its body for nothing.
        let mut user = self
            .authenticate(parts.uri.path(), &parts.headers, access)
            .await?;
        let mut route = Route::resolve(&self.config, parts.uri.path())?;
        *counted = Some(metrics().mount(route.mount()));
        // Before the body is read, as Basic authentication is: a client the authorizer
        // turns away sends its body for nothing.
        let asking = |counted: &Option<Arc<MountMetrics>>| authorize::Asking {
            id: &id,
            started,
            access,
            counted: counted.clone(),
        };
        let info = meta::RequestInfo {
            method: &parts.method,
            uri: &parts.uri,
            version: parts.version,
            headers: &parts.headers,
            remote: peer.remote,
            local: peer.local,
            content_length: None,
            remote_user: user.as_deref(),
            id: &id,
            forwarded: &peer.forwarded,
            tls: peer.tls,
        };
        let path = parts.uri.path();
        let asked = self.authorize(path, &route, &info, asking(counted));
        let mut granted = match asked.await? {
            Ok(granted) => granted,
            Err(answer) => return Ok(answer),
        };
        let mut body = RequestBody::prepare(
            &parts.headers,
            ClientBody::new(body, limits.body_read_timeout),
            limits.max_body_bytes,
            limits.body_memory_bytes,
        )
        .await?;
        let mut method = parts.method;
        let mut uri = parts.uri;

        for _ in 0..=limits.max_local_redirects {
            let info = meta::RequestInfo {
                method: &method,
                uri: &uri,
                version: parts.version,
                headers: &parts.headers,
                remote: peer.remote,
                local: peer.local,
                content_length: body.length(),
                remote_user: user.as_deref(),
                id: &id,
                forwarded: &peer.forwarded,
                tls: peer.tls,
            };
            let mut request = |mut meta: meta::MetaVars| {
                authorize::grant(&mut meta, &granted);
                BackendRequest {
                    meta,
                    body: std::mem::replace(&mut body, RequestBody::None),
                    line: RequestLine {
                        id: id.clone(),
                        metrics: counted.clone(),
                        method: method.clone(),
                        path: uri.path().into(),
                        client: peer.remote.ip().to_canonical(),
                        started,
                        access: access.cloned(),
                    },
                }
            };
            let outcome = match &route {
                Route::Cgi(script) => {
                    let meta = meta::build(&self.config, &script.target(), &info)?;
                    self.run_script(script, request(meta)).await?
                }
                Route::Fastcgi(app) => {
                    let meta = meta::build(&self.config, &app.target(), &info)?;
                    let job = fastcgi::job::Job::new(app, request(meta))?;
                    self.fastcgi.run(job).await?
                }
            };
            match outcome {
                Outcome::Response(response) => {
                    return match route.x_sendfile() {
                        Some(dir) => sendfile::apply(dir, &method, &parts.headers, response).await,
                        None => Ok(response),
                    };
                }
                Outcome::Nph { response, raw_head } => {
                    return Ok(nph_response(response, raw_head, &peer, parts.version));
                }
                Outcome::Failed(error) => return Ok(error_response(&error, &self.config)),
                Outcome::LocalRedirect(location) => {
                    // RFC 3875 §6.2.2: the server fetches the new path as a GET, without the body.
                    uri = location
                        .parse::<Uri>()
                        .map_err(|_| Error::from(crate::cgi::response::HeadError::BadLocation))?;
                    method = Method::GET;
                    user = self
                        .authenticate(uri.path(), &parts.headers, access)
                        .await?;
                    route = Route::resolve(&self.config, uri.path())?;
                    *counted = Some(metrics().mount(route.mount()));
                    let info = meta::RequestInfo {
                        method: &method,
                        uri: &uri,
                        version: parts.version,
                        headers: &parts.headers,
                        remote: peer.remote,
                        local: peer.local,
                        content_length: None,
                        remote_user: user.as_deref(),
                        id: &id,
                        forwarded: &peer.forwarded,
                        tls: peer.tls,
                    };
                    let asked = self.authorize(uri.path(), &route, &info, asking(counted));
                    granted = match asked.await? {
                        Ok(granted) => granted,
                        Err(answer) => return Ok(answer),
                    };
                }
            }
        }
        Err(Error::RedirectLoop(limits.max_local_redirects))
    }
}

impl status::Source for Gateway {
    fn config(&self) -> &Config {
        &self.config
    }

    fn cgi_running(&self) -> usize {
        self.cgi.running()
    }

    fn pool(&self, mount: &str) -> Option<&Arc<crate::fastcgi::pool::Pool>> {
        self.fastcgi.pool(mount)
    }

    fn app_status(&self, mount: &str) -> Option<AppStatus> {
        Gateway::app_status(self, mount)
    }
}

/// Which backend answers a path.
enum Route<'c> {
    Cgi(router::Match<'c>),
    Fastcgi(router::FastcgiMatch<'c>),
}

impl<'c> Route<'c> {
    fn resolve(config: &'c Config, path: &str) -> Result<Route<'c>, Error> {
        match router::resolve_fastcgi(config, path) {
            Some(app) => Ok(Route::Fastcgi(app?)),
            None => Ok(Route::Cgi(router::resolve(config, path)?)),
        }
    }

    fn mount(&self) -> &str {
        match self {
            Route::Cgi(script) => &script.mount.mount,
            Route::Fastcgi(app) => &app.mount.mount,
        }
    }

    /// The directory X-Sendfile may name files in, when the mount allows it.
    fn x_sendfile(&self) -> Option<&std::path::Path> {
        match self {
            Route::Cgi(script) => script.mount.x_sendfile.as_deref(),
            Route::Fastcgi(app) => app.mount.x_sendfile.as_deref(),
        }
    }

    fn target(&self) -> meta::Target<'_> {
        match self {
            Route::Cgi(script) => script.target(),
            Route::Fastcgi(app) => app.target(),
        }
    }
}

/// RFC 3875 §5: on HTTP/1.x the script's bytes go to the client unchanged and hyper's
/// own response to this request is swallowed; on HTTP/2 the parsed response is sent.
fn nph_response(
    response: Response<ResponseBody>,
    raw_head: bytes::Bytes,
    peer: &Peer,
    version: http::Version,
) -> Response<ResponseBody> {
    let Some(takeover) = peer
        .takeover
        .clone()
        .filter(|_| version <= http::Version::HTTP_11)
    else {
        return response;
    };
    takeover.send_raw(raw_head, response.into_body());
    let mut placeholder = Response::new(full(""));
    placeholder
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    placeholder
}

/// Portico's own answer for an error: the status and its name, nothing about the script.
pub fn error_response(error: &Error, config: &Config) -> Response<ResponseBody> {
    let status = error.status();
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let retry = config.limits.queue_timeout.as_secs().max(1);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    }
    if let Error::Unauthorized(realm) = error {
        // RFC 7617 §2; the realm was checked for quotes and control characters at start-up.
        if let Ok(value) =
            HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
        );
    }
    // Where the request's framing or body cannot be trusted, nothing after it on the
    // connection can be either.
    if matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::REQUEST_TIMEOUT
    ) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
