//! What the page shows, gathered once per view from the `Source`, the metrics and the
//! scoreboard. It is serialized as it is for `?json` (docs/status.md is its schema, field
//! by field) and rendered by `html`, so that both always carry the same data.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use super::scoreboard::{self, RequestRow, ScriptRow};
use super::{STARTED, Source};
use crate::metrics::metrics;
use crate::supervisor::WorkerStatus;
use crate::traffic::{self, Summary};
use crate::wsgi;

#[derive(Serialize)]
pub(super) struct Status {
    pub version: &'static str,
    /// RFC 3339, UTC.
    pub started: String,
    pub uptime_seconds: f64,
    /// Requests answered since the start, and their mean rate.
    pub requests: u64,
    pub requests_per_second: f64,
    /// Response body bytes sent since the start, and their mean rate.
    pub bytes: u64,
    pub bytes_per_second: f64,
    pub last_minute: Rates,
    pub cgi_running: usize,
    pub cgi_limit: usize,
    pub cgi_scripts: Vec<ScriptRow>,
    /// Every mount's traffic and latency, in the config's order.
    pub mounts: Vec<MountTraffic>,
    pub fastcgi: Vec<Mount>,
}

/// Requests and bytes over the recent window.
#[derive(Serialize, Default)]
pub(super) struct Rates {
    /// The window: the last minute, or the uptime when shorter.
    pub seconds: f64,
    pub requests: u64,
    pub bytes: u64,
    pub requests_per_second: f64,
    pub bytes_per_second: f64,
}

#[derive(Serialize)]
pub(super) struct MountTraffic {
    pub mount: String,
    /// `cgi`, `fastcgi`, `wsgi`, or `none` for requests answered before a mount took them.
    pub kind: &'static str,
    pub requests: u64,
    pub bytes: u64,
    pub last_minute: Rates,
    /// Over the last minute's requests; `None` without any.
    pub latency_ms: Option<Latency>,
}

/// Exact (nearest rank) over at most the latest `traffic::SAMPLES` requests.
#[derive(Serialize)]
pub(super) struct Latency {
    pub samples: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Serialize)]
pub(super) struct Mount {
    pub mount: String,
    /// `fastcgi`, `wsgi` for a `[[wsgi]]` mount's workers, `persistent` for the runners
    /// of a CGI mount's persistent scripts, `authorizer` for a mount's authorizer.
    pub kind: &'static str,
    /// A `[[wsgi]]` mount's `module:callable`.
    pub app: Option<String>,
    pub launched: bool,
    pub stopped: Option<String>,
    pub waiting: usize,
    pub in_flight: Vec<RequestRow>,
    pub endpoints: Vec<EndpointStatus>,
    pub workers: Vec<WorkerStatus>,
}

#[derive(Serialize)]
pub(super) struct EndpointStatus {
    pub address: String,
    pub busy: usize,
    pub capacity: usize,
    pub served: u64,
    /// Of `served`, the requests the application failed.
    pub failed: u64,
    pub connect_failures: u64,
    pub healthy: bool,
    pub accepting: bool,
}

pub(super) fn collect(gateway: &impl Source) -> Status {
    let config = gateway.config();
    let now = Instant::now();
    let (started, since) = *STARTED;
    let uptime = since.elapsed().as_secs_f64();
    let window = uptime.clamp(1.0, traffic::WINDOW_SECONDS as f64);
    let traffic: HashMap<String, Summary> = metrics()
        .mounts()
        .into_iter()
        .map(|(mount, m)| (mount, m.traffic.summary()))
        .collect();
    let cgi = config.cgi.iter().map(|m| (m.mount.as_str(), "cgi"));
    let fastcgi = config.fastcgi.iter().map(|m| {
        let kind = if wsgi::environ::is_wsgi(m) {
            "wsgi"
        } else {
            "fastcgi"
        };
        (m.mount.as_str(), kind)
    });
    let mut named: Vec<(&str, &str)> = cgi.chain(fastcgi).collect();
    // `""` is also a CGI mount at the root; its requests are then that mount's.
    if !named.iter().any(|(mount, _)| mount.is_empty())
        && traffic.get("").is_some_and(|t| t.requests > 0)
    {
        named.push(("", "none"));
    }
    let mounts = named
        .into_iter()
        .map(|(mount, kind)| {
            let t = traffic.get(mount).cloned().unwrap_or_default();
            MountTraffic {
                mount: mount.to_owned(),
                kind,
                requests: t.requests,
                bytes: t.bytes,
                last_minute: rates(window, t.recent_requests, t.recent_bytes),
                latency_ms: t.latency.map(|l| Latency {
                    samples: l.samples,
                    p50: l.p50.as_secs_f64() * 1000.0,
                    p90: l.p90.as_secs_f64() * 1000.0,
                    p99: l.p99.as_secs_f64() * 1000.0,
                }),
            }
        })
        .collect();
    let bytes = traffic.values().map(|t| t.bytes).sum::<u64>();
    let recent = traffic.values().fold((0, 0), |(r, b), t| {
        (r + t.recent_requests, b + t.recent_bytes)
    });
    let requests = metrics().requests_total();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        started: time::OffsetDateTime::from(started)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        uptime_seconds: uptime,
        requests,
        requests_per_second: requests as f64 / uptime.max(1.0),
        bytes,
        bytes_per_second: bytes as f64 / uptime.max(1.0),
        last_minute: rates(window, recent.0, recent.1),
        cgi_running: gateway.cgi_running(),
        cgi_limit: config.limits.max_concurrent_scripts,
        cgi_scripts: scoreboard::scripts(now),
        mounts,
        fastcgi: fastcgi_mounts(gateway, now),
    }
}

fn rates(seconds: f64, requests: u64, bytes: u64) -> Rates {
    Rates {
        seconds,
        requests,
        bytes,
        requests_per_second: requests as f64 / seconds,
        bytes_per_second: bytes as f64 / seconds,
    }
}

fn fastcgi_mounts(gateway: &impl Source, now: Instant) -> Vec<Mount> {
    super::apps(gateway.config())
        .filter_map(|(mount, kind)| {
            let pool = gateway.pool(&mount.mount)?;
            let workers = gateway
                .app_status(&mount.mount)
                .map(|a| a.workers)
                .unwrap_or_default();
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
                kind,
                app: wsgi::mount::app(mount),
                launched: mount.launch.is_some(),
                stopped: pool.stopped(),
                waiting: pool.waiting(),
                in_flight: scoreboard::requests(pool, &workers, now),
                endpoints,
                workers,
            })
        })
        .collect()
}
