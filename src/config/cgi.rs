//! `[[cgi]]` mounts: a URL prefix served by a directory of scripts, or by one script for
//! every path under it, with the interpreters of its file extensions, its authentication
//! and the scripts it keeps warm (`persistent`); and the mount that `--cgi-dir` adds in
//! quick mode.
//!
//! It does not split URL paths into scripts (`router` does) nor run them (`cgi`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::auth::RawAuth;
use super::limits::Limits;
use super::persistent::{RawPersistent, Runner};
use super::source::{ConfigError, Validator};
use super::value::{find_on_path, normalize_mount};
use crate::auth::BasicAuth;
use crate::cli::ServeArgs;

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
    /// Apache suEXEC's file checks before a script runs (`router::suexec`).
    pub suexec: bool,
    /// The FastCGI Authorizer asked before each script runs (`config::authorizer`).
    pub authorizer: Option<Box<super::FastcgiMount>>,
    /// The directory whose files a script may have sent with X-Sendfile (`sendfile`).
    pub x_sendfile: Option<PathBuf>,
    /// The runners that keep some of its scripts warm (`config::persistent`); empty when
    /// every script runs as plain CGI.
    pub persistent: Vec<Runner>,
}

impl CgiMount {
    pub fn interpreter_for(&self, file_name: &str) -> Option<&[OsString]> {
        self.interpreters
            .iter()
            .find(|(ext, _)| file_name.len() > ext.len() && file_name.ends_with(ext.as_str()))
            .map(|(_, argv)| argv.as_slice())
    }

    /// The runner that keeps the script called `file_name` warm, if one lists it.
    pub fn runner_for(&self, file_name: &str) -> Option<&Runner> {
        self.persistent
            .iter()
            .find(|runner| runner.scripts.iter().any(|p| p.matches(file_name)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCgi {
    mount: Spanned<String>,
    dir: Option<Spanned<String>>,
    script: Option<Spanned<String>>,
    auth: Option<RawAuth>,
    #[serde(default)]
    pass_authorization: bool,
    authorizer: Option<super::authorizer::RawAuthorizer>,
    x_sendfile: Option<Spanned<String>>,
    #[serde(default)]
    interpreters: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    suexec: bool,
    persistent: Option<Spanned<RawPersistent>>,
}

impl Validator<'_> {
    /// The file's mounts, then `--cgi-dir` at `--mount` (replacing a file's mount there).
    pub(super) fn cgi_mounts(
        &self,
        raw: &[RawCgi],
        args: &ServeArgs,
        limits: &Limits,
    ) -> Result<Vec<CgiMount>, ConfigError> {
        let mut cgi = raw
            .iter()
            .map(|m| self.cgi_mount(m, limits))
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
                authorizer: None,
                x_sendfile: None,
                interpreters: Vec::new(),
                suexec: false,
                persistent: Vec::new(),
            });
        }
        for (i, a) in cgi.iter().enumerate() {
            if cgi[..i].iter().any(|b| b.mount == a.mount) {
                let span = raw.get(i).map_or(0..0, |m| m.mount.span());
                return Err(self.spanned_error(span, "mount is listed twice"));
            }
        }
        Ok(cgi)
    }

    fn cgi_mount(&self, raw: &RawCgi, limits: &Limits) -> Result<CgiMount, ConfigError> {
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
            mount: mount.clone(),
            dir,
            script: None,
            auth: self.auth(raw.auth.as_ref())?,
            pass_authorization: raw.pass_authorization,
            interpreters,
            suexec: raw.suexec,
            authorizer: self.authorizer(&mount, raw.mount.span(), raw.authorizer.as_ref())?,
            x_sendfile: raw
                .x_sendfile
                .as_ref()
                .map(|d| self.directory(d))
                .transpose()?,
            persistent: self.persistent(&mount, raw.persistent.as_ref(), limits)?,
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

#[cfg(test)]
mod tests {
    use super::super::source::Source;
    use super::*;

    /// The `[[cgi]]` mounts of a config text, in a directory holding `bin/`.
    fn parse(text: &str) -> Result<Vec<CgiMount>, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            cgi: Vec<RawCgi>,
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let path = dir.path().join("p.toml");
        let file: File = toml::from_str(text).unwrap();
        let validator = Validator {
            source: Some(Source::new(&path, text)),
        };
        validator.cgi_mounts(&file.cgi, &ServeArgs::default(), &Limits::default())
    }

    #[test]
    fn interpreter_matches_by_extension() {
        let mounts =
            parse("[[cgi]]\nmount='/c'\ndir='bin'\ninterpreters = { '.pl' = 'perl -w' }\n")
                .unwrap();
        let mount = &mounts[0];
        assert!(mount.interpreter_for("a.pl").is_some());
        assert!(mount.interpreter_for(".pl").is_none());
        assert!(mount.interpreter_for("a.py").is_none());
        assert_eq!(mount.interpreter_for("a.pl").unwrap()[1], "-w");
    }
}
