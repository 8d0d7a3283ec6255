//! What `portico bench` prints and writes: one row per target (throughput, latency
//! percentiles, errors, CPU per request, spawns), ratios to the first target, as a table
//! for people and JSON for machines.

use std::fmt::Write;

use serde::Serialize;

use super::load::{Errors, Outcome};

/// An error share above this makes the run's numbers untrustworthy.
pub const MAX_ERROR_SHARE: f64 = 0.01;

#[derive(Serialize)]
pub struct Report {
    pub portico_version: &'static str,
    /// Unix time the run started.
    pub started_unix: u64,
    pub nproc: usize,
    /// In-process Portico with this config, or the server at this URL.
    pub server: String,
    pub connections: usize,
    pub threads: usize,
    pub duration_seconds: f64,
    /// Requests per second asked for, when the load was at a fixed rate.
    pub rate: Option<f64>,
    /// Times the whole set of targets was loaded, in turn (A B A B).
    pub rounds: usize,
    pub targets: Vec<TargetReport>,
    /// FastCGI over CGI for the same app.
    pub ratios: Vec<Ratio>,
}

#[derive(Serialize)]
pub struct Ratio {
    pub app: String,
    pub fastcgi: String,
    pub cgi: String,
    pub ratio: f64,
}

#[derive(Serialize)]
pub struct TargetReport {
    pub target: String,
    /// "cgi" or "fastcgi" when Portico runs in-process.
    pub mode: Option<&'static str>,
    /// The app's name: the last path segment without extension or `-c`/`-fcgi`.
    pub app: String,
    pub requests: u64,
    pub requests_per_second: f64,
    /// Requests/s of each round, in order: drift shows here.
    pub rounds_requests_per_second: Vec<f64>,
    /// This target's requests/s over the first target's.
    pub ratio_to_first: Option<f64>,
    pub latency_ms: Latency,
    pub errors: Errors,
    pub error_share: f64,
    pub statuses: std::collections::BTreeMap<u16, u64>,
    pub bytes: u64,
    /// Portico's own CPU per request (in-process only), in ms.
    pub gateway_cpu_ms_per_request: Option<f64>,
    /// CPU of the scripts and workers Portico ran, per request, in ms.
    pub scripts_cpu_ms_per_request: Option<f64>,
    /// CGI scripts started per second: one per CGI answer that is not an error (an error
    /// may be Portico's own, from before any script ran); none for FastCGI.
    pub spawns_per_second: Option<f64>,
    /// The load generator's own CPU per request, in ms.
    pub load_cpu_ms_per_request: f64,
    /// Peak resident memory of the Portico process, in KiB (in-process only).
    pub peak_rss_kib: Option<u64>,
}

#[derive(Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// CPU and memory measured around a run (None where they cannot be known).
pub struct Costs {
    pub gateway_cpu_seconds: Option<f64>,
    pub scripts_cpu_seconds: Option<f64>,
    pub peak_rss_kib: Option<u64>,
}

impl Costs {
    /// Adds another round's costs.
    pub fn merge(&mut self, other: &Costs) {
        let add = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        self.gateway_cpu_seconds = add(self.gateway_cpu_seconds, other.gateway_cpu_seconds);
        self.scripts_cpu_seconds = add(self.scripts_cpu_seconds, other.scripts_cpu_seconds);
        self.peak_rss_kib = self.peak_rss_kib.max(other.peak_rss_kib);
    }
}

/// `/cgi-bin/hello.py`, `/cgi-bin/hello-c` and `/fcgi/hello` are all the app `hello`.
pub fn app_name(target: &str) -> String {
    app_and_language(target).0
}

/// The app and the language its name says, if any: `hello-c` and `hello.c` are ("hello",
/// "c"), `hello.py` is ("hello", "py"), `/fcgi/hello` is ("hello", "").
fn app_and_language(target: &str) -> (String, String) {
    let path = target.split('?').next().unwrap_or(target);
    let last = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    let (stem, ext) = last.split_once('.').unwrap_or((last, ""));
    let stem = stem.strip_suffix("-fcgi").unwrap_or(stem);
    match stem.strip_suffix("-c") {
        Some(app) if ext.is_empty() => (app.to_owned(), "c".to_owned()),
        _ => (stem.to_owned(), ext.to_owned()),
    }
}

/// The same app in the same language, or a FastCGI app whose name says no language.
fn same_app(fastcgi: &str, cgi: &str) -> bool {
    let ((app, language), (other, other_language)) =
        (app_and_language(fastcgi), app_and_language(cgi));
    app == other && (language.is_empty() || language == other_language)
}

impl TargetReport {
    pub fn new(
        target: &str,
        mode: Option<&'static str>,
        outcome: &Outcome,
        costs: &Costs,
        rounds: Vec<f64>,
    ) -> TargetReport {
        let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
        let per_request = |cpu: f64| cpu * 1000.0 / outcome.requests.max(1) as f64;
        let ms = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
        let attempts = outcome.requests + outcome.errors.total() - outcome.errors.status;
        // CGI starts one script per request it answers, FastCGI none: the generator's own
        // count says it, without a counter inside the server. (A local redirect starts two
        // scripts for one answer; the hello targets have none.)
        let spawns = match mode {
            Some("cgi") => Some(outcome.requests.saturating_sub(outcome.errors.status)),
            Some(_) => Some(0),
            None => None,
        };
        TargetReport {
            target: target.to_owned(),
            mode,
            app: app_name(target),
            requests: outcome.requests,
            requests_per_second: outcome.requests as f64 / seconds,
            rounds_requests_per_second: rounds,
            ratio_to_first: None,
            latency_ms: Latency {
                mean: outcome.latency.mean() / 1000.0,
                p50: ms(0.5),
                p90: ms(0.9),
                p99: ms(0.99),
                p99_9: ms(0.999),
                max: outcome.latency.max() as f64 / 1000.0,
            },
            error_share: outcome.errors.total() as f64 / attempts.max(1) as f64,
            errors: outcome.errors.clone(),
            statuses: outcome.statuses.clone(),
            bytes: outcome.bytes,
            gateway_cpu_ms_per_request: costs.gateway_cpu_seconds.map(per_request),
            scripts_cpu_ms_per_request: costs.scripts_cpu_seconds.map(per_request),
            spawns_per_second: spawns.map(|n| n as f64 / seconds),
            load_cpu_ms_per_request: per_request(outcome.cpu.as_secs_f64()),
            peak_rss_kib: costs.peak_rss_kib,
        }
    }
}

impl Report {
    pub fn fill_ratios(&mut self) {
        let Some(first) = self.targets.first().map(|t| t.requests_per_second) else {
            return;
        };
        for target in &mut self.targets {
            target.ratio_to_first = (first > 0.0).then(|| target.requests_per_second / first);
        }
        if self.rate.is_some() {
            return; // at a fixed rate every target answers as many: compare latency instead
        }
        for fast in self.targets.iter().filter(|t| t.mode == Some("fastcgi")) {
            for slow in self.targets.iter().filter(|t| t.mode == Some("cgi")) {
                if same_app(&fast.target, &slow.target) && slow.requests_per_second > 0.0 {
                    self.ratios.push(Ratio {
                        app: fast.app.clone(),
                        fastcgi: fast.target.clone(),
                        cgi: slow.target.clone(),
                        ratio: fast.requests_per_second / slow.requests_per_second,
                    });
                }
            }
        }
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} connections, {} load threads, {} s per target, {} round(s), nproc {}; server: {}",
            self.connections,
            self.threads,
            self.duration_seconds,
            self.rounds,
            self.nproc,
            self.server
        );
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8}",
            "target",
            "req/s",
            "ratio",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors",
            "gw cpu ms",
            "app cpu ms",
            "spawns/s"
        );
        let opt =
            |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        for t in &self.targets {
            let _ = writeln!(
                out,
                "{:<24} {:>10.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9} {:>9} {:>8}",
                t.target,
                t.requests_per_second,
                opt(t.ratio_to_first, 2),
                t.latency_ms.p50,
                t.latency_ms.p99,
                t.latency_ms.p99_9,
                t.latency_ms.max,
                t.errors.total(),
                opt(t.gateway_cpu_ms_per_request, 3),
                opt(t.scripts_cpu_ms_per_request, 3),
                opt(t.spawns_per_second, 0),
            );
        }
        if self.rounds > 1 {
            for t in &self.targets {
                let rounds: Vec<String> = t
                    .rounds_requests_per_second
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect();
                let _ = writeln!(out, "rounds {:<17} {}", t.target, rounds.join(" "));
            }
        }
        for r in &self.ratios {
            let _ = writeln!(
                out,
                "FastCGI over CGI, app {}: {} / {} = {:.1}x",
                r.app, r.fastcgi, r.cgi, r.ratio
            );
        }
        for t in &self.targets {
            if t.error_share > MAX_ERROR_SHARE {
                let _ = writeln!(
                    out,
                    "WARNING: {} failed {:.1}% of its requests ({:?}); its numbers do not measure a working server",
                    t.target,
                    t.error_share * 100.0,
                    t.errors
                );
            }
        }
        out
    }

    pub fn has_errors(&self) -> bool {
        self.targets.iter().any(|t| t.error_share > MAX_ERROR_SHARE)
    }
}

#[cfg(test)]
mod tests {
    use super::{app_name, same_app};

    #[test]
    fn apps_pair_by_language_when_their_names_say_one() {
        assert!(same_app("/fcgi/hello.c", "/cgi-bin/hello-c"));
        assert!(same_app("/fcgi/hello.pl", "/cgi-bin/hello.pl"));
        assert!(!same_app("/fcgi/hello.pl", "/cgi-bin/hello.py"));
        assert!(same_app("/fcgi/hello", "/cgi-bin/hello.sh"));
        assert!(!same_app("/fcgi/other", "/cgi-bin/hello.sh"));
    }

    #[test]
    fn the_same_app_has_one_name_in_every_mode() {
        for target in [
            "/cgi-bin/hello.py",
            "/cgi-bin/hello-c",
            "/fcgi/hello",
            "/cgi-bin/hello-fcgi.pl",
            "/x/hello/?a=b",
        ] {
            assert_eq!(app_name(target), "hello", "{target}");
        }
        assert_eq!(app_name("/"), "");
    }
}
