//! What `portico bench` prints and writes: one row per target (its mode, throughput,
//! latency percentiles, errors, CPU per request, spawns), each twin's ratio to its script's
//! spawned row (`twins`), as a table for people and JSON for machines.

use std::fmt::Write;

use serde::Serialize;

use super::load::{Errors, Outcome};
use super::twins::{self, Mode, app_name, is_twin};

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
    /// Persistent CGI over CGI for the same script.
    pub persistent_ratios: Vec<PersistentRatio>,
}

#[derive(Serialize)]
pub struct Ratio {
    pub app: String,
    pub fastcgi: String,
    pub cgi: String,
    pub ratio: f64,
}

/// Its own type so that `ratios` keeps its shape: `persistent` where a `Ratio` has `fastcgi`.
#[derive(Serialize)]
pub struct PersistentRatio {
    pub app: String,
    pub persistent: String,
    pub cgi: String,
    pub ratio: f64,
}

#[derive(Serialize)]
pub struct TargetReport {
    pub target: String,
    /// "cgi", "persistent-cgi" or "fastcgi" when Portico runs in-process.
    pub mode: Option<Mode>,
    /// The app's name: the last path segment without extension or `-c`/`-fcgi`.
    pub app: String,
    pub requests: u64,
    pub requests_per_second: f64,
    /// Requests/s of each round, in order: drift shows here.
    pub rounds_requests_per_second: Vec<f64>,
    /// This target's requests/s over the first target's.
    pub ratio_to_first: Option<f64>,
    /// This target's requests/s over its script's spawned row's (1 for that row itself).
    pub ratio_to_cgi: Option<f64>,
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

impl TargetReport {
    pub fn new(
        target: &str,
        mode: Option<Mode>,
        outcome: &Outcome,
        costs: &Costs,
        rounds: Vec<f64>,
    ) -> TargetReport {
        let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
        let per_request = |cpu: f64| cpu * 1000.0 / outcome.requests.max(1) as f64;
        let ms = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
        let attempts = outcome.requests + outcome.errors.total() - outcome.errors.status;
        // CGI starts one script per request it answers, a runner or FastCGI worker none: the
        // generator's own count says it, without a counter inside the server. (A local
        // redirect starts two scripts for one answer; the hello targets have none.)
        let spawns = match mode {
            Some(Mode::Cgi) => Some(outcome.requests.saturating_sub(outcome.errors.status)),
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
            ratio_to_cgi: None,
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
        // Modes are known in-process only: a server at a URL gets no ratios.
        let Some(modes) = self
            .targets
            .iter()
            .map(|t| Some((t.target.clone(), t.mode?)))
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        let named: Vec<(&str, Mode)> = modes.iter().map(|(t, m)| (t.as_str(), *m)).collect();
        let rps: Vec<f64> = self.targets.iter().map(|t| t.requests_per_second).collect();
        for (i, row) in twins::spawned_rows(&named).into_iter().enumerate() {
            if let Some(row) = row.filter(|&row| rps[row] > 0.0) {
                self.targets[i].ratio_to_cgi = Some(rps[i] / rps[row]);
                self.targets[row].ratio_to_cgi = Some(1.0);
            }
        }
        for (fast, &(target, mode)) in self.targets.iter().zip(&named) {
            for slow in &self.targets {
                if slow.mode != Some(Mode::Cgi)
                    || slow.requests_per_second <= 0.0
                    || !is_twin(&slow.target, target, mode)
                {
                    continue;
                }
                let ratio = fast.requests_per_second / slow.requests_per_second;
                let (app, cgi) = (fast.app.clone(), slow.target.clone());
                match mode {
                    Mode::PersistentCgi => self.persistent_ratios.push(PersistentRatio {
                        app,
                        persistent: target.to_owned(),
                        cgi,
                        ratio,
                    }),
                    Mode::Fastcgi => self.ratios.push(Ratio {
                        app,
                        fastcgi: target.to_owned(),
                        cgi,
                        ratio,
                    }),
                    Mode::Cgi => {}
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
            "{:<24} {:<14} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8}",
            "target",
            "mode",
            "req/s",
            "x CGI",
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
                "{:<24} {:<14} {:>10.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9} {:>9} {:>8}",
                t.target,
                t.mode.map_or("-", Mode::label),
                t.requests_per_second,
                opt(t.ratio_to_cgi, 2),
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
        // Under each spawned script, its kept-warm twin, then its rewritten one.
        for cgi in self.targets.iter().map(|t| &t.target) {
            for r in self.persistent_ratios.iter().filter(|r| &r.cgi == cgi) {
                let _ = writeln!(
                    out,
                    "persistent CGI over CGI, app {}: {} / {} = {:.1}x",
                    r.app, r.persistent, r.cgi, r.ratio
                );
            }
            for r in self.ratios.iter().filter(|r| &r.cgi == cgi) {
                let _ = writeln!(
                    out,
                    "FastCGI over CGI, app {}: {} / {} = {:.1}x",
                    r.app, r.fastcgi, r.cgi, r.ratio
                );
            }
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
    use std::time::Duration;

    use super::*;
    use crate::bench::load::Outcome;

    /// A report of `targets`, each having answered `rps` requests in one second.
    fn report(targets: &[(&str, Option<Mode>, u64)], rate: Option<f64>) -> Report {
        let costs = Costs {
            gateway_cpu_seconds: None,
            scripts_cpu_seconds: None,
            peak_rss_kib: None,
        };
        let rows = targets.iter().map(|&(target, mode, rps)| {
            let mut latency = hdrhistogram::Histogram::new(3).unwrap();
            latency.record(1000).unwrap();
            let outcome = Outcome {
                requests: rps,
                errors: Errors::default(),
                statuses: [(200, rps)].into(),
                bytes: rps * 100,
                elapsed: Duration::from_secs(1),
                latency,
                cpu: Duration::ZERO,
            };
            TargetReport::new(target, mode, &outcome, &costs, vec![rps as f64])
        });
        let mut report = Report {
            portico_version: "0",
            started_unix: 0,
            nproc: 2,
            server: "test".into(),
            connections: 1,
            threads: 1,
            duration_seconds: 1.0,
            rate,
            rounds: 1,
            targets: rows.collect(),
            ratios: Vec::new(),
            persistent_ratios: Vec::new(),
        };
        report.fill_ratios();
        report
    }

    const HELLO_PL: [(&str, Option<Mode>, u64); 4] = [
        ("/cgi-bin/hello.sh", Some(Mode::Cgi), 500),
        ("/cgi-bin/hello.pl", Some(Mode::Cgi), 1000),
        ("/warm/hello.pl", Some(Mode::PersistentCgi), 8000),
        ("/fcgi/hello.pl", Some(Mode::Fastcgi), 20000),
    ];

    #[test]
    fn each_twin_is_divided_by_its_spawned_row() {
        let report = report(&HELLO_PL, None);
        let to_cgi: Vec<Option<f64>> = report.targets.iter().map(|t| t.ratio_to_cgi).collect();
        assert_eq!(to_cgi, [None, Some(1.0), Some(8.0), Some(20.0)]);
        let to_first: Vec<Option<f64>> = report.targets.iter().map(|t| t.ratio_to_first).collect();
        assert_eq!(to_first, [Some(1.0), Some(2.0), Some(16.0), Some(40.0)]);
        let warm = &report.persistent_ratios;
        assert_eq!(warm.len(), 1);
        assert_eq!(
            (
                warm[0].persistent.as_str(),
                warm[0].cgi.as_str(),
                warm[0].ratio
            ),
            ("/warm/hello.pl", "/cgi-bin/hello.pl", 8.0)
        );
        let fast = &report.ratios;
        assert_eq!(fast.len(), 1);
        assert_eq!(
            (
                fast[0].fastcgi.as_str(),
                fast[0].cgi.as_str(),
                fast[0].ratio
            ),
            ("/fcgi/hello.pl", "/cgi-bin/hello.pl", 20.0)
        );
        let spawns: Vec<Option<f64>> = report.targets.iter().map(|t| t.spawns_per_second).collect();
        assert_eq!(spawns, [Some(500.0), Some(1000.0), Some(0.0), Some(0.0)]);
    }

    #[test]
    fn the_table_names_each_mode_and_lists_a_scripts_ratios_under_it() {
        let table = report(&HELLO_PL, None).table();
        let mode_of = |target: &str| {
            let row = table
                .lines()
                .find(|l| l.starts_with(&format!("{target} ")))
                .unwrap_or_else(|| panic!("no {target} in\n{table}"));
            row[25..40].trim().to_owned()
        };
        assert_eq!(mode_of("/cgi-bin/hello.pl"), "CGI");
        assert_eq!(mode_of("/warm/hello.pl"), "persistent CGI");
        assert_eq!(mode_of("/fcgi/hello.pl"), "FastCGI");
        let ratios: Vec<&str> = table.lines().filter(|l| l.contains(" over ")).collect();
        assert_eq!(
            ratios,
            [
                "persistent CGI over CGI, app hello: /warm/hello.pl / /cgi-bin/hello.pl = 8.0x",
                "FastCGI over CGI, app hello: /fcgi/hello.pl / /cgi-bin/hello.pl = 20.0x",
            ]
        );
    }

    #[test]
    fn no_ratio_without_modes_or_at_a_fixed_rate() {
        let external: Vec<_> = HELLO_PL.iter().map(|&(t, _, rps)| (t, None, rps)).collect();
        for report in [report(&external, None), report(&HELLO_PL, Some(100.0))] {
            assert!(report.ratios.is_empty() && report.persistent_ratios.is_empty());
            assert!(report.targets.iter().all(|t| t.ratio_to_cgi.is_none()));
        }
    }
}
