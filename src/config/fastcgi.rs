//! `[[fastcgi]]` mounts: which FastCGI application answers a URL prefix, where it listens
//! (upstreams Portico does not own, or workers it launches) and how requests reach it.
//! `[[wsgi]]` mounts (`crate::wsgi::mount`) become such mounts through the same `launch`.
//!
//! Speaking FastCGI is `crate::fastcgi`'s; running the workers is `crate::supervisor`'s.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::auth::RawAuth;
use super::authorizer::RawAuthorizer;
use super::limits::Limits;
use super::source::{ConfigError, Validator};
use super::value::{find_on_path, normalize_mount};

/// A URL prefix answered by a FastCGI application.
#[derive(Debug, Clone)]
pub struct FastcgiMount {
    /// URL prefix without a trailing slash.
    pub mount: String,
    /// Servers Portico does not run itself; empty when `launch` is set.
    pub upstreams: Vec<Upstream>,
    /// Workers Portico starts and supervises.
    pub launch: Option<Launch>,
    pub balance: Balance,
    /// Requests at once per upstream or per worker. `None`: what the application says in
    /// FCGI_GET_VALUES (FCGI_MAX_CONNS), else 1 for a launched worker and 8 for an upstream.
    pub max_connections: Option<usize>,
    /// How long an upstream that refused a connection is left out before it is tried again.
    pub fail_timeout: Duration,
    /// SCRIPT_FILENAME is `root` plus SCRIPT_NAME without the mount (nginx's
    /// `$document_root$fastcgi_script_name`), unless `script` names one file for the mount.
    pub root: Option<PathBuf>,
    pub script: Option<PathBuf>,
    /// Like nginx's `fastcgi_split_path_info`: SCRIPT_NAME ends at the first path segment
    /// with this suffix (`.php`) and the rest is PATH_INFO.
    pub split_path_info: Option<String>,
    /// Extra params sent with every request, after the meta-variables.
    pub params: Vec<(String, String)>,
    /// HTTP Basic authentication in front of the application.
    pub auth: Option<std::sync::Arc<crate::auth::BasicAuth>>,
    pub pass_authorization: bool,
    /// The FastCGI Authorizer asked before each request (`config::authorizer`).
    pub authorizer: Option<Box<FastcgiMount>>,
    /// The directory whose files the app may have sent with X-Sendfile (`sendfile`).
    pub x_sendfile: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Deadline for the response head and for idle time between output chunks.
    pub read_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Unix(path) => write!(f, "unix:{}", path.display()),
            Upstream::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// The upstream with the smallest share of its capacity in use.
    LeastBusy,
    RoundRobin,
}

/// Worker processes Portico starts for a mount, each with its own listening socket as
/// fd 0 (FCGI_LISTENSOCK_FILENO, FastCGI spec §2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// Program (an absolute path as written, symlinks kept, or found on PATH once) and its
    /// arguments.
    pub command: Vec<OsString>,
    /// Workers kept running; more are started on demand up to `max_workers`.
    pub min_workers: usize,
    pub max_workers: usize,
    /// A worker above `min_workers` idle this long is retired.
    pub idle_timeout: Duration,
    /// Requests after which a worker is drained and replaced, plus up to `max_requests_jitter`
    /// more so that workers started together do not all restart together.
    pub max_requests: Option<u64>,
    pub max_requests_jitter: u64,
    /// Resident memory above which a worker is drained and replaced.
    pub max_memory_bytes: Option<u64>,
    /// A request running longer gets a 504 and its worker is killed and replaced.
    pub request_timeout: Option<Duration>,
    pub socket: LaunchSocket,
    /// Workers in a row that exit at start before the app is stopped (its mount answers 503).
    pub start_retries: u32,
    /// Variables set for the workers, after the scripts' base environment.
    pub env: Vec<(String, String)>,
    /// A program Portico ships (the WSGI adapter): written to the workers' private
    /// directory and passed to `command` as its first argument.
    pub script: Option<(&'static str, &'static str)>,
    /// Files that program imports, written beside it (file name, contents).
    pub modules: &'static [(&'static str, &'static str)],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchSocket {
    /// A unix socket in a private directory.
    Unix,
    /// TCP on 127.0.0.1, a free port per worker.
    Tcp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFastcgi {
    pub(super) mount: Spanned<String>,
    upstream: Option<Spanned<String>>,
    #[serde(default)]
    upstreams: Vec<Spanned<String>>,
    launch: Option<Spanned<RawLaunch>>,
    balance: Option<Balance>,
    max_connections: Option<Spanned<usize>>,
    fail_timeout_seconds: Option<Spanned<f64>>,
    root: Option<Spanned<String>>,
    script: Option<Spanned<String>>,
    split_path_info: Option<Spanned<String>>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    auth: Option<RawAuth>,
    #[serde(default)]
    pass_authorization: bool,
    authorizer: Option<RawAuthorizer>,
    x_sendfile: Option<Spanned<String>>,
    connect_timeout_seconds: Option<Spanned<f64>>,
    read_timeout_seconds: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLaunch {
    pub(crate) command: Spanned<Vec<String>>,
    pub(crate) workers: Option<Spanned<usize>>,
    pub(crate) min_workers: Option<Spanned<usize>>,
    pub(crate) max_workers: Option<Spanned<usize>>,
    pub(crate) idle_timeout_seconds: Option<Spanned<f64>>,
    pub(crate) max_requests: Option<Spanned<u64>>,
    pub(crate) max_requests_jitter: Option<u64>,
    pub(crate) max_memory_mb: Option<Spanned<u64>>,
    pub(crate) request_timeout_seconds: Option<Spanned<f64>>,
    pub(crate) socket: Option<LaunchSocket>,
    pub(crate) start_retries: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
}

impl Validator<'_> {
    pub(super) fn fastcgi_mount(&self, raw: &RawFastcgi) -> Result<FastcgiMount, ConfigError> {
        let mount = normalize_mount(raw.mount.get_ref())
            .map_err(|m| self.spanned_error(raw.mount.span(), m))?;
        let mut upstreams = Vec::new();
        for spec in raw.upstream.iter().chain(&raw.upstreams) {
            upstreams.push(self.upstream(spec)?);
        }
        let launch = raw.launch.as_ref().map(|l| self.launch(l)).transpose()?;
        match (&launch, upstreams.is_empty()) {
            (Some(_), false) => {
                return Err(self.spanned_error(
                    raw.mount.span(),
                    "has both `launch` and upstreams: choose one",
                ));
            }
            (None, true) => {
                return Err(self.spanned_error(
                    raw.mount.span(),
                    "needs `upstream`, `upstreams` or `launch`",
                ));
            }
            _ => {}
        }
        let root = raw.root.as_ref().map(|r| self.directory(r)).transpose()?;
        let script = match (&raw.script, &launch) {
            (Some(s), _) => Some(self.base_dir().join(s.get_ref())),
            // A launched app owns its mount: SCRIPT_FILENAME is its program.
            (None, Some(launch)) if root.is_none() => Some(PathBuf::from(&launch.command[0])),
            (None, _) => None,
        };
        if root.is_none() && script.is_none() {
            return Err(self.spanned_error(
                raw.mount.span(),
                "needs `root` or `script` to name SCRIPT_FILENAME",
            ));
        }
        let split_path_info = match &raw.split_path_info {
            Some(suffix) if suffix.get_ref().is_empty() || suffix.get_ref().contains('/') => {
                return Err(
                    self.spanned_error(suffix.span(), "must be a file-name suffix like \".php\"")
                );
            }
            other => other.as_ref().map(|s| s.get_ref().clone()),
        };
        let max_connections = match &raw.max_connections {
            Some(n) if *n.get_ref() == 0 => {
                return Err(self.spanned_error(n.span(), "must be at least 1"));
            }
            other => other.as_ref().map(|n| *n.get_ref()),
        };
        let d = Limits::default();
        let authorizer = self.authorizer(&mount, raw.mount.span(), raw.authorizer.as_ref())?;
        Ok(FastcgiMount {
            mount,
            upstreams,
            launch,
            balance: raw.balance.unwrap_or(Balance::LeastBusy),
            max_connections,
            fail_timeout: self.seconds(None, &raw.fail_timeout_seconds, Duration::from_secs(10))?,
            root,
            script,
            split_path_info,
            params: raw
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            auth: self.auth(raw.auth.as_ref())?,
            pass_authorization: raw.pass_authorization,
            authorizer,
            x_sendfile: raw
                .x_sendfile
                .as_ref()
                .map(|d| self.directory(d))
                .transpose()?,
            connect_timeout: self.seconds(
                None,
                &raw.connect_timeout_seconds,
                Duration::from_secs(5),
            )?,
            read_timeout: self.seconds(None, &raw.read_timeout_seconds, d.script_head_timeout)?,
        })
    }

    pub(super) fn upstream(&self, spec: &Spanned<String>) -> Result<Upstream, ConfigError> {
        let text = spec.get_ref();
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(Upstream::Unix(self.base_dir().join(path)));
        }
        if let Some(addr) = text.strip_prefix("tcp:").filter(|a| {
            a.rsplit_once(':')
                .is_some_and(|(host, p)| !host.is_empty() && p.parse::<u16>().is_ok())
        }) {
            return Ok(Upstream::Tcp(addr.to_owned()));
        }
        Err(self.spanned_error(
            spec.span(),
            format!("`{text}` is not like unix:/path or tcp:host:port"),
        ))
    }

    pub(crate) fn launch(&self, raw: &Spanned<RawLaunch>) -> Result<Launch, ConfigError> {
        let span = raw.span();
        let raw = raw.get_ref();
        let mut command: Vec<OsString> = raw.command.get_ref().iter().map(Into::into).collect();
        let Some(program) = command.first_mut() else {
            return Err(self.spanned_error(raw.command.span(), "empty command"));
        };
        let path = PathBuf::from(&*program);
        match program_path(&path, &self.base_dir()) {
            Some(found) => *program = found.into_os_string(),
            None => {
                return Err(self.spanned_error(
                    raw.command.span(),
                    format!("`{}` is not an executable file", path.display()),
                ));
            }
        }
        let count = |field: &Option<Spanned<usize>>| field.as_ref().map(|n| *n.get_ref());
        let workers = count(&raw.workers).unwrap_or(2);
        let min_workers = count(&raw.min_workers).unwrap_or(workers);
        let max_workers = count(&raw.max_workers).unwrap_or(workers.max(min_workers));
        if max_workers == 0 || min_workers > max_workers {
            let at = raw
                .max_workers
                .as_ref()
                .or(raw.workers.as_ref())
                .map_or(span, Spanned::span);
            return Err(self.spanned_error(
                at,
                format!("needs 1 <= max_workers and min_workers <= max_workers (min {min_workers}, max {max_workers})"),
            ));
        }
        let optional_seconds = |field: &Option<Spanned<f64>>| {
            field
                .as_ref()
                .map(|_| self.seconds(None, field, Duration::ZERO))
                .transpose()
        };
        if let Some(n) = raw.max_requests.as_ref().filter(|n| *n.get_ref() == 0) {
            return Err(self.spanned_error(n.span(), "must be at least 1"));
        }
        Ok(Launch {
            command,
            min_workers,
            max_workers,
            idle_timeout: self.seconds(None, &raw.idle_timeout_seconds, Duration::from_secs(60))?,
            max_requests: raw.max_requests.as_ref().map(|n| *n.get_ref()),
            max_requests_jitter: raw.max_requests_jitter.unwrap_or(0),
            max_memory_bytes: raw.max_memory_mb.as_ref().map(|m| m.get_ref() << 20),
            request_timeout: optional_seconds(&raw.request_timeout_seconds)?,
            socket: raw.socket.unwrap_or(LaunchSocket::Unix),
            start_retries: raw
                .start_retries
                .as_ref()
                .map_or(5, |n| *n.get_ref())
                .max(1),
            env: raw.env.clone().into_iter().collect(),
            script: None,
            modules: &[],
        })
    }
}

/// Where a launch command's program is: relative to the config file's directory when
/// written with a slash, else found on PATH; made absolute (the workers run in the
/// program's directory) but never symlink-resolved. A virtual environment's `bin/python`
/// is a symlink to the base interpreter, and Python finds its environment from the path
/// it was started as (`pyvenv.cfg` next to that path's directory, PEP 405): resolved,
/// it would start outside the environment.
fn program_path(program: &Path, base_dir: &Path) -> Option<PathBuf> {
    let found = if program.components().count() > 1 {
        base_dir.join(program)
    } else {
        find_on_path(program)?
    };
    let absolute = std::path::absolute(found).ok()?;
    is_executable(&absolute).then_some(absolute)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    /// `real/python3` (executable), `venv/bin/python` a symlink to it as `python -m venv`
    /// makes one, `notes.txt` (not executable) and `bin/` (a directory).
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, mode) in [("real/python3", 0o755), ("notes.txt", 0o644)] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::create_dir_all(root.join("venv/bin")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        symlink(root.join("real/python3"), root.join("venv/bin/python")).unwrap();
        dir
    }

    #[test]
    fn a_program_path_is_kept_as_written_never_symlink_resolved() {
        let dir = tree();
        let base = dir.path();
        let venv_python = base.join("venv/bin/python");
        let cases: [(&str, Option<PathBuf>); 7] = [
            ("venv/bin/python", Some(venv_python.clone())),
            ("./venv/bin/python", Some(base.join("./venv/bin/python"))),
            (venv_python.to_str().unwrap(), Some(venv_python.clone())),
            ("real/python3", Some(base.join("real/python3"))),
            ("notes.txt", None),
            ("./bin", None),
            ("venv/bin/missing", None),
        ];
        for (written, want) in cases {
            assert_eq!(program_path(Path::new(written), base), want, "{written}");
        }
    }

    #[test]
    fn a_bare_program_name_is_found_on_path_and_made_absolute() {
        let dir = tree();
        // Debian's /bin/sh is a symlink to dash: the name found on PATH stays `sh`.
        let sh = program_path(Path::new("sh"), dir.path()).expect("sh on PATH");
        assert!(sh.is_absolute(), "{}", sh.display());
        assert_eq!(sh.file_name().unwrap(), "sh");
        assert_eq!(
            program_path(Path::new("no-such-program-here"), dir.path()),
            None
        );
    }
}
