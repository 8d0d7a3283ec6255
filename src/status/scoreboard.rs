//! The scoreboard, as Apache's server-status has one: what runs now, request by request.
//! The CGI scripts come from `children` (every script Portico started and has not
//! reaped); a FastCGI or WSGI mount's requests from its pool's `in_flight`, each with the
//! worker serving it when Portico launched the app. A row older than `SLOW_SECONDS` is
//! marked slow, so that a stuck script or worker stands out among the quick ones.

use std::time::Instant;

use serde::Serialize;

use crate::children;
use crate::fastcgi::pool::Pool;
use crate::supervisor::WorkerStatus;

/// Past this age a request is marked slow: most requests a gateway serves take
/// milliseconds, and a page refreshed every 5 s then shows a stuck one on two views.
pub const SLOW_SECONDS: f64 = 3.0;

/// A CGI script running now.
#[derive(Serialize)]
pub(super) struct ScriptRow {
    /// SCRIPT_NAME.
    pub script: String,
    pub method: String,
    pub path: String,
    pub pid: i32,
    pub client: String,
    pub request_id: String,
    /// Since the script started.
    pub age_seconds: f64,
    pub slow: bool,
}

/// A FastCGI or WSGI request on its application now.
#[derive(Serialize)]
pub(super) struct RequestRow {
    pub method: String,
    pub path: String,
    pub client: String,
    pub request_id: String,
    /// Since its head came, including its wait for an endpoint.
    pub age_seconds: f64,
    pub slow: bool,
    /// The endpoint it went to: `unix:PATH` or `tcp:HOST:PORT`.
    pub upstream: String,
    /// The launched worker on that endpoint; `None` for an upstream Portico does not run.
    pub pid: Option<u32>,
}

/// The scripts running now, oldest first.
pub(super) fn scripts(now: Instant) -> Vec<ScriptRow> {
    children::scripts()
        .into_iter()
        .map(|(child, script)| {
            let age = now.saturating_duration_since(child.started).as_secs_f64();
            ScriptRow {
                script: script.script.to_string(),
                method: script.method,
                path: script.path,
                pid: child.pid,
                client: script.client,
                request_id: script.request_id,
                age_seconds: age,
                slow: age >= SLOW_SECONDS,
            }
        })
        .collect()
}

/// `pool`'s requests in flight, oldest first; `workers` names the pid behind each
/// launched endpoint.
pub(super) fn requests(pool: &Pool, workers: &[WorkerStatus], now: Instant) -> Vec<RequestRow> {
    pool.in_flight
        .list()
        .into_iter()
        .map(|request| {
            let upstream = request.endpoint.address.to_string();
            let pid = workers
                .iter()
                .find(|w| w.address == upstream)
                .and_then(|w| w.pid);
            let age = now.saturating_duration_since(request.started).as_secs_f64();
            RequestRow {
                method: request.method.to_string(),
                path: request.path.to_string(),
                client: request.client.to_string(),
                request_id: request.id.to_string(),
                age_seconds: age,
                slow: age >= SLOW_SECONDS,
                upstream,
                pid,
            }
        })
        .collect()
}
