//! `[env]`: the environment every script and launched worker starts from: PATH (Portico's
//! own), then the variables `pass` names, then the ones `set` gives, read once, here.
//!
//! The meta-variables of a request are added per request by `meta`, not here.

use std::collections::BTreeMap;
use std::ffi::OsString;

use serde::Deserialize;
use toml::Spanned;

use super::source::Validator;

/// PATH for scripts when Portico itself has none.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnv {
    #[serde(default)]
    pass: Vec<Spanned<String>>,
    #[serde(default)]
    set: BTreeMap<String, Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn script_env(&self, raw: &RawEnv) -> Vec<(OsString, OsString)> {
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
}
