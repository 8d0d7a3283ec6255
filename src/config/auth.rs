//! A mount's `auth = { realm = ..., user_file = ... }`, shared by `[[cgi]]` and
//! `[[fastcgi]]` mounts: the realm checked and the htpasswd file read once, here.
//!
//! Checking a request's credentials is `crate::auth`'s.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::source::{ConfigError, Validator};
use crate::auth::BasicAuth;

/// A mount's `auth = { realm = ..., user_file = ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    realm: Spanned<String>,
    user_file: Spanned<String>,
}

impl Validator<'_> {
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
}
