//! The server `portico bench` loads: Portico itself, started in-process on 127.0.0.1:0 in
//! a runtime of its own, or a server already running at `--url`; which targets it has and
//! whether each is answered by CGI, persistent CGI or FastCGI, as its config says.
//!
//! Only in-process can the bench read what Portico and its children cost (`usage`); a
//! server at a URL is measured from outside, by throughput and latency alone.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::error::BenchError;
use super::twins::{self, Mode};
use super::usage::{Snapshot, live_children_cpu, peak_rss_kib, rusage_seconds};
use crate::cli::ServeArgs;
use crate::config::{self, Config};

/// The hello app in each language, spawned under /cgi-bin; each other CGI mount that keeps
/// one warm and every FastCGI mount of the config follow.
const DEFAULT_SCRIPTS: &[&str] = &["hello-c", "hello.sh", "hello.pl", "hello.py"];
const DEFAULT_CGI_MOUNT: &str = "/cgi-bin";

pub(super) fn parse_url(url: &str) -> Result<(SocketAddr, String), BenchError> {
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
pub(super) enum Server {
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

impl Server {
    /// Portico on 127.0.0.1:0, with as many runtime threads as the config gives `serve`.
    pub(super) fn start(config_path: Option<PathBuf>) -> Result<Server, BenchError> {
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

    pub(super) fn addr(&self) -> (SocketAddr, String) {
        match self {
            Server::InProcess { local, .. } => (local.addr(), local.addr().to_string()),
            Server::External((addr, host), _) => (*addr, host.clone()),
        }
    }

    /// The CGI hello examples, then each one kept warm by another CGI mount's `persistent`,
    /// then each FastCGI mount, in-process; each script's twins under it (`twins::grouped`).
    /// By URL, the CGI examples and `/fcgi/hello`.
    pub(super) fn default_targets(&self) -> Vec<String> {
        let spawned = DEFAULT_SCRIPTS
            .iter()
            .map(|name| format!("{DEFAULT_CGI_MOUNT}/{name}"));
        let Server::InProcess { config, .. } = self else {
            return spawned.chain(["/fcgi/hello".to_owned()]).collect();
        };
        let warm = config
            .cgi
            .iter()
            .filter(|m| m.script.is_none() && m.mount != DEFAULT_CGI_MOUNT)
            .flat_map(|m| {
                DEFAULT_SCRIPTS
                    .iter()
                    .filter(|name| m.runner_for(name).is_some())
                    .map(|name| format!("{}/{name}", m.mount))
            });
        let fastcgi = config.fastcgi.iter().map(|m| m.mount.clone());
        let targets = spawned
            .chain(warm)
            .chain(fastcgi)
            .map(|t| {
                let mode = self.mode(&t).unwrap_or(Mode::Cgi);
                (t, mode)
            })
            .collect();
        twins::grouped(targets)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    /// `cgi:NAME` and `fcgi:NAME` as URL paths of this config; other targets as they are.
    pub(super) fn expand(&self, target: &str) -> String {
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

    /// Whether Portico answers `path` by CGI, persistent CGI or FastCGI (in-process only).
    pub(super) fn mode(&self, path: &str) -> Option<Mode> {
        let Server::InProcess { config, .. } = self else {
            return None;
        };
        let path = path.split('?').next().unwrap_or(path);
        if crate::router::resolve_fastcgi(config, path).is_some() {
            return Some(Mode::Fastcgi);
        }
        Some(match crate::router::resolve(config, path) {
            Ok(script) if is_kept_warm(&script) => Mode::PersistentCgi,
            _ => Mode::Cgi,
        })
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Server::InProcess { config_path, .. } => format!("portico in-process, {config_path}"),
            Server::External(_, url) => url.clone(),
        }
    }

    pub(super) fn costs_now(&self) -> Snapshot {
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

    pub(super) fn stop(self) {
        if let Server::InProcess { local, runtime, .. } = self
            && let Err(error) = runtime.block_on(local.shutdown())
        {
            eprintln!("error: the in-process server failed: {error}");
        }
    }
}

/// Whether the gateway sends `script` to a runner, as `gateway::persistent` decides: its
/// mount's `persistent` lists its name and it is not NPH (whose head FastCGI cannot carry).
/// A script its runner failed is spawned instead (`persistent::marks`), which the bench
/// cannot see but its throughput shows.
fn is_kept_warm(script: &crate::router::Match<'_>) -> bool {
    !script.is_nph
        && script
            .script_path
            .file_name()
            .is_some_and(|name| script.mount.runner_for(&name.to_string_lossy()).is_some())
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
}
