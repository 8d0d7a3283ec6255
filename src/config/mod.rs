//! The one validated, immutable `Config`: the TOML file (or built-in defaults in quick mode)
//! merged with command-line flags (flag > file > default), checked once at start-up.
//!
//! Errors name the file, the line and the key. Nothing here is consulted per request
//! except the resolved values: interpreters are looked up on PATH and the scripts'
//! base environment is read from Portico's own environment here, once.
//!
//! This file owns `Config`, the file as written (`RawConfig`), `load` and the order in
//! which the tables are checked; each table is read and checked in its own file: the
//! top-level keys in `server`, `[limits]` in `limits`, `[env]` in `env`, `[[cgi]]` in
//! `cgi`, `[[fastcgi]]` in `fastcgi`, `[[wsgi]]` in `crate::wsgi::mount`, a mount's
//! `auth` in `auth`, a `[[cgi]]` mount's `persistent` in `persistent`, `[status]` in `status`, `[tls]` in `tls`, `[access_log]` in `access_log`. Locating an
//! error in the text is `source`'s; the checks every table shares are `value`'s.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::cli::{ListenAddr, LogFormat, ServeArgs};
use crate::forwarded::TrustedProxies;
use crate::privileges::RunAs;
use crate::wsgi;

mod access_log;
mod auth;
mod authorizer;
mod cgi;
mod env;
pub(crate) mod fastcgi;
pub(crate) mod limits;
mod persistent;
mod server;
pub(crate) mod source;
mod status;
mod tls;
pub(crate) mod value;

pub use access_log::AccessLogFile;
use access_log::RawAccessLog;
pub use authorizer::authorizer_name;
pub use cgi::CgiMount;
use cgi::RawCgi;
use env::RawEnv;
use fastcgi::RawFastcgi;
pub use fastcgi::{Balance, FastcgiMount, Launch, LaunchSocket, Upstream};
pub use limits::Limits;
use limits::RawLimits;
pub use persistent::{Language, Pattern, Runner, runner_name};
use server::OneOrMany;
pub use server::UnixSocket;
pub use source::ConfigError;
use source::{Source, Validator, unknown_field};
use status::RawStatus;
pub use status::StatusPage;
use tls::RawTls;
pub use tls::Tls;
pub use value::find_on_path;

/// Where the server looks when neither `--config` nor `--cgi-dir` is given.
pub const DEFAULT_CONFIG_PATH: &str = "conf/portico.toml";

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenAddr>,
    /// The mode and group of the unix sockets in `listen`.
    pub unix_socket: UnixSocket,
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
    /// The Prometheus metrics, when enabled.
    pub metrics: Option<StatusPage>,
    /// The teaching page (`portico explain` as a form), when enabled.
    pub explain: Option<StatusPage>,
    /// The access log file, when there is one.
    pub access_log: Option<AccessLogFile>,
    /// `--log-format`, else `log_format`, else text.
    pub log_format: LogFormat,
    /// The response field that carries the request's id (`X-Request-Id`), when asked for.
    pub request_id_header: Option<http::HeaderName>,
    /// The proxies whose Forwarded / X-Forwarded-* headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// The TLS listeners and their certificate, when there are any.
    pub tls: Option<Tls>,
}

impl Config {
    /// The FastCGI Authorizers of the mounts, each a FastCGI mount of its own that no
    /// request is routed to: their pools and launched workers start with the mounts'.
    pub fn authorizers(&self) -> impl Iterator<Item = &FastcgiMount> {
        let cgi = self.cgi.iter().filter_map(|m| m.authorizer.as_deref());
        cgi.chain(self.fastcgi.iter().filter_map(|m| m.authorizer.as_deref()))
    }

    /// The runners of the `[[cgi]]` mounts' `persistent` scripts, each a FastCGI mount of
    /// its own that no request is routed to: their pools and launched workers start with
    /// the mounts'.
    pub fn persistent_runners(&self) -> impl Iterator<Item = &FastcgiMount> {
        self.cgi
            .iter()
            .flat_map(|m| m.persistent.iter().map(|runner| &runner.mount))
    }
}

/// Nothing listened on or mounted, every limit at its default, one thread: the base of a
/// config built in code (the tests, the benches), which names only what it is about.
impl Default for Config {
    fn default() -> Config {
        Config {
            listen: Vec::new(),
            unix_socket: UnixSocket::default(),
            server_name: None,
            threads: 1,
            run_as: None,
            document_root: None,
            limits: Limits::default(),
            script_env: Vec::new(),
            cgi: Vec::new(),
            fastcgi: Vec::new(),
            status: None,
            metrics: None,
            explain: None,
            access_log: None,
            log_format: LogFormat::default(),
            request_id_header: None,
            trusted_proxies: TrustedProxies::default(),
            tls: None,
        }
    }
}

// ---- the file as written -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<Spanned<OneOrMany>>,
    unix_socket_mode: Option<Spanned<String>>,
    unix_socket_group: Option<Spanned<String>>,
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
    wsgi: Vec<wsgi::mount::RawWsgi>,
    tls: Option<RawTls>,
    status: Option<RawStatus>,
    metrics: Option<RawStatus>,
    explain: Option<RawStatus>,
    access_log: Option<RawAccessLog>,
    log_format: Option<LogFormat>,
    request_id_header: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
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

/// Validates a config file's text as `load_file` does once it has read `path`: relative
/// paths are anchored at `path`'s directory and errors name it. No flags apply.
pub fn load_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    from_text(path, text, &ServeArgs::default())
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
    from_text(path, &text, args)
}

fn from_text(path: &Path, text: &str, args: &ServeArgs) -> Result<Config, ConfigError> {
    let source = Source::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
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

impl Validator<'_> {
    /// The tables in the order they are checked: the first error is the one reported.
    fn config(&self, raw: RawConfig, args: &ServeArgs) -> Result<Config, ConfigError> {
        let listen = self.listen(raw.listen.as_ref(), args)?;
        let unix_socket = self.unix_socket(
            raw.unix_socket_mode.as_ref(),
            raw.unix_socket_group.as_ref(),
        )?;
        let tls = self.tls(raw.tls.as_ref())?;
        let run_as = self.run_as(&raw.user, &raw.group, args)?;
        let access_log = self.access_log(raw.access_log.as_ref(), args)?;
        let document_root = self.document_root(raw.document_root.as_ref(), args)?;

        let limits = self.limits(&raw.limits, args)?;
        let script_env = self.script_env(&raw.env);

        let cgi = self.cgi_mounts(&raw.cgi, args, &limits)?;
        let fastcgi = self.fastcgi_mounts(&raw, &cgi)?;
        if cgi.is_empty() && fastcgi.is_empty() {
            return Err(ConfigError {
                file: self.source.as_ref().map(|s| s.path.to_owned()),
                line: None,
                key: Some("cgi".into()),
                message: "no [[cgi]], [[fastcgi]] or [[wsgi]] mount: nothing to serve".into(),
            });
        }

        let status = self.status(raw.status.as_ref())?;
        let metrics = self.metrics(raw.metrics.as_ref())?;
        let explain = self.explain(raw.explain.as_ref())?;
        let mut proxies = Vec::new();
        let mut unix_proxies = false;
        for entry in &raw.trusted_proxies {
            let text = entry.get_ref().trim();
            if text == "unix" {
                unix_proxies = true;
                continue;
            }
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    self.spanned_error(
                        entry.span(),
                        "not an address, a network like 10.0.0.0/8, or \"unix\"",
                    )
                })?;
            proxies.push(net);
        }
        let request_id_header = match &raw.request_id_header {
            Some(name) => Some(
                http::HeaderName::from_bytes(name.get_ref().as_bytes())
                    .map_err(|_| self.spanned_error(name.span(), "not a header field name"))?,
            ),
            None => None,
        };

        Ok(Config {
            listen,
            unix_socket,
            server_name: raw.server_name,
            threads: self.threads(&raw.threads, args, !cgi.is_empty())?,
            run_as,
            document_root,
            limits,
            script_env,
            cgi,
            fastcgi,
            status,
            metrics,
            explain,
            access_log,
            log_format: args.log_format.or(raw.log_format).unwrap_or_default(),
            request_id_header,
            trusted_proxies: TrustedProxies::new(proxies, unix_proxies),
            tls,
        })
    }

    /// The `[[fastcgi]]` mounts, then the `[[wsgi]]` ones, none at a prefix already taken.
    fn fastcgi_mounts(
        &self,
        raw: &RawConfig,
        cgi: &[CgiMount],
    ) -> Result<Vec<FastcgiMount>, ConfigError> {
        // A WSGI mount is a FastCGI mount whose workers run the WSGI adapter.
        let mut fastcgi = raw
            .fastcgi
            .iter()
            .map(|m| self.fastcgi_mount(m))
            .collect::<Result<Vec<_>, _>>()?;
        for m in &raw.wsgi {
            fastcgi.push(wsgi::mount::fastcgi_mount(self, m)?);
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
        Ok(fastcgi)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
}
