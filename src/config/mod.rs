//! The one validated, immutable `Config`: the TOML file (or built-in defaults in quick mode)
//! merged with command-line flags (flag > file > default), checked once at start-up.
//!
//! Errors name the file, the line and the key. Nothing here is consulted per request
//! except the resolved values: interpreters are looked up on PATH and the scripts'
//! base environment is read from Portico's own environment here, once.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::access_log;
use crate::auth::BasicAuth;
use crate::cli::ServeArgs;
use crate::privileges::{RunAs, RunAsError};

mod fastcgi;
mod wsgi;
use fastcgi::RawFastcgi;
pub use fastcgi::{Balance, FastcgiMount, Launch, LaunchSocket, Upstream};
use wsgi::RawWsgi;

/// Where the server looks when neither `--config` nor `--cgi-dir` is given.
pub const DEFAULT_CONFIG_PATH: &str = "conf/portico.toml";

/// PATH for scripts when Portico itself has none.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub server_name: Option<String>,
    /// Threads serving HTTP and talking to scripts and workers.
    pub threads: usize,
    /// Who Portico serves as once its sockets are bound; `None`: whoever started it.
    pub run_as: Option<RunAs>,
    pub document_root: Option<PathBuf>,
    pub limits: Limits,
    /// PATH, `env.pass` and `env.set`, in that order: the environment every script starts from.
    pub script_env: Vec<(OsString, OsString)>,
    pub cgi: Vec<CgiMount>,
    pub fastcgi: Vec<FastcgiMount>,
    /// The operators' status page, when enabled.
    pub status: Option<StatusPage>,
    /// The access log file, when there is one.
    pub access_log: Option<AccessLogFile>,
}

/// Where the access log goes and in which format.
#[derive(Debug, Clone)]
pub struct AccessLogFile {
    pub path: PathBuf,
    pub format: access_log::Format,
}

/// Where the status page answers and who may see it.
#[derive(Debug, Clone)]
pub struct StatusPage {
    pub path: String,
    /// Off by default: only clients on the loopback interface see it.
    pub allow_remote: bool,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub body_memory_bytes: usize,
    pub header_read_timeout: Duration,
    pub script_head_timeout: Duration,
    pub script_idle_timeout: Duration,
    pub script_total_timeout: Duration,
    pub kill_grace: Duration,
    pub max_concurrent_scripts: usize,
    pub queue_timeout: Duration,
    pub max_local_redirects: u32,
    pub shutdown_timeout: Duration,
    /// How long a connection closed by Portico may go on reading what the client still
    /// sends (RFC 9112 §9.6), in all and between two reads, and how many bytes of it.
    pub lingering_time: Duration,
    pub lingering_timeout: Duration,
    pub max_lingering_bytes: u64,
    /// RLIMIT_CPU of every script, in seconds of CPU time; `None`: Portico's own.
    pub script_cpu_seconds: Option<u64>,
    /// RLIMIT_AS of every script, in bytes; `None`: Portico's own.
    pub script_memory_bytes: Option<u64>,
}

impl Default for Limits {
    /// The built-in defaults, documented in `conf/portico.toml`. Scripts running at once
    /// default to 8 per CPU: far more CPU-bound children than cores only adds context
    /// switches (measured: 64 at once on 2 CPUs gave 6% fewer requests/s and a 40% longer
    /// p99 than 16), while a queued request waits in FIFO order.
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 10 << 20,
            body_memory_bytes: 256 << 10,
            header_read_timeout: Duration::from_secs(10),
            script_head_timeout: Duration::from_secs(30),
            script_idle_timeout: Duration::from_secs(30),
            script_total_timeout: Duration::from_secs(300),
            kill_grace: Duration::from_secs(1),
            max_concurrent_scripts: 8 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_timeout: Duration::from_secs(5),
            max_local_redirects: 10,
            shutdown_timeout: Duration::from_secs(10),
            // Apache's and nginx's 30 s in all; nginx's 5 s between reads.
            lingering_time: Duration::from_secs(30),
            lingering_timeout: Duration::from_secs(2),
            max_lingering_bytes: 10 << 20,
            script_cpu_seconds: None,
            script_memory_bytes: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CgiMount {
    /// URL prefix without a trailing slash (`/cgi-bin`; `` for the root).
    pub mount: String,
    /// Canonical directory the mount serves; for a `script` mount, the script's own.
    pub dir: PathBuf,
    /// A mount of one script (Apache's `ScriptAlias /cgit /usr/lib/cgit/cgit.cgi`): every
    /// path under the mount runs it, the rest of the path being PATH_INFO.
    pub script: Option<PathBuf>,
    /// HTTP Basic authentication in front of the mount's scripts.
    pub auth: Option<Arc<BasicAuth>>,
    pub pass_authorization: bool,
    /// File extension (with its dot) -> interpreter argv, the script path is appended.
    pub interpreters: Vec<(String, Vec<OsString>)>,
}

impl CgiMount {
    pub fn interpreter_for(&self, file_name: &str) -> Option<&[OsString]> {
        self.interpreters
            .iter()
            .find(|(ext, _)| file_name.len() > ext.len() && file_name.ends_with(ext.as_str()))
            .map(|(_, argv)| argv.as_slice())
    }
}

/// A config that cannot be used: which file, which line, which key, and why.
#[derive(Debug)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}", file.display())?,
            None => write!(f, "command line")?,
        }
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

// ---- the file as written -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<Spanned<OneOrMany>>,
    server_name: Option<String>,
    threads: Option<Spanned<usize>>,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    document_root: Option<Spanned<String>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    env: RawEnv,
    #[serde(default)]
    cgi: Vec<RawCgi>,
    #[serde(default)]
    fastcgi: Vec<RawFastcgi>,
    #[serde(default)]
    wsgi: Vec<RawWsgi>,
    status: Option<RawStatus>,
    access_log: Option<RawAccessLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessLog {
    path: Spanned<String>,
    #[serde(default)]
    format: access_log::Format,
}

/// A mount's `auth = { realm = ..., user_file = ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    realm: Spanned<String>,
    user_file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    #[serde(default)]
    enabled: bool,
    path: Option<Spanned<String>>,
    #[serde(default)]
    allow_remote: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<Spanned<usize>>,
    max_header_bytes: Option<Spanned<usize>>,
    max_body_bytes: Option<Spanned<u64>>,
    body_memory_bytes: Option<Spanned<usize>>,
    header_read_timeout_seconds: Option<Spanned<f64>>,
    script_head_timeout_seconds: Option<Spanned<f64>>,
    script_idle_timeout_seconds: Option<Spanned<f64>>,
    script_total_timeout_seconds: Option<Spanned<f64>>,
    kill_grace_seconds: Option<Spanned<f64>>,
    max_concurrent_scripts: Option<Spanned<usize>>,
    queue_timeout_seconds: Option<Spanned<f64>>,
    max_local_redirects: Option<Spanned<u32>>,
    shutdown_timeout_seconds: Option<Spanned<f64>>,
    lingering_time_seconds: Option<Spanned<f64>>,
    lingering_timeout_seconds: Option<Spanned<f64>>,
    max_lingering_bytes: Option<Spanned<u64>>,
    script_cpu_seconds: Option<Spanned<u64>>,
    script_memory_mb: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    #[serde(default)]
    pass: Vec<Spanned<String>>,
    #[serde(default)]
    set: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCgi {
    mount: Spanned<String>,
    dir: Option<Spanned<String>>,
    script: Option<Spanned<String>>,
    auth: Option<RawAuth>,
    #[serde(default)]
    pass_authorization: bool,
    #[serde(default)]
    interpreters: BTreeMap<String, Spanned<String>>,
}

// ---- loading -------------------------------------------------------------------------

/// Reads and validates a config file on its own (`portico check`).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    resolve(Some(path), &ServeArgs::default())
}

/// The config `serve` runs with: file or quick mode, then flags on top.
pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
    match (&args.config, &args.cgi_dir) {
        (Some(path), _) => resolve(Some(path), args),
        (None, Some(_)) => resolve(None, args),
        (None, None) => resolve(Some(Path::new(DEFAULT_CONFIG_PATH)), args),
    }
}

fn resolve(path: Option<&Path>, args: &ServeArgs) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return Validator { source: None }.config(RawConfig::default(), args);
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.to_owned()),
        line: None,
        key: None,
        message: format!("cannot read: {e}"),
    })?;
    let source = Source::new(path, &text);
    let raw: RawConfig = toml::from_str(&text).map_err(|e| {
        let mut err = source.error_at(e.span(), e.message());
        if err.key.is_none() {
            err.key = unknown_field(e.message());
        }
        err
    })?;
    Validator {
        source: Some(source),
    }
    .config(raw, args)
}

/// Names the offending key of serde's "unknown field `x`" message when the span is missing.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// The text of a config file, to turn byte spans into line numbers and dotted keys.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Source<'a> {
    fn new(path: &'a Path, text: &'a str) -> Self {
        Source { path, text }
    }

    fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let (line, key) = match span {
            Some(span) => {
                let (line, key) = locate(self.text, span.start);
                (Some(line), key)
            }
            None => (None, None),
        };
        ConfigError {
            file: Some(self.path.to_owned()),
            line,
            key,
            message: message.into(),
        }
    }

    /// Where relative paths in the file are anchored: the file's own directory.
    fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

/// Line number (1-based) of `offset` and the dotted key written on that line,
/// e.g. `limits.max_body_bytes` or `cgi[1].dir`.
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();

    let mut table: Option<String> = None;
    for header in before[..line_start].lines().map(str::trim) {
        if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
            let name = name.trim();
            // Only headers of this very array count: `[[fastcgi]]` is not a `[[cgi]]`.
            let index = before[..line_start]
                .lines()
                .filter_map(|l| l.trim().strip_prefix("[[")?.split("]]").next())
                .filter(|h| h.trim() == name)
                .count()
                - 1;
            table = Some(format!("{name}[{index}]"));
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = Some(name.trim().to_owned());
        }
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let key = match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    };
    (line_no, key)
}

struct Validator<'a> {
    source: Option<Source<'a>>,
}

impl Validator<'_> {
    fn spanned_error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        match &self.source {
            Some(source) => source.error_at(Some(span), message),
            None => ConfigError {
                file: None,
                line: None,
                key: None,
                message: message.into(),
            },
        }
    }

    fn flag_error(flag: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            line: None,
            key: Some(format!("--{flag}")),
            message: message.into(),
        }
    }

    fn base_dir(&self) -> PathBuf {
        self.source
            .as_ref()
            .map_or_else(|| PathBuf::from("."), Source::base_dir)
    }

    fn config(&self, raw: RawConfig, args: &ServeArgs) -> Result<Config, ConfigError> {
        let listen = if !args.listen.is_empty() {
            args.listen.clone()
        } else if let Some(listen) = &raw.listen {
            let addrs = match listen.get_ref() {
                OneOrMany::One(a) => vec![a.clone()],
                OneOrMany::Many(a) => a.clone(),
            };
            if addrs.is_empty() {
                return Err(self.spanned_error(listen.span(), "needs at least one address"));
            }
            addrs
                .iter()
                .map(|a| {
                    a.parse().map_err(|_| {
                        self.spanned_error(
                            listen.span(),
                            format!("`{a}` is not an address like 127.0.0.1:8080"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        } else {
            vec![SocketAddr::from(([127, 0, 0, 1], 8080))]
        };

        let run_as = self.run_as(&raw, args)?;
        let access_log = self.access_log(raw.access_log.as_ref(), args)?;
        let document_root = self.document_root(raw.document_root.as_ref(), args)?;

        let limits = self.limits(&raw.limits, args)?;
        let script_env = self.script_env(&raw.env);

        let mut cgi = raw
            .cgi
            .iter()
            .map(|m| self.cgi_mount(m))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(dir) = &args.cgi_dir {
            let dir = dir
                .canonicalize()
                .map_err(|e| Self::flag_error("cgi-dir", format!("{}: {e}", dir.display())))?;
            if !dir.is_dir() {
                return Err(Self::flag_error("cgi-dir", "not a directory"));
            }
            let mount = normalize_mount(args.mount.as_deref().unwrap_or("/cgi-bin"))
                .map_err(|m| Self::flag_error("mount", m))?;
            cgi.retain(|m| m.mount != mount);
            cgi.push(CgiMount {
                mount,
                dir,
                script: None,
                auth: None,
                pass_authorization: false,
                interpreters: Vec::new(),
            });
        }
        for (i, a) in cgi.iter().enumerate() {
            if cgi[..i].iter().any(|b| b.mount == a.mount) {
                let span = raw.cgi.get(i).map_or(0..0, |m| m.mount.span());
                return Err(self.spanned_error(span, "mount is listed twice"));
            }
        }
        // A WSGI mount is a FastCGI mount whose workers run the WSGI adapter.
        let mut fastcgi = raw
            .fastcgi
            .iter()
            .map(|m| self.fastcgi_mount(m))
            .collect::<Result<Vec<_>, _>>()?;
        for m in &raw.wsgi {
            fastcgi.push(self.wsgi_mount(m)?);
        }
        let spans: Vec<_> = raw
            .fastcgi
            .iter()
            .map(|m| m.mount.span())
            .chain(raw.wsgi.iter().map(|m| m.mount.span()))
            .collect();
        for (i, m) in fastcgi.iter().enumerate() {
            if cgi.iter().any(|c| c.mount == m.mount)
                || fastcgi[..i].iter().any(|f| f.mount == m.mount)
            {
                return Err(self.spanned_error(spans[i].clone(), "mount is listed twice"));
            }
        }
        if cgi.is_empty() && fastcgi.is_empty() {
            return Err(ConfigError {
                file: self.source.as_ref().map(|s| s.path.to_owned()),
                line: None,
                key: Some("cgi".into()),
                message: "no [[cgi]], [[fastcgi]] or [[wsgi]] mount: nothing to serve".into(),
            });
        }

        let status = match &raw.status {
            Some(status) if status.enabled => {
                let path = match &status.path {
                    Some(p) => normalize_mount(p.get_ref())
                        .ok()
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| {
                            self.spanned_error(
                                p.span(),
                                "must be a plain URL path like /portico-status",
                            )
                        })?,
                    None => "/portico-status".to_owned(),
                };
                Some(StatusPage {
                    path,
                    allow_remote: status.allow_remote,
                })
            }
            _ => None,
        };

        Ok(Config {
            listen,
            server_name: raw.server_name,
            threads: self.at_least(
                pick(args.threads, &raw.threads, default_threads(!cgi.is_empty())),
                1,
            )?,
            run_as,
            document_root,
            limits,
            script_env,
            cgi,
            fastcgi,
            status,
            access_log,
        })
    }

    /// A mount's Basic authentication; its user file is read now, to be sure it can be.
    pub(super) fn auth(
        &self,
        raw: Option<&RawAuth>,
    ) -> Result<Option<Arc<BasicAuth>>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let realm = raw.realm.get_ref();
        // RFC 7617 §2: the realm is a quoted-string in WWW-Authenticate.
        if realm.is_empty()
            || realm
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            let message = "a realm is some text without `\"`, `\\` or control characters";
            return Err(self.spanned_error(raw.realm.span(), message));
        }
        let path = self.base_dir().join(raw.user_file.get_ref());
        let auth = BasicAuth::new(realm, &path).map_err(|e| {
            self.spanned_error(raw.user_file.span(), format!("{}: {e}", path.display()))
        })?;
        Ok(Some(Arc::new(auth)))
    }

    /// `--access-log` (Combined format), else `[access_log]`; its directory must exist.
    fn access_log(
        &self,
        raw: Option<&RawAccessLog>,
        args: &ServeArgs,
    ) -> Result<Option<AccessLogFile>, ConfigError> {
        let (path, format, span) = match (&args.access_log, raw) {
            (Some(path), raw) => {
                let format = raw.map(|r| r.format).unwrap_or_default();
                (path.clone(), format, None)
            }
            (None, Some(raw)) => (
                self.base_dir().join(raw.path.get_ref()),
                raw.format,
                Some(raw.path.span()),
            ),
            (None, None) => return Ok(None),
        };
        let dir = match path.parent() {
            Some(dir) if dir.as_os_str().is_empty() => Path::new("."),
            Some(dir) => dir,
            None => Path::new("/"),
        };
        if !dir.is_dir() || path.is_dir() {
            let message = format!("{}: no directory to write it in", path.display());
            return Err(match span {
                Some(span) => self.spanned_error(span, message),
                None => Self::flag_error("access-log", message),
            });
        }
        Ok(Some(AccessLogFile { path, format }))
    }

    /// `--document-root` (relative to the current directory), else `document_root`
    /// (relative to the file). In quick mode, with no file, the current directory, as
    /// `python -m http.server --cgi` has it, so that scripts get DOCUMENT_ROOT and
    /// PATH_TRANSLATED (RFC 3875 §4.1.6) there too.
    fn document_root(
        &self,
        raw: Option<&Spanned<String>>,
        args: &ServeArgs,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let dir = match (&args.document_root, raw) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => return self.directory(dir).map(Some),
            (None, None) if self.source.is_none() => PathBuf::from("."),
            (None, None) => return Ok(None),
        };
        let canonical = dir
            .canonicalize()
            .map_err(|e| Self::flag_error("document-root", format!("{}: {e}", dir.display())))?;
        if !canonical.is_dir() {
            let message = format!("{} is not a directory", dir.display());
            return Err(Self::flag_error("document-root", message));
        }
        Ok(Some(canonical))
    }

    /// `user` and `group`, from the flags or else the file, looked up now.
    fn run_as(&self, raw: &RawConfig, args: &ServeArgs) -> Result<Option<RunAs>, ConfigError> {
        let from_file = |key: &Option<Spanned<String>>| {
            key.as_ref().map(|s| (s.get_ref().clone(), Some(s.span())))
        };
        let user = args
            .user
            .clone()
            .map(|u| (u, None))
            .or_else(|| from_file(&raw.user));
        let group = args
            .group
            .clone()
            .map(|g| (g, None))
            .or_else(|| from_file(&raw.group));
        let Some((user, user_span)) = user else {
            return match group {
                Some((_, span)) => Err(self.at(span, "needs `user` as well")),
                None => Ok(None),
            };
        };
        let (group, group_span) = group.map_or((None, None), |(g, span)| (Some(g), span));
        RunAs::resolve(&user, group.as_deref())
            .map(Some)
            .map_err(|error| {
                let (flag, span) = match error {
                    RunAsError::NoSuchGroup(_) => {
                        (args.group.is_some().then_some("group"), group_span)
                    }
                    _ => (args.user.is_some().then_some("user"), user_span),
                };
                match flag {
                    Some(flag) => Self::flag_error(flag, error.to_string()),
                    None => self.at(span, &error.to_string()),
                }
            })
    }

    fn limits(&self, raw: &RawLimits, args: &ServeArgs) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let flag = |name: &'static str, value: Option<f64>| value.map(|v| (name, v));
        let script_timeout = flag("script-timeout-seconds", args.script_timeout_seconds);
        if args.max_concurrent_scripts == Some(0) {
            return Err(Self::flag_error(
                "max-concurrent-scripts",
                "must be at least 1",
            ));
        }
        Ok(Limits {
            max_connections: self
                .at_least(pick(None, &raw.max_connections, d.max_connections), 1)?,
            max_header_bytes: self
                .at_least(pick(None, &raw.max_header_bytes, d.max_header_bytes), 8192)?,
            max_body_bytes: pick(args.max_body_bytes, &raw.max_body_bytes, d.max_body_bytes).0,
            body_memory_bytes: pick(None, &raw.body_memory_bytes, d.body_memory_bytes).0,
            header_read_timeout: self.seconds(
                flag(
                    "header-read-timeout-seconds",
                    args.header_read_timeout_seconds,
                ),
                &raw.header_read_timeout_seconds,
                d.header_read_timeout,
            )?,
            script_head_timeout: self.seconds(
                script_timeout,
                &raw.script_head_timeout_seconds,
                d.script_head_timeout,
            )?,
            script_idle_timeout: self.seconds(
                script_timeout,
                &raw.script_idle_timeout_seconds,
                d.script_idle_timeout,
            )?,
            script_total_timeout: self.seconds(
                flag(
                    "script-total-timeout-seconds",
                    args.script_total_timeout_seconds,
                ),
                &raw.script_total_timeout_seconds,
                d.script_total_timeout,
            )?,
            kill_grace: self.seconds(
                flag("kill-grace-seconds", args.kill_grace_seconds),
                &raw.kill_grace_seconds,
                d.kill_grace,
            )?,
            max_concurrent_scripts: self.at_least(
                pick(
                    args.max_concurrent_scripts,
                    &raw.max_concurrent_scripts,
                    d.max_concurrent_scripts,
                ),
                1,
            )?,
            queue_timeout: self.seconds(
                flag("queue-timeout-seconds", args.queue_timeout_seconds),
                &raw.queue_timeout_seconds,
                d.queue_timeout,
            )?,
            max_local_redirects: pick(None, &raw.max_local_redirects, d.max_local_redirects).0,
            shutdown_timeout: self.seconds(
                flag("shutdown-timeout-seconds", args.shutdown_timeout_seconds),
                &raw.shutdown_timeout_seconds,
                d.shutdown_timeout,
            )?,
            lingering_time: self.seconds(None, &raw.lingering_time_seconds, d.lingering_time)?,
            lingering_timeout: self.seconds(
                None,
                &raw.lingering_timeout_seconds,
                d.lingering_timeout,
            )?,
            max_lingering_bytes: pick(None, &raw.max_lingering_bytes, d.max_lingering_bytes).0,
            script_cpu_seconds: self.script_rlimit(&raw.script_cpu_seconds, 1, libc::RLIMIT_CPU)?,
            script_memory_bytes: self.script_rlimit(
                &raw.script_memory_mb,
                1 << 20,
                libc::RLIMIT_AS,
            )?,
        })
    }

    /// A script's resource limit in units of one. Above Portico's own hard limit it would
    /// fail every spawn (only a privileged process may raise one), so it is refused here.
    fn script_rlimit(
        &self,
        file: &Option<Spanned<u64>>,
        unit: u64,
        resource: crate::cgi::exec::Resource,
    ) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.positive(file, unit)? else {
            return Ok(None);
        };
        // SAFETY: getrlimit fills the local struct; geteuid has no effects.
        let mut own = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let known = unsafe { libc::getrlimit(resource, &mut own) } == 0;
        let privileged = unsafe { libc::geteuid() } == 0;
        // The CPU limit's hard value is one second above its soft one (`cgi::spawn`).
        let hard = value.saturating_add(u64::from(resource == libc::RLIMIT_CPU));
        if known && !privileged && own.rlim_max != libc::RLIM_INFINITY && hard > own.rlim_max {
            let span = file.as_ref().map(Spanned::span);
            return Err(self.at(span, "is above the hard limit Portico itself runs under"));
        }
        Ok(Some(value))
    }

    /// An optional count of `unit`s, at least one, returned in units of one.
    fn positive(&self, file: &Option<Spanned<u64>>, unit: u64) -> Result<Option<u64>, ConfigError> {
        let Some(value) = file else {
            return Ok(None);
        };
        match value.get_ref().checked_mul(unit) {
            Some(0) => Err(self.at(Some(value.span()), "must be at least 1")),
            Some(n) => Ok(Some(n)),
            None => Err(self.at(Some(value.span()), "is too large")),
        }
    }

    fn at_least(
        &self,
        (value, span): (usize, Option<Range<usize>>),
        min: usize,
    ) -> Result<usize, ConfigError> {
        if value < min {
            return Err(self.at(span, &format!("must be at least {min}")));
        }
        Ok(value)
    }

    /// A duration from the flag, else the file, else the default; positive and finite.
    fn seconds(
        &self,
        flag: Option<(&str, f64)>,
        file: &Option<Spanned<f64>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let value = pick(flag.map(|(_, v)| v), file, default.as_secs_f64());
        if value.0.is_finite() && value.0 > 0.0 && value.0 < 1e9 {
            return Ok(Duration::from_secs_f64(value.0));
        }
        let message = "must be a positive number of seconds";
        Err(match (flag, value.1) {
            (Some((name, _)), _) => Self::flag_error(name, message),
            (None, span) => self.at(span, message),
        })
    }

    /// An error at a value's span, or about the file as a whole when it has none.
    fn at(&self, span: Option<Range<usize>>, message: &str) -> ConfigError {
        match span {
            Some(span) => self.spanned_error(span, message),
            None => ConfigError {
                file: self.source.as_ref().map(|s| s.path.to_owned()),
                line: None,
                key: None,
                message: message.into(),
            },
        }
    }

    fn script_env(&self, raw: &RawEnv) -> Vec<(OsString, OsString)> {
        let path = std::env::var_os("PATH").unwrap_or_else(|| FALLBACK_PATH.into());
        let mut env = vec![(OsString::from("PATH"), path)];
        for name in &raw.pass {
            if let Some(value) = std::env::var_os(name.get_ref()) {
                env.push((name.get_ref().into(), value));
            }
        }
        for (name, value) in &raw.set {
            env.push((name.into(), value.get_ref().into()));
        }
        env
    }

    fn directory(&self, dir: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        let path = self.base_dir().join(dir.get_ref());
        let canonical = path
            .canonicalize()
            .map_err(|e| self.spanned_error(dir.span(), format!("{}: {e}", path.display())))?;
        if !canonical.is_dir() {
            return Err(
                self.spanned_error(dir.span(), format!("{} is not a directory", path.display()))
            );
        }
        Ok(canonical)
    }

    fn cgi_mount(&self, raw: &RawCgi) -> Result<CgiMount, ConfigError> {
        let mount = normalize_mount(raw.mount.get_ref())
            .map_err(|m| self.spanned_error(raw.mount.span(), m))?;
        let (dir, script) = match (&raw.dir, &raw.script) {
            (Some(dir), None) => (self.directory(dir)?, None),
            (None, Some(script)) => {
                let path = self.base_dir().join(script.get_ref());
                let script_path = path.canonicalize().map_err(|e| {
                    self.spanned_error(script.span(), format!("{}: {e}", path.display()))
                })?;
                if !script_path.is_file() {
                    let message = format!("{} is not a file", path.display());
                    return Err(self.spanned_error(script.span(), message));
                }
                let dir = script_path
                    .parent()
                    .map_or_else(PathBuf::new, Path::to_path_buf);
                (dir, Some((script_path, script.span())))
            }
            (Some(_), Some(script)) => {
                return Err(
                    self.spanned_error(script.span(), "a mount has `dir` or `script`, not both")
                );
            }
            (None, None) => {
                return Err(self.spanned_error(raw.mount.span(), "needs `dir` or `script`"));
            }
        };
        let mut interpreters = Vec::new();
        for (ext, command) in &raw.interpreters {
            if !ext.starts_with('.') || ext.len() < 2 || ext.contains('/') {
                return Err(self.spanned_error(
                    command.span(),
                    format!("`{ext}` is not a file extension like \".pl\""),
                ));
            }
            let mut argv: Vec<OsString> = command
                .get_ref()
                .split_whitespace()
                .map(Into::into)
                .collect();
            let Some(program) = argv.first_mut() else {
                return Err(self.spanned_error(command.span(), "empty interpreter command"));
            };
            // Resolved once so the spawn path never searches PATH (and std can use posix_spawn).
            if let Some(found) = find_on_path(Path::new(program.as_os_str())) {
                *program = found.into_os_string();
            }
            interpreters.push((ext.clone(), argv));
        }
        // Longest extension first, so ".tar.pl" would win over ".pl".
        interpreters.sort_by_key(|(ext, _)| std::cmp::Reverse(ext.len()));
        let mut cgi = CgiMount {
            mount,
            dir,
            script: None,
            auth: self.auth(raw.auth.as_ref())?,
            pass_authorization: raw.pass_authorization,
            interpreters,
        };
        if let Some((path, span)) = script {
            use std::os::unix::fs::PermissionsExt;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let executable = path
                .metadata()
                .is_ok_and(|meta| meta.permissions().mode() & 0o111 != 0);
            if !executable && cgi.interpreter_for(&name).is_none() {
                let message = format!(
                    "{} is not executable and has no interpreter",
                    path.display()
                );
                return Err(self.spanned_error(span, message));
            }
            cgi.script = Some(path);
        }
        Ok(cgi)
    }
}

/// One per CPU when CGI mounts start scripts on these threads (a spawn holds its thread
/// until the child's execve), else half the CPUs, leaving the rest to the FastCGI workers.
/// Measured on 2 CPUs with the peer harness: two threads served 5-10% more CGI requests/s
/// than one; one served up to 15% more FastCGI requests/s at 64 connections than two
/// (fewer wake-ups across threads).
fn default_threads(has_cgi: bool) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if has_cgi { cpus } else { (cpus / 2).max(1) }
}

/// A value from the flag, else the file, else the default, with the file's span for errors.
fn pick<T: Copy>(
    flag: Option<T>,
    file: &Option<Spanned<T>>,
    default: T,
) -> (T, Option<Range<usize>>) {
    match (flag, file) {
        (Some(v), _) => (v, None),
        (None, Some(s)) => (*s.get_ref(), Some(s.span())),
        (None, None) => (default, None),
    }
}

fn normalize_mount(mount: &str) -> Result<String, String> {
    if !mount.starts_with('/') {
        return Err(format!("`{mount}` must start with '/'"));
    }
    if mount.split('/').any(|s| s == "." || s == "..") || mount.contains(['%', '?', '#', '\\']) {
        return Err(format!("`{mount}` must be a plain URL path"));
    }
    Ok(mount.trim_end_matches('/').to_owned())
}

/// The absolute path of an interpreter named without a directory, if it is on PATH.
pub fn find_on_path(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return None;
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_names_line_and_dotted_key() {
        let text = "listen = \"x\"\n[limits]\nmax_body_bytes = -1\n[[cgi]]\nmount = \"/a\"\n[[cgi]]\ndir = 3\n";
        assert_eq!(locate(text, 0), (1, Some("listen".into())));
        let off = text.find("-1").unwrap();
        assert_eq!(locate(text, off), (3, Some("limits.max_body_bytes".into())));
        let off = text.find("dir").unwrap();
        assert_eq!(locate(text, off), (7, Some("cgi[1].dir".into())));
        let text = "[[fastcgi]]\nmount = \"/f\"\n[[cgi]]\ndir = 3\n";
        let off = text.find("dir").unwrap();
        assert_eq!(locate(text, off), (4, Some("cgi[0].dir".into())));
    }

    #[test]
    fn mounts_are_normalized_or_refused() {
        assert_eq!(normalize_mount("/cgi-bin/").unwrap(), "/cgi-bin");
        assert_eq!(normalize_mount("/").unwrap(), "");
        assert!(normalize_mount("cgi-bin").is_err());
        assert!(normalize_mount("/a/../b").is_err());
        assert!(normalize_mount("/a%20b").is_err());
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        load_file(&path)
    }

    #[test]
    fn default_threads_follow_the_mounts_and_the_file_wins() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let with_cgi = parse("[[cgi]]\nmount='/c'\ndir='bin'\n").unwrap();
        assert_eq!(with_cgi.threads, cpus);
        let fastcgi_only =
            parse("[[fastcgi]]\nmount='/f'\nupstream='tcp:127.0.0.1:9000'\nscript='/srv/app'\n")
                .unwrap();
        assert_eq!(fastcgi_only.threads, (cpus / 2).max(1));
        let set = parse("threads = 3\n[[cgi]]\nmount='/c'\ndir='bin'\n").unwrap();
        assert_eq!(set.threads, 3);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err =
            parse("[limits]\nmax_body_bytez = 1\n[[cgi]]\nmount='/c'\ndir='bin'\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.key.as_deref(), Some("limits.max_body_bytez"));
    }

    #[test]
    fn wrong_type_is_named_with_its_line() {
        let err =
            parse("[[cgi]]\nmount='/c'\ndir='bin'\n[limits]\nqueue_timeout_seconds = \"5\"\n")
                .unwrap_err();
        assert_eq!(err.line, Some(5));
        assert_eq!(err.key.as_deref(), Some("limits.queue_timeout_seconds"));
    }

    #[test]
    fn invalid_values_are_named() {
        let err = parse("[[cgi]]\nmount='/c'\ndir='nope'\n").unwrap_err();
        assert_eq!(
            (err.line, err.key.as_deref()),
            (Some(3), Some("cgi[0].dir"))
        );
        let err = parse("[[cgi]]\nmount='/c'\ndir='bin'\n[limits]\nkill_grace_seconds = 0\n")
            .unwrap_err();
        assert_eq!(
            (err.line, err.key.as_deref()),
            (Some(5), Some("limits.kill_grace_seconds"))
        );
        let err = parse("listen = ['nope']\n[[cgi]]\nmount='/c'\ndir='bin'\n").unwrap_err();
        assert_eq!((err.line, err.key.as_deref()), (Some(1), Some("listen")));
    }

    #[test]
    fn script_resource_limits_are_read_in_their_units() {
        let cgi = "[[cgi]]\nmount='/c'\ndir='bin'\n";
        let config = parse(cgi).unwrap();
        assert_eq!(config.limits.script_cpu_seconds, None);
        assert_eq!(config.limits.script_memory_bytes, None);
        let config = parse(&format!(
            "[limits]\nscript_cpu_seconds = 5\nscript_memory_mb = 256\n{cgi}"
        ))
        .unwrap();
        assert_eq!(config.limits.script_cpu_seconds, Some(5));
        assert_eq!(config.limits.script_memory_bytes, Some(256 << 20));
        for (line, key) in [
            ("script_cpu_seconds = 0", "limits.script_cpu_seconds"),
            ("script_memory_mb = 0", "limits.script_memory_mb"),
            (
                "script_memory_mb = 18446744073709551615",
                "limits.script_memory_mb",
            ),
        ] {
            let err = parse(&format!("{cgi}[limits]\n{line}\n")).unwrap_err();
            assert_eq!(
                (err.line, err.key.as_deref()),
                (Some(5), Some(key)),
                "{line}"
            );
        }
    }

    #[test]
    fn lingering_bounds_are_read_in_their_units() {
        let cgi = "[[cgi]]\nmount='/c'\ndir='bin'\n";
        let limits = parse(cgi).unwrap().limits;
        assert_eq!(
            (
                limits.lingering_time,
                limits.lingering_timeout,
                limits.max_lingering_bytes
            ),
            (Duration::from_secs(30), Duration::from_secs(2), 10 << 20)
        );
        let limits = parse(&format!(
            "[limits]\nlingering_time_seconds = 2.5\nlingering_timeout_seconds = 0.5\nmax_lingering_bytes = 4096\n{cgi}"
        ))
        .unwrap()
        .limits;
        assert_eq!(
            (
                limits.lingering_time,
                limits.lingering_timeout,
                limits.max_lingering_bytes
            ),
            (
                Duration::from_millis(2500),
                Duration::from_millis(500),
                4096
            )
        );
        for key in ["lingering_time_seconds", "lingering_timeout_seconds"] {
            let err = parse(&format!("{cgi}[limits]\n{key} = 0\n")).unwrap_err();
            let key = format!("limits.{key}");
            assert_eq!(
                (err.line, err.key.as_deref()),
                (Some(5), Some(key.as_str()))
            );
        }
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[limits]\nmax_concurrent_scripts = 64\n[[cgi]]\nmount='/c'\ndir='bin'\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            max_concurrent_scripts: Some(3),
            script_timeout_seconds: Some(2.0),
            ..ServeArgs::default()
        };
        let config = load(&args).unwrap();
        assert_eq!(config.limits.max_concurrent_scripts, 3);
        assert_eq!(config.limits.script_head_timeout, Duration::from_secs(2));
        assert_eq!(config.limits.script_idle_timeout, Duration::from_secs(2));
    }

    /// One name per setting: `--document-root` beats `document_root`; quick mode (no file)
    /// defaults to the current directory, a file without the key has none.
    #[test]
    fn document_root_from_the_flag_the_file_or_the_current_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for sub in ["bin", "htdocs", "flagged"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("file"), "").unwrap();
        let mount = "[[cgi]]\nmount='/c'\ndir='bin'\n";
        let with_key = root.join("with.toml");
        std::fs::write(&with_key, format!("document_root = 'htdocs'\n{mount}")).unwrap();
        let without_key = root.join("without.toml");
        std::fs::write(&without_key, mount).unwrap();
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();

        // (--config, --cgi-dir, --document-root) -> the document root
        let cases = [
            (Some(&with_key), None, None, Some(root.join("htdocs"))),
            (
                Some(&with_key),
                None,
                Some(root.join("flagged")),
                Some(root.join("flagged")),
            ),
            (Some(&without_key), None, None, None),
            (Some(&without_key), Some(root.join("bin")), None, None),
            (None, Some(root.join("bin")), None, Some(cwd)),
            (
                None,
                Some(root.join("bin")),
                Some(root.join("flagged/../htdocs")),
                Some(root.join("htdocs")),
            ),
        ];
        for (config, cgi_dir, document_root, want) in cases {
            let args = ServeArgs {
                config: config.cloned(),
                cgi_dir,
                document_root,
                ..ServeArgs::default()
            };
            assert_eq!(load(&args).unwrap().document_root, want, "{args:?}");
        }

        for bad in [root.join("missing"), root.join("file")] {
            let args = ServeArgs {
                cgi_dir: Some(root.join("bin")),
                document_root: Some(bad.clone()),
                ..ServeArgs::default()
            };
            let err = load(&args).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("--document-root"), "{bad:?}");
            assert!(err.message.contains(&*bad.to_string_lossy()), "{err}");
        }
    }

    #[test]
    fn interpreter_matches_by_extension() {
        let config =
            parse("[[cgi]]\nmount='/c'\ndir='bin'\ninterpreters = { '.pl' = 'perl -w' }\n")
                .unwrap();
        let mount = &config.cgi[0];
        assert!(mount.interpreter_for("a.pl").is_some());
        assert!(mount.interpreter_for(".pl").is_none());
        assert!(mount.interpreter_for("a.py").is_none());
        assert_eq!(mount.interpreter_for("a.pl").unwrap()[1], "-w");
    }
}
