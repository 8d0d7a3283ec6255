//! `[status]`, `[metrics]` and `[explain]`: whether the operators' status page, the
//! Prometheus metrics and the teaching page are on, the path each answers at and who may
//! see them.
//!
//! The page itself is `crate::status`'s, the metrics `crate::metrics`', the teaching page
//! `crate::explain::page`'s.

use serde::Deserialize;
use toml::Spanned;

use super::source::{ConfigError, Validator};
use super::value::normalize_mount;

/// Where a page for operators (the status page, the metrics, the teaching page) answers
/// and who may see it.
#[derive(Debug, Clone)]
pub struct StatusPage {
    pub path: String,
    /// Off by default: only clients on the loopback interface see it.
    pub allow_remote: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatus {
    #[serde(default)]
    enabled: bool,
    path: Option<Spanned<String>>,
    #[serde(default)]
    allow_remote: bool,
}

impl Validator<'_> {
    /// The status page when `enabled`, at `path` or else `/portico-status`.
    pub(super) fn status(
        &self,
        raw: Option<&RawStatus>,
    ) -> Result<Option<StatusPage>, ConfigError> {
        self.operators_page(raw, "/portico-status")
    }

    /// The metrics when `enabled`, at `path` or else `/metrics`, where Prometheus looks.
    pub(super) fn metrics(
        &self,
        raw: Option<&RawStatus>,
    ) -> Result<Option<StatusPage>, ConfigError> {
        self.operators_page(raw, "/metrics")
    }

    /// The teaching page (`portico explain` in a browser) when `enabled`, at `path` or
    /// else `/portico-explain`.
    pub(super) fn explain(
        &self,
        raw: Option<&RawStatus>,
    ) -> Result<Option<StatusPage>, ConfigError> {
        self.operators_page(raw, "/portico-explain")
    }

    fn operators_page(
        &self,
        raw: Option<&RawStatus>,
        default_path: &str,
    ) -> Result<Option<StatusPage>, ConfigError> {
        Ok(match raw {
            Some(status) if status.enabled => {
                let path = match &status.path {
                    Some(p) => normalize_mount(p.get_ref())
                        .ok()
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| {
                            self.spanned_error(
                                p.span(),
                                format!("must be a plain URL path like {default_path}"),
                            )
                        })?,
                    None => default_path.to_owned(),
                };
                Some(StatusPage {
                    path,
                    allow_remote: status.allow_remote,
                })
            }
            _ => None,
        })
    }
}
