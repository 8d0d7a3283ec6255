//! `[access_log]` and `--access-log`: the file the access log goes to and its format, its
//! directory checked once, here.
//!
//! Writing the lines and reopening the file on SIGHUP is `crate::access_log`'s.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::source::{ConfigError, Validator};
use crate::access_log;
use crate::cli::ServeArgs;

/// Where the access log goes and in which format.
#[derive(Debug, Clone)]
pub struct AccessLogFile {
    pub path: PathBuf,
    pub format: access_log::Format,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessLog {
    path: Spanned<String>,
    #[serde(default)]
    format: access_log::Format,
}

impl Validator<'_> {
    /// `--access-log` (Combined format), else `[access_log]`; its directory must exist.
    pub(super) fn access_log(
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
}
