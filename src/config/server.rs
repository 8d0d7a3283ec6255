//! The top-level keys about the server itself: `listen` (and `unix_socket_mode` and
//! `unix_socket_group`, for unix sockets), `threads`, `user` and `group`
//! (who Portico serves as), and `document_root`, each from its flag, else the file, else
//! its default.
//!
//! Binding the addresses and dropping privileges happen later, in `main`, `server` and
//! `privileges`; here they are only read and looked up.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::source::{ConfigError, Validator};
use super::value::pick;
use crate::cli::{ListenAddr, ServeArgs};
use crate::privileges::{RunAs, RunAsError};

/// The permissions of the unix sockets Portico listens on, so that a front proxy running
/// as another user may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixSocket {
    pub mode: u32,
    pub group: Option<u32>,
}

impl Default for UnixSocket {
    fn default() -> UnixSocket {
        UnixSocket {
            mode: 0o660,
            group: None,
        }
    }
}

/// `listen = "addr"` or `listen = ["addr", ...]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Validator<'_> {
    /// `--listen`, else `listen`, else 127.0.0.1:8080.
    pub(super) fn listen(
        &self,
        raw: Option<&Spanned<OneOrMany>>,
        args: &ServeArgs,
    ) -> Result<Vec<ListenAddr>, ConfigError> {
        let listen = if !args.listen.is_empty() {
            args.listen.clone()
        } else if let Some(listen) = raw {
            self.addresses(listen)?
        } else {
            vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080)))]
        };
        Ok(listen)
    }

    /// One address or a list of them, at least one; a unix socket's relative path is
    /// relative to the config file's directory.
    pub(super) fn addresses(
        &self,
        listen: &Spanned<OneOrMany>,
    ) -> Result<Vec<ListenAddr>, ConfigError> {
        let addrs = match listen.get_ref() {
            OneOrMany::One(a) => vec![a.clone()],
            OneOrMany::Many(a) => a.clone(),
        };
        if addrs.is_empty() {
            return Err(self.spanned_error(listen.span(), "needs at least one address"));
        }
        addrs
            .iter()
            .map(|a| match a.parse::<ListenAddr>() {
                Ok(ListenAddr::Unix(path)) => Ok(ListenAddr::Unix(self.base_dir().join(path))),
                Ok(tcp) => Ok(tcp),
                Err(message) => Err(self.spanned_error(listen.span(), message)),
            })
            .collect()
    }

    /// `--threads`, else `threads`, else as many as `default_threads` says; at least one.
    pub(super) fn threads(
        &self,
        raw: &Option<Spanned<usize>>,
        args: &ServeArgs,
        has_cgi: bool,
    ) -> Result<usize, ConfigError> {
        self.at_least(pick(args.threads, raw, default_threads(has_cgi)), 1)
    }

    /// `user` and `group`, from the flags or else the file, looked up now.
    pub(super) fn run_as(
        &self,
        file_user: &Option<Spanned<String>>,
        file_group: &Option<Spanned<String>>,
        args: &ServeArgs,
    ) -> Result<Option<RunAs>, ConfigError> {
        let from_file = |key: &Option<Spanned<String>>| {
            key.as_ref().map(|s| (s.get_ref().clone(), Some(s.span())))
        };
        let user = args
            .user
            .clone()
            .map(|u| (u, None))
            .or_else(|| from_file(file_user));
        let group = args
            .group
            .clone()
            .map(|g| (g, None))
            .or_else(|| from_file(file_group));
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

    /// `unix_socket_mode` (octal, default 0660 as php-fpm's `listen.mode`) and
    /// `unix_socket_group` (a name or gid, looked up now) for the unix sockets of `listen`.
    pub(super) fn unix_socket(
        &self,
        mode: Option<&Spanned<String>>,
        group: Option<&Spanned<String>>,
    ) -> Result<UnixSocket, ConfigError> {
        let mode = match mode {
            None => 0o660,
            Some(text) => u32::from_str_radix(text.get_ref().trim_start_matches("0o"), 8)
                .ok()
                .filter(|mode| *mode <= 0o777)
                .ok_or_else(|| self.spanned_error(text.span(), "not a mode like \"0660\""))?,
        };
        let group = match group {
            None => None,
            Some(name) => {
                let text = name.get_ref();
                let found = match text.parse::<u32>() {
                    Ok(gid) => nix::unistd::Group::from_gid(gid.into()),
                    Err(_) => nix::unistd::Group::from_name(text),
                };
                match found {
                    Ok(Some(group)) => Some(group.gid.as_raw()),
                    _ => return Err(self.spanned_error(name.span(), format!("no group `{text}`"))),
                }
            }
        };
        Ok(UnixSocket { mode, group })
    }

    /// `--document-root` (relative to the current directory), else `document_root`
    /// (relative to the file). In quick mode, with no file, the current directory, as
    /// `python -m http.server --cgi` has it, so that scripts get DOCUMENT_ROOT and
    /// PATH_TRANSLATED (RFC 3875 §4.1.6) there too.
    pub(super) fn document_root(
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
