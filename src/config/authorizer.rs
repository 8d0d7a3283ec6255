//! A mount's `authorizer`: the FastCGI application asked, before each request runs, whether
//! it may (FastCGI 1.0 §6.3, the Authorizer role; lighttpd's `"mode" => "authorizer"`,
//! mod_fcgid's `FcgidAuthorizer`). Written inline on a `[[cgi]]` or `[[fastcgi]]` mount:
//!
//! ```toml
//! authorizer = { upstream = "unix:/run/auth.sock" }
//! authorizer = { launch = { command = ["/srv/auth.fcgi"], workers = 1 } }
//! ```
//!
//! It becomes a FastCGI mount of its own, named after the mount it guards and never
//! routed to, so that its pool, launched workers and status come from the same code.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::fastcgi::{Balance, FastcgiMount, RawLaunch};
use super::source::{ConfigError, Validator};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthorizer {
    upstream: Option<Spanned<String>>,
    #[serde(default)]
    upstreams: Vec<Spanned<String>>,
    launch: Option<Spanned<RawLaunch>>,
    balance: Option<Balance>,
    max_connections: Option<Spanned<usize>>,
    fail_timeout_seconds: Option<Spanned<f64>>,
    connect_timeout_seconds: Option<Spanned<f64>>,
    read_timeout_seconds: Option<Spanned<f64>>,
}

/// The name of the authorizer of `mount`: a pool's and a supervisor's name, and what the
/// status page and the log call it. Never a URL path, so no request is routed to it.
pub fn authorizer_name(mount: &str) -> String {
    format!(
        "{} (authorizer)",
        if mount.is_empty() { "/" } else { mount }
    )
}

impl Validator<'_> {
    /// The authorizer of `mount`, as a FastCGI mount of its own.
    pub(super) fn authorizer(
        &self,
        mount: &str,
        mount_span: std::ops::Range<usize>,
        raw: Option<&RawAuthorizer>,
    ) -> Result<Option<Box<FastcgiMount>>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let mut upstreams = Vec::new();
        for spec in raw.upstream.iter().chain(&raw.upstreams) {
            upstreams.push(self.upstream(spec)?);
        }
        let launch = raw.launch.as_ref().map(|l| self.launch(l)).transpose()?;
        if launch.is_some() != upstreams.is_empty() {
            return Err(self.spanned_error(
                mount_span,
                "its authorizer needs one of `upstream`, `upstreams` or `launch`",
            ));
        }
        let max_connections = match &raw.max_connections {
            Some(n) if *n.get_ref() == 0 => {
                return Err(self.spanned_error(n.span(), "must be at least 1"));
            }
            other => other.as_ref().map(|n| *n.get_ref()),
        };
        let script = launch
            .as_ref()
            .map(|l| std::path::PathBuf::from(&l.command[0]));
        Ok(Some(Box::new(FastcgiMount {
            mount: authorizer_name(mount),
            upstreams,
            launch,
            balance: raw.balance.unwrap_or(Balance::LeastBusy),
            max_connections,
            fail_timeout: self.seconds(None, &raw.fail_timeout_seconds, Duration::from_secs(10))?,
            root: None,
            script,
            split_path_info: None,
            params: Vec::new(),
            auth: None,
            pass_authorization: true,
            authorizer: None,
            x_sendfile: None,
            connect_timeout: self.seconds(
                None,
                &raw.connect_timeout_seconds,
                Duration::from_secs(5),
            )?,
            // An authorizer is in front of every request: it must answer quickly.
            read_timeout: self.seconds(None, &raw.read_timeout_seconds, Duration::from_secs(10))?,
        })))
    }
}
