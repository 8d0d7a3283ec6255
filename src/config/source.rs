//! The config file's text and the errors that point into it: `ConfigError` (file, line,
//! key, message); `Source`, which turns a byte span into a line number and a dotted key
//! such as `limits.max_body_bytes` or `cgi[1].dir`; and the `Validator` that carries the
//! source while the tables are checked, with the constructors of its errors.
//!
//! It checks no value itself: each table's checks live with the table, and the ones every
//! table shares (seconds, counts, directories, mount prefixes) in `value`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

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

/// The text of a config file, to turn byte spans into line numbers and dotted keys.
pub(crate) struct Source<'a> {
    pub(super) path: &'a Path,
    text: &'a str,
}

impl<'a> Source<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Source { path, text }
    }

    pub(super) fn error_at(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
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
            // A header that names nothing (`[` alone) is the error itself, no table.
            table = Some(name.trim().to_owned()).filter(|t| !t.is_empty());
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

/// Names the offending key of serde's "unknown field `x`" message when the span is missing.
pub(super) fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    match &rest[..rest.find('`')?] {
        // The empty key, as TOML writes it: an error must name something.
        "" => Some("\"\"".to_owned()),
        name => Some(name.to_owned()),
    }
}

/// What every table's checks are run with: the file's source, or `None` in quick mode
/// (no file: the defaults and the flags alone).
pub(crate) struct Validator<'a> {
    pub(crate) source: Option<Source<'a>>,
}

impl Validator<'_> {
    pub(crate) fn spanned_error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
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

    pub(super) fn flag_error(flag: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            line: None,
            key: Some(format!("--{flag}")),
            message: message.into(),
        }
    }

    pub(super) fn base_dir(&self) -> PathBuf {
        self.source
            .as_ref()
            .map_or_else(|| PathBuf::from("."), Source::base_dir)
    }

    /// An error at a value's span, or about the file as a whole when it has none.
    pub(super) fn at(&self, span: Option<Range<usize>>, message: &str) -> ConfigError {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_empty_key_is_named_as_toml_writes_it() {
        assert_eq!(
            unknown_field("unknown field `x`, expected one of"),
            Some("x".into())
        );
        assert_eq!(
            unknown_field("unknown field ``, expected one of"),
            Some("\"\"".into())
        );
    }

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
        // Found by fuzz/config: a bare `[` named the key as the empty string.
        let text = "[\nx = 1\n";
        let off = text.find('x').unwrap();
        assert_eq!(locate(text, off), (2, Some("x".into())));
    }
}
