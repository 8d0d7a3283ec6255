//! `portico bench`: spawn-per-request against persistent workers, measured.
//!
//! It starts Portico in-process on 127.0.0.1:0 with a config (or loads a server at
//! `--url`), checks each target answers, warms it up, then loads it with the built-in
//! generator ([`load`]) and reports throughput, latency percentiles, errors, and what each
//! request cost in CPU: Portico's own, the scripts' and workers', the generator's ([`report`]).
//!
//! The driver is here. [`load`] makes the load and `response` reads each answer; `server`
//! is the server under load and `usage` what it cost; [`twins`] which targets are one
//! script spawned, kept warm and rewritten; [`report`] and `html` are what comes out,
//! `progress` the bar on the terminal, `error` why no report came out.

mod error;
mod html;
pub mod load;
mod progress;
pub mod report;
mod response;
mod server;
pub mod twins;
mod usage;

use std::time::{Duration, SystemTime};

use crate::cli::BenchArgs;
use load::Load;
use progress::Progress;
use report::{Costs, Report, TargetReport};
use server::{Server, parse_url};

pub use error::BenchError;

/// Runs the bench; `Ok(false)` when a target failed too many requests.
pub fn run(args: &BenchArgs) -> Result<bool, BenchError> {
    let server = match &args.url {
        Some(url) => Server::External(parse_url(url)?, url.clone()),
        None => Server::start(args.config.clone())?,
    };
    let explicit = !args.targets.is_empty();
    let targets: Vec<String> = if explicit {
        args.targets.clone()
    } else {
        server.default_targets()
    };
    let mut report = Report {
        portico_version: env!("CARGO_PKG_VERSION"),
        started_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        server: server.describe(),
        connections: args.connections.max(1),
        threads: args.threads.max(1),
        duration_seconds: args.duration,
        rate: args.rate,
        rounds: args.rounds.max(1),
        targets: Vec::new(),
        ratios: Vec::new(),
        persistent_ratios: Vec::new(),
    };
    let (addr, host) = server.addr();
    let rounds = args.rounds.max(1);
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    // Sanity before speed: one request per target, which must succeed.
    let mut runs: Vec<Run> = Vec::new();
    for target in &targets {
        let path = server.expand(target);
        let load = Load {
            addr,
            path: path.clone(),
            host: host.clone(),
            connections: args.connections.max(1),
            threads: args.threads.max(1),
            duration,
            requests: args.requests,
            rate: args.rate,
        };
        match check(&load) {
            Ok(()) => runs.push(Run {
                mode: server.mode(&path),
                load,
                outcome: None,
                costs: None,
                rounds: Vec::new(),
            }),
            Err(why) if explicit => return Err(BenchError::Target(target.clone(), why)),
            Err(why) => eprintln!("skipping {target}: {why}"),
        }
    }
    if runs.is_empty() {
        server.stop();
        return Err(BenchError::NoTarget);
    }
    for round in 0..rounds {
        for run in &mut runs {
            if round == 0 && args.warmup > 0.0 {
                load::run(&Load {
                    duration: Duration::from_secs_f64(args.warmup),
                    requests: None,
                    ..run.load.clone()
                })?;
            }
            let progress = Progress::start(&run.load.path, round, rounds, duration);
            let before = server.costs_now();
            let outcome = load::run(&run.load)?;
            let costs = before.delta(&server.costs_now(), outcome.cpu);
            progress.finish();
            run.rounds
                .push(outcome.requests as f64 / outcome.elapsed.as_secs_f64().max(1e-9));
            match (&mut run.outcome, &mut run.costs) {
                (Some(total), Some(total_costs)) => {
                    total.merge(&outcome);
                    total_costs.merge(&costs);
                }
                _ => {
                    run.outcome = Some(outcome);
                    run.costs = Some(costs);
                }
            }
        }
    }
    for run in runs {
        if let (Some(outcome), Some(costs)) = (&run.outcome, &run.costs) {
            report.targets.push(TargetReport::new(
                &run.load.path,
                run.mode,
                outcome,
                costs,
                run.rounds,
            ));
        }
    }
    server.stop();
    report.fill_ratios();
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::page(&report))?;
    }
    Ok(!report.has_errors())
}

/// One target across rounds.
struct Run {
    load: Load,
    mode: Option<twins::Mode>,
    outcome: Option<load::Outcome>,
    costs: Option<Costs>,
    rounds: Vec<f64>,
}

/// One request with one connection: a 2xx or 3xx answer with a body.
fn check(load: &Load) -> Result<(), String> {
    let outcome = load::run(&Load {
        connections: 1,
        threads: 1,
        duration: Duration::from_secs(15),
        requests: Some(1),
        rate: None,
        ..load.clone()
    })
    .map_err(|e| e.to_string())?;
    match outcome.statuses.iter().next() {
        Some((&status, _)) if (200..400).contains(&status) && outcome.bytes > 0 => Ok(()),
        Some((&status, _)) => Err(format!("status {status}")),
        None => Err(format!("no response ({:?})", outcome.errors)),
    }
}
