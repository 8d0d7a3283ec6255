//! The operators' status page (like php-fpm's status and Apache's server-status): per
//! FastCGI mount, its endpoints' load and health and a launched app's workers; HTML for
//! people, JSON with `?json`. Off unless `[status] enabled`; loopback clients only unless
//! `allow_remote`.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime};

use html_escape::encode_text as escape;
use http::{HeaderValue, Response, Uri, header};
use serde::Serialize;

use crate::body::{ResponseBody, full};
use crate::config::{Config, StatusPage};
use crate::error::Error;
use crate::fastcgi::pool::Pool;
use crate::metrics::{MountLabel, UpstreamLabel, WorkerLabels, metrics};
use crate::supervisor::{AppStatus, WorkerStatus};
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

#[derive(Serialize)]
struct Status {
    /// RFC 3339, UTC.
    started: String,
    uptime_seconds: f64,
    /// Requests answered since the start, and their mean rate.
    requests: u64,
    requests_per_second: f64,
    cgi_running: usize,
    cgi_limit: usize,
    fastcgi: Vec<Mount>,
}

#[derive(Serialize)]
struct Mount {
    mount: String,
    /// `fastcgi`, or `wsgi` for a `[[wsgi]]` mount's workers.
    kind: &'static str,
    launched: bool,
    stopped: Option<String>,
    waiting: usize,
    endpoints: Vec<EndpointStatus>,
    workers: Vec<WorkerStatus>,
}

#[derive(Serialize)]
struct EndpointStatus {
    address: String,
    busy: usize,
    capacity: usize,
    served: u64,
    /// Of `served`, the requests the application failed.
    failed: u64,
    connect_failures: u64,
    healthy: bool,
    accepting: bool,
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

/// Sets the gauges of `/metrics` from what this page shows, as it is scraped.
pub fn sample_gauges(gateway: &impl Source) {
    let m = metrics();
    m.cgi_running.set(gateway.cgi_running() as i64);
    for mount in &gateway.config().fastcgi {
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
    let status = collect(gateway);
    let json = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "json" || p.starts_with("json=")));
    let (body, kind) = if json {
        let text = serde_json::to_string_pretty(&status).unwrap_or_default();
        (text, "application/json")
    } else {
        (html(&status), "text/html; charset=utf-8")
    };
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn collect(gateway: &impl Source) -> Status {
    let config = gateway.config();
    let now = Instant::now();
    let fastcgi = config
        .fastcgi
        .iter()
        .filter_map(|mount| {
            let pool = gateway.pool(&mount.mount)?;
            let app = gateway.app_status(&mount.mount);
            let endpoints = pool
                .endpoints()
                .iter()
                .map(|e| {
                    let s = e.state();
                    EndpointStatus {
                        address: e.address.to_string(),
                        busy: s.busy,
                        capacity: s.capacity,
                        served: s.served,
                        failed: s.failed,
                        connect_failures: s.failures,
                        healthy: s.down_until.is_none_or(|until| until <= now),
                        accepting: s.accepting,
                    }
                })
                .collect();
            Some(Mount {
                mount: mount.mount.clone(),
                kind: if wsgi::environ::is_wsgi(mount) {
                    "wsgi"
                } else {
                    "fastcgi"
                },
                launched: mount.launch.is_some(),
                stopped: pool.stopped(),
                waiting: pool.waiting(),
                endpoints,
                workers: app.map(|a| a.workers).unwrap_or_default(),
            })
        })
        .collect();
    let (started, since) = *STARTED;
    let uptime = since.elapsed().as_secs_f64();
    let requests = metrics().requests_total();
    Status {
        started: time::OffsetDateTime::from(started)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        uptime_seconds: uptime,
        requests,
        requests_per_second: requests as f64 / uptime.max(1.0),
        cgi_running: gateway.cgi_running(),
        cgi_limit: config.limits.max_concurrent_scripts,
        fastcgi,
    }
}

fn html(status: &Status) -> String {
    let mut out = String::from(
        "<!doctype html><meta charset=utf-8><title>Portico status</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f4f4f4}\
         td:first-child,th:first-child{text-align:left}.bad{color:#b00}</style><h1>Portico status</h1>",
    );
    let _ = write!(
        out,
        "<p>Up since {} ({:.0} s); {} requests, {:.1} per second</p>\
         <p>CGI scripts running: {} of {}</p>",
        escape(&status.started),
        status.uptime_seconds,
        status.requests,
        status.requests_per_second,
        status.cgi_running,
        status.cgi_limit
    );
    for mount in &status.fastcgi {
        let _ = write!(
            out,
            "<h2>{} {}</h2><p>{}; requests waiting: {}</p>",
            if mount.kind == "wsgi" {
                "WSGI"
            } else {
                "FastCGI"
            },
            escape(&mount.mount),
            match &mount.stopped {
                Some(reason) => format!("<span class=bad>stopped: {}</span>", escape(reason)),
                None if mount.launched => "launched workers".to_owned(),
                None => "upstreams".to_owned(),
            },
            mount.waiting
        );
        out.push_str(
            "<table><tr><th>endpoint</th><th>busy</th><th>capacity</th><th>served</th>\
             <th>failed</th><th>connect failures</th><th>health</th></tr>",
        );
        for e in &mount.endpoints {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.address),
                e.busy,
                e.capacity,
                e.served,
                e.failed,
                e.connect_failures,
                if e.healthy {
                    "ok"
                } else {
                    "<span class=bad>down</span>"
                }
            );
        }
        out.push_str("</table>");
        if mount.launched {
            out.push_str(
                "<table><tr><th>worker</th><th>pid</th><th>state</th><th>requests</th>\
                 <th>age (s)</th><th>restarts</th><th>last exit</th></tr>",
            );
            for w in &mount.workers {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td></tr>",
                    w.slot,
                    w.pid.map_or("-".to_owned(), |p| p.to_string()),
                    w.state,
                    w.requests,
                    w.age_seconds,
                    w.restarts,
                    escape(w.last_exit.as_deref().unwrap_or("-"))
                );
            }
            out.push_str("</table>");
        }
    }
    out
}
