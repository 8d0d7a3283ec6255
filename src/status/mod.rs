//! The operators' status page (like Apache's server-status and php-fpm's status): uptime,
//! totals and rates since the start and over the last minute, latency percentiles per
//! mount, the scoreboard of what runs now, and per FastCGI or WSGI mount, persistent CGI
//! runner and authorizer its endpoints' load and health and a launched app's workers. HTML for people, JSON with `?json`, the
//! same data in both. Off unless `[status] enabled`; loopback clients only unless
//! `allow_remote`.
//!
//! - `collect`: what the page shows, gathered once per view; the JSON is it, serialized;
//! - `scoreboard`: the CGI scripts and FastCGI requests running now, and which are slow;
//! - `html`: the page for people.
//!
//! It reads a `Source`, never the gateway, and runs only when the page is asked for.

mod collect;
mod html;
mod scoreboard;

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Response, Uri, header};

use crate::body::{ResponseBody, full};
use crate::config::{Config, FastcgiMount, StatusPage};
use crate::error::Error;
use crate::fastcgi::pool::Pool;
use crate::metrics::{MountLabel, UpstreamLabel, WorkerLabels, metrics};
use crate::supervisor::AppStatus;
use crate::wsgi;

/// What the page reads from a running server (the gateway provides it), so that the page
/// knows nothing of how requests are served.
pub trait Source {
    fn config(&self) -> &Config;
    fn cgi_running(&self) -> usize;
    fn pool(&self, mount: &str) -> Option<&Arc<Pool>>;
    fn app_status(&self, mount: &str) -> Option<AppStatus>;
}

/// When the process started serving, for the page's uptime (`mark_start`).
static STARTED: LazyLock<(SystemTime, Instant)> =
    LazyLock::new(|| (SystemTime::now(), Instant::now()));

/// Notes the start; the first gateway calls it, and a reload keeps the first time.
pub fn mark_start() {
    LazyLock::force(&STARTED);
}

/// The states a launched worker is shown in, each a `portico_workers` gauge.
const WORKER_STATES: [&str; 7] = [
    "idle",
    "busy",
    "restarting",
    "draining",
    "stopping",
    "killing",
    "stopped",
];

/// Every pool of FastCGI connections the config makes, with its kind as the page names it:
/// the `[[fastcgi]]` and `[[wsgi]]` mounts, then the hidden ones that no URL routes to
/// (the runners of persistent CGI scripts, the authorizers), whose workers an operator
/// watches as much as any.
fn apps(config: &Config) -> impl Iterator<Item = (&FastcgiMount, &'static str)> {
    let routed = config.fastcgi.iter().map(|m| {
        let kind = if wsgi::environ::is_wsgi(m) {
            "wsgi"
        } else {
            "fastcgi"
        };
        (m, kind)
    });
    let runners = config.persistent_runners().map(|m| (m, "persistent"));
    routed
        .chain(runners)
        .chain(config.authorizers().map(|m| (m, "authorizer")))
}

/// Sets the gauges of `/metrics` from what this page shows, as it is scraped.
pub fn sample_gauges(gateway: &impl Source) {
    let m = metrics();
    m.cgi_running.set(gateway.cgi_running() as i64);
    for (mount, _) in apps(gateway.config()) {
        let label = MountLabel {
            mount: mount.mount.clone(),
        };
        if let Some(pool) = gateway.pool(&mount.mount) {
            m.queue_waiting
                .get_or_create(&label)
                .set(pool.waiting() as i64);
            let now = std::time::Instant::now();
            for endpoint in pool.endpoints() {
                let down = endpoint.state().down_until.is_some_and(|until| until > now);
                let upstream = UpstreamLabel {
                    upstream: endpoint.address.to_string(),
                };
                m.upstream_down
                    .get_or_create(&upstream)
                    .set(i64::from(down));
            }
        }
        if let Some(app) = gateway.app_status(&mount.mount) {
            for state in WORKER_STATES {
                let count = app.workers.iter().filter(|w| w.state == state).count();
                let labels = WorkerLabels {
                    mount: mount.mount.clone(),
                    state,
                };
                m.workers.get_or_create(&labels).set(count as i64);
            }
        }
    }
}

pub fn respond(
    gateway: &impl Source,
    page: &StatusPage,
    uri: &Uri,
    remote: SocketAddr,
) -> Result<Response<ResponseBody>, Error> {
    if !page.allow_remote && !remote.ip().to_canonical().is_loopback() {
        return Err(Error::Forbidden("the status page is for loopback clients"));
    }
    let status = collect::collect(gateway);
    let json = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "json" || p.starts_with("json=")));
    let (body, kind) = if json {
        let text = serde_json::to_string_pretty(&status).unwrap_or_default();
        (text, "application/json")
    } else {
        (html::render(&status), "text/html; charset=utf-8")
    };
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
