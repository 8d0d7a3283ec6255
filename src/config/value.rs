//! Single values the way every table reads them: a setting from the flag, else the file,
//! else the default (`pick`); durations in seconds, counts with a minimum, directories
//! relative to the config file, URL mount prefixes, programs found on PATH.
//!
//! It knows no table and no default: which key takes which check, and its default, is
//! decided by the table's own file.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::source::{ConfigError, Validator};

impl Validator<'_> {
    pub(super) fn at_least(
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
    pub(crate) fn seconds(
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

    /// A directory named in the file, relative to the file's own, made canonical.
    pub(crate) fn directory(&self, dir: &Spanned<String>) -> Result<PathBuf, ConfigError> {
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
}

/// A value from the flag, else the file, else the default, with the file's span for errors.
pub(super) fn pick<T: Copy>(
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

/// A mount prefix as routes compare it: a plain URL path without its trailing slash.
pub(crate) fn normalize_mount(mount: &str) -> Result<String, String> {
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
    fn mounts_are_normalized_or_refused() {
        assert_eq!(normalize_mount("/cgi-bin/").unwrap(), "/cgi-bin");
        assert_eq!(normalize_mount("/").unwrap(), "");
        assert!(normalize_mount("cgi-bin").is_err());
        assert!(normalize_mount("/a/../b").is_err());
        assert!(normalize_mount("/a%20b").is_err());
    }
}
