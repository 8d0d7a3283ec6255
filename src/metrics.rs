//! Prometheus metrics, served at `[metrics]`'s path in the text exposition format
//! (loopback clients only unless `allow_remote`). Each fact is counted where the product
//! already knows it: requests by the one access-line writer (`backend::log`), spawns and
//! deadline kills by the CGI run, FastCGI connections by the pool, worker restarts by the
//! supervisor.
//!
//! One registry for the process: counters go on across a SIGHUP reload, as Apache's
//! server-status totals do. A mount's counters are made once (`Metrics::mount`) and then
//! counted without a lock or an allocation per request.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::traffic::Traffic;

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<MountLabel, Histogram, fn() -> Histogram>,
    mounts: Mutex<HashMap<String, Arc<MountMetrics>>>,
    pub cgi_spawns: Counter,
    pub cgi_spawn_failures: Counter,
    /// Scripts ended at a deadline, by which one.
    pub cgi_deadline_kills: Family<DeadlineLabel, Counter>,
    /// Processes killed because they escaped a script's or worker's process group (`orphans`).
    pub orphans_killed: Counter,
    /// FastCGI connections, by upstream and whether opened or reused.
    pub fastcgi_connections: Family<ConnectionLabels, Counter>,
    /// Launched workers restarted after an exit, by mount.
    pub worker_restarts: Family<MountLabel, Counter>,
    /// Launched workers recycled, by mount and reason (`max_requests`, `max_memory`, `idle`).
    pub worker_recycles: Family<RecycleLabels, Counter>,
    /// Read when scraped (`status::sample_gauges`): scripts running, requests waiting for a
    /// FastCGI connection, launched workers by state, upstreams marked down.
    pub cgi_running: Gauge,
    pub queue_waiting: Family<MountLabel, Gauge>,
    /// How long the requests that found every worker busy waited in line, by mount.
    queue_waits: Family<MountLabel, Histogram, fn() -> Histogram>,
    pub workers: Family<WorkerLabels, Gauge>,
    pub upstream_down: Family<UpstreamLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecycleLabels {
    pub mount: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    pub upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub mount: String,
    /// As the status page names it: `idle`, `busy`, `restarting`...
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    mount: String,
    method: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MountLabel {
    pub mount: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadlineLabel {
    pub deadline: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub upstream: String,
    /// `opened` or `reused`.
    pub how: &'static str,
}

/// Method classes: the methods a gateway sees most, and the rest.
const METHODS: [&str; 4] = ["GET", "HEAD", "POST", "other"];
const STATUSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One mount's request counters, by method class and status class, and its durations;
/// and its traffic as the status page shows it.
pub struct MountMetrics {
    requests: [[Counter; STATUSES.len()]; METHODS.len()],
    duration: Histogram,
    pub traffic: Traffic,
}

impl MountMetrics {
    pub fn record(&self, method: &Method, status: u16, bytes: u64, duration: Duration) {
        let method = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            _ => 3,
        };
        let status = usize::from(status.clamp(100, 599) / 100 - 1);
        self.requests[method][status].inc();
        self.duration.observe(duration.as_secs_f64());
        self.traffic.record(duration, bytes);
    }
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn queue_wait_histogram() -> Histogram {
    // 0.25 ms (a worker freed at once) to about 16 s (past the default queue timeout).
    Histogram::new(exponential_buckets(0.00025, 2.0, 17))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portico");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by mount (empty before a mount took it), method and status class",
            requests.clone(),
        );
        let durations = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "From the request's head to its access line, by mount",
            durations.clone(),
        );
        let cgi_spawns = Counter::default();
        registry.register("cgi_spawns", "CGI scripts started", cgi_spawns.clone());
        let cgi_spawn_failures = Counter::default();
        registry.register(
            "cgi_spawn_failures",
            "CGI scripts that could not be started",
            cgi_spawn_failures.clone(),
        );
        let orphans_killed = Counter::default();
        registry.register(
            "orphans_killed",
            "Processes killed because they escaped the process group of a script or worker",
            orphans_killed.clone(),
        );
        let cgi_deadline_kills = Family::<DeadlineLabel, Counter>::default();
        registry.register(
            "cgi_deadline_kills",
            "CGI scripts whose group was ended at a deadline, by deadline",
            cgi_deadline_kills.clone(),
        );
        let fastcgi_connections = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "fastcgi_connections",
            "FastCGI connections a request went out on, opened for it or reused",
            fastcgi_connections.clone(),
        );
        let worker_restarts = Family::<MountLabel, Counter>::default();
        registry.register(
            "worker_restarts",
            "Launched workers restarted after they exited, by mount",
            worker_restarts.clone(),
        );
        let cgi_running = Gauge::default();
        registry.register(
            "cgi_running",
            "CGI scripts running now",
            cgi_running.clone(),
        );
        let queue_waiting = Family::<MountLabel, Gauge>::default();
        registry.register(
            "queue_waiting",
            "Requests waiting for a connection to a FastCGI mount's application, by mount",
            queue_waiting.clone(),
        );
        let queue_waits = Family::new_with_constructor(queue_wait_histogram as fn() -> Histogram);
        registry.register(
            "queue_wait_seconds",
            "How long requests that found a FastCGI mount's every connection busy waited \
             in line, until they got one, timed out (503) or the app stopped, by mount",
            queue_waits.clone(),
        );
        let workers = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "workers",
            "Launched workers, by mount and state",
            workers.clone(),
        );
        let worker_recycles = Family::<RecycleLabels, Counter>::default();
        registry.register(
            "worker_recycles",
            "Launched workers recycled, by mount and reason",
            worker_recycles.clone(),
        );
        let upstream_down = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "upstream_down",
            "1 while an upstream is marked down after failed connects, else 0",
            upstream_down.clone(),
        );
        Metrics {
            registry,
            worker_recycles,
            upstream_down,
            cgi_running,
            queue_waiting,
            queue_waits,
            workers,
            requests,
            durations,
            mounts: Mutex::new(HashMap::new()),
            cgi_spawns,
            cgi_spawn_failures,
            cgi_deadline_kills,
            orphans_killed,
            fastcgi_connections,
            worker_restarts,
        }
    }

    /// `mount`'s counters, made (and shown, at zero) on first use.
    pub fn mount(&self, mount: &str) -> Arc<MountMetrics> {
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = mounts.get(mount) {
            return found.clone();
        }
        let requests = METHODS.map(|method| {
            STATUSES.map(|status| {
                self.requests
                    .get_or_create(&RequestLabels {
                        mount: mount.to_owned(),
                        method,
                        status,
                    })
                    .clone()
            })
        });
        let duration = self
            .durations
            .get_or_create(&MountLabel {
                mount: mount.to_owned(),
            })
            .clone();
        let made = Arc::new(MountMetrics {
            requests,
            duration,
            traffic: Traffic::default(),
        });
        mounts.insert(mount.to_owned(), made.clone());
        made
    }

    /// The histogram of `mount`'s waits in its FastCGI queue, shown once a pool has it.
    pub fn queue_wait(&self, mount: &str) -> Histogram {
        self.queue_waits
            .get_or_create(&MountLabel {
                mount: mount.to_owned(),
            })
            .clone()
    }

    /// Every mount that has counters, by name: `""` is the requests answered before a
    /// mount took them.
    pub fn mounts(&self) -> Vec<(String, Arc<MountMetrics>)> {
        let mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        mounts.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Requests answered since the process started, over every mount.
    pub fn requests_total(&self) -> u64 {
        let mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        mounts
            .values()
            .flat_map(|m| m.requests.iter().flatten())
            .map(Counter::get)
            .sum()
    }

    /// The text exposition format (OpenMetrics), as Prometheus scrapes it.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mounts_requests_are_counted_by_method_and_status_class() {
        let metrics = Metrics::new();
        let m = metrics.mount("/m");
        m.record(&Method::GET, 200, 10, Duration::from_millis(2));
        m.record(&Method::GET, 204, 0, Duration::from_millis(2));
        m.record(&Method::DELETE, 503, 20, Duration::from_millis(500));
        assert!(Arc::ptr_eq(&m, &metrics.mount("/m")));
        let text = metrics.encode();
        let line = |labels: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("portico_requests_total{{{labels}}}")))
                .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        };
        assert_eq!(
            line(r#"mount="/m",method="GET",status="2xx""#).as_deref(),
            Some("2")
        );
        assert_eq!(
            line(r#"mount="/m",method="other",status="5xx""#).as_deref(),
            Some("1")
        );
        assert_eq!(
            line(r#"mount="/m",method="POST",status="2xx""#).as_deref(),
            Some("0")
        );
        assert!(
            text.contains(r#"portico_request_duration_seconds_count{mount="/m"} 3"#),
            "{text}"
        );
        let traffic = m.traffic.summary();
        assert_eq!((traffic.requests, traffic.bytes), (3, 30));
        assert_eq!(traffic.recent_requests, 3);
    }

    /// docs/metrics.md is the operators' list: every family the registry has is on it.
    #[test]
    fn the_metrics_page_of_the_docs_names_every_metric() {
        let docs = include_str!("../docs/metrics.md");
        // A family with no series is not written: one of each.
        let metrics = Metrics::new();
        metrics.mount("/m");
        metrics.queue_wait("/m");
        let mount = || MountLabel { mount: "/m".into() };
        let _ = metrics.queue_waiting.get_or_create(&mount());
        let _ = metrics.worker_restarts.get_or_create(&mount());
        let deadline = DeadlineLabel { deadline: "head" };
        let _ = metrics.cgi_deadline_kills.get_or_create(&deadline);
        let upstream = "unix:/s".to_owned();
        let how = "opened";
        let _ = metrics
            .fastcgi_connections
            .get_or_create(&ConnectionLabels { upstream, how });
        let (mount, reason) = ("/m".to_owned(), "idle");
        let _ = metrics
            .worker_recycles
            .get_or_create(&RecycleLabels { mount, reason });
        let (mount, state) = ("/m".to_owned(), "idle");
        let _ = metrics
            .workers
            .get_or_create(&WorkerLabels { mount, state });
        let upstream = "unix:/s".to_owned();
        let _ = metrics
            .upstream_down
            .get_or_create(&UpstreamLabel { upstream });
        let text = metrics.encode();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(families.len(), 14, "{text}");
        for family in families {
            let named = [format!("`{family}`"), format!("`{family}_total`")];
            assert!(
                named.iter().any(|n| docs.contains(n.as_str())),
                "docs/metrics.md does not name {family}"
            );
        }
    }
}
