//! `portico bench`: spawn-per-request against persistent workers, measured.
//!
//! It starts Portico in-process on 127.0.0.1:0 with a config (or loads a server at
//! `--url`), checks each target answers, warms it up, then loads it with the built-in
//! generator ([`load`]) and reports throughput, latency percentiles, errors, and what each
//! request cost in CPU: Portico's own, the scripts' and workers', the generator's ([`report`]).
//!
//! CPU split, in-process: Portico's share is this process's CPU minus the generator's
//! threads; the scripts' share is what reaped children used (getrusage RUSAGE_CHILDREN)
//! plus what live children (launched workers) used, read from /proc.

mod html;
pub mod load;
pub mod report;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cli::{BenchArgs, ServeArgs};
use crate::config::{self, Config};
use load::Load;
use report::{Costs, Report, TargetReport};

/// The hello app in each language as CGI; then every FastCGI mount of the config follows.
const DEFAULT_CGI_TARGETS: &[&str] = &[
    "/cgi-bin/hello-c",
    "/cgi-bin/hello.sh",
    "/cgi-bin/hello.pl",
    "/cgi-bin/hello.py",
];

/// Why a bench did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("bad --url `{0}`: expected http://HOST:PORT")]
    Url(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("target {0} does not answer: {1}")]
    Target(String, String),
    #[error("no target answered")]
    NoTarget,
}

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
    mode: Option<&'static str>,
    outcome: Option<load::Outcome>,
    costs: Option<Costs>,
    rounds: Vec<f64>,
}

/// A progress bar on the terminal while a target is loaded; nothing when stderr is not one.
struct Progress {
    bar: indicatif::ProgressBar,
    ticker: Option<std::thread::JoinHandle<()>>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl Progress {
    fn start(target: &str, round: usize, rounds: usize, duration: Duration) -> Progress {
        use std::sync::atomic::{AtomicBool, Ordering};
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:32} [{bar:40}] {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let round = if rounds > 1 {
            format!(" (round {}/{rounds})", round + 1)
        } else {
            String::new()
        };
        bar.set_message(format!("{target}{round}"));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = (!bar.is_hidden()).then(|| {
            let (bar, done) = (bar.clone(), done.clone());
            let started = std::time::Instant::now();
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(started.elapsed().as_millis() as u64);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        Progress { bar, ticker, done }
    }

    fn finish(self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(ticker) = self.ticker {
            let _ = ticker.join();
        }
        self.bar.finish_and_clear();
    }
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

fn parse_url(url: &str) -> Result<(SocketAddr, String), BenchError> {
    let bad = || BenchError::Url(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or("");
    let addr = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(bad)?;
    Ok((addr, authority.to_owned()))
}

/// The server under load.
enum Server {
    /// Portico's own server, in a runtime of its own that runs beside the generator's
    /// threads, as `serve` would.
    InProcess {
        local: crate::server::Local,
        runtime: tokio::runtime::Runtime,
        config: Arc<Config>,
        config_path: String,
    },
    External((SocketAddr, String), String),
}

/// Counters read before and after a run.
struct Snapshot {
    process_cpu: Option<f64>,
    children_cpu: Option<f64>,
    peak_rss_kib: Option<u64>,
}

impl Snapshot {
    fn delta(&self, after: &Snapshot, load_cpu: Duration) -> Costs {
        let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        Costs {
            gateway_cpu_seconds: diff(self.process_cpu, after.process_cpu)
                .map(|cpu| (cpu - load_cpu.as_secs_f64()).max(0.0)),
            scripts_cpu_seconds: diff(self.children_cpu, after.children_cpu),
            peak_rss_kib: after.peak_rss_kib,
        }
    }
}

impl Server {
    /// Portico on 127.0.0.1:0, with as many runtime threads as the config gives `serve`.
    fn start(config_path: Option<PathBuf>) -> Result<Server, BenchError> {
        let args = ServeArgs {
            config: config_path,
            ..ServeArgs::default()
        };
        let config: Arc<Config> = Arc::new(config::load(&args)?);
        let config_path = args
            .config
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_PATH))
            .display()
            .to_string();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .thread_name("portico")
            .enable_all()
            .build()?;
        let local = runtime.block_on(crate::server::Local::start(config.clone()))?;
        // Launched workers start in the background; give them a moment to accept.
        std::thread::sleep(Duration::from_millis(200));
        Ok(Server::InProcess {
            local,
            runtime,
            config,
            config_path,
        })
    }

    fn addr(&self) -> (SocketAddr, String) {
        match self {
            Server::InProcess { local, .. } => (local.addr(), local.addr().to_string()),
            Server::External((addr, host), _) => (*addr, host.clone()),
        }
    }

    /// The CGI hello examples, then each FastCGI mount (in-process; by URL, `/fcgi/hello`).
    fn default_targets(&self) -> Vec<String> {
        let cgi = DEFAULT_CGI_TARGETS.iter().map(|t| t.to_string());
        match self {
            Server::InProcess { config, .. } => cgi
                .chain(config.fastcgi.iter().map(|m| m.mount.clone()))
                .collect(),
            Server::External(..) => cgi.chain(["/fcgi/hello".to_owned()]).collect(),
        }
    }

    /// `cgi:NAME` and `fcgi:NAME` as URL paths of this config; other targets as they are.
    fn expand(&self, target: &str) -> String {
        let Server::InProcess { config, .. } = self else {
            return target.to_owned();
        };
        if let Some(name) = target.strip_prefix("cgi:") {
            let mount = config.cgi.first().map_or("/cgi-bin", |m| m.mount.as_str());
            return format!("{mount}/{name}");
        }
        if let Some(name) = target.strip_prefix("fcgi:") {
            let mounts = &config.fastcgi;
            let named = mounts
                .iter()
                .find(|m| m.mount.rsplit('/').next() == Some(name));
            return match (named, mounts.first()) {
                (Some(m), _) => m.mount.clone(),
                (None, Some(m)) => format!("{}/{name}", m.mount),
                (None, None) => format!("/{name}"),
            };
        }
        target.to_owned()
    }

    /// Whether Portico answers `path` by CGI or FastCGI (in-process only).
    fn mode(&self, path: &str) -> Option<&'static str> {
        let Server::InProcess { config, .. } = self else {
            return None;
        };
        let path = path.split('?').next().unwrap_or(path);
        Some(match crate::router::resolve_fastcgi(config, path) {
            Some(_) => "fastcgi",
            None => "cgi",
        })
    }

    fn describe(&self) -> String {
        match self {
            Server::InProcess { config_path, .. } => format!("portico in-process, {config_path}"),
            Server::External(_, url) => url.clone(),
        }
    }

    fn costs_now(&self) -> Snapshot {
        match self {
            Server::InProcess { .. } => Snapshot {
                process_cpu: Some(rusage_seconds(libc::RUSAGE_SELF)),
                children_cpu: Some(rusage_seconds(libc::RUSAGE_CHILDREN) + live_children_cpu()),
                peak_rss_kib: peak_rss_kib(),
            },
            Server::External(..) => Snapshot {
                process_cpu: None,
                children_cpu: None,
                peak_rss_kib: None,
            },
        }
    }

    fn stop(self) {
        if let Server::InProcess { local, runtime, .. } = self
            && let Err(error) = runtime.block_on(local.shutdown())
        {
            eprintln!("error: the in-process server failed: {error}");
        }
    }
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes only the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds of this process's live children (launched workers), from /proc.
fn live_children_cpu() -> f64 {
    let me = std::process::id().to_string();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            let pid: u32 = name.to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name: state ppid ... utime(14) stime(15).
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
            if fields.get(1)? != &me {
                return None;
            }
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_address_and_a_host() {
        let (addr, host) = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(host, "127.0.0.1:8080");
        assert!(parse_url("https://127.0.0.1:1").is_err());
        assert!(parse_url("127.0.0.1:1").is_err());
    }

    #[test]
    fn costs_subtract_the_generators_own_cpu() {
        let before = Snapshot {
            process_cpu: Some(1.0),
            children_cpu: Some(2.0),
            peak_rss_kib: Some(100),
        };
        let after = Snapshot {
            process_cpu: Some(4.0),
            children_cpu: Some(2.5),
            peak_rss_kib: Some(120),
        };
        let costs = before.delta(&after, Duration::from_secs(1));
        assert_eq!(costs.gateway_cpu_seconds, Some(2.0));
        assert_eq!(costs.scripts_cpu_seconds, Some(0.5));
    }
}
