//! The meta-variables as `explain` lists them: each with its group and the place that
//! defines it, and secrets masked unless asked for.

use serde::Serialize;

use crate::config::Config;
use crate::meta::MetaVars;

#[derive(Serialize)]
pub struct MetaVariable {
    pub name: String,
    pub value: String,
    /// "RFC 3875", "extra" (what servers add by custom), "configured" or "HTTP_*"
    /// (request headers).
    pub group: &'static str,
    /// Where the variable is defined.
    pub source: &'static str,
}

/// The groups, in the order they are shown.
pub const GROUPS: [&str; 4] = ["RFC 3875", "extra", "configured", "HTTP_*"];

pub const MASK: &str = "*** (--show-secrets shows it)";

pub fn list(vars: &MetaVars, config: &Config, show: bool) -> Vec<MetaVariable> {
    vars.iter()
        .map(|(name, value)| {
            let (group, source) = describe(name, config);
            MetaVariable {
                name: name.clone(),
                value: masked(name, &value.to_string_lossy(), show),
                group,
                source,
            }
        })
        .collect()
}

/// Credentials stay off the terminal (and out of pasted bug reports) unless asked for.
pub fn masked(name: &str, value: &str, show: bool) -> String {
    let secret = matches!(
        name,
        "HTTP_COOKIE" | "HTTP_AUTHORIZATION" | "HTTP_PROXY_AUTHORIZATION"
    );
    if secret && !show {
        MASK.to_owned()
    } else {
        value.to_owned()
    }
}

/// The variable's group and the place that defines it.
fn describe(name: &str, config: &Config) -> (&'static str, &'static str) {
    let section = match name {
        "AUTH_TYPE" => "RFC 3875 §4.1.1",
        "CONTENT_LENGTH" => "RFC 3875 §4.1.2",
        "CONTENT_TYPE" => "RFC 3875 §4.1.3",
        "GATEWAY_INTERFACE" => "RFC 3875 §4.1.4",
        "PATH_INFO" => "RFC 3875 §4.1.5",
        "PATH_TRANSLATED" => "RFC 3875 §4.1.6",
        "QUERY_STRING" => "RFC 3875 §4.1.7",
        "REMOTE_ADDR" => "RFC 3875 §4.1.8",
        "REMOTE_HOST" => "RFC 3875 §4.1.9",
        "REMOTE_IDENT" => "RFC 3875 §4.1.10",
        "REMOTE_USER" => "RFC 3875 §4.1.11",
        "REQUEST_METHOD" => "RFC 3875 §4.1.12",
        "SCRIPT_NAME" => "RFC 3875 §4.1.13",
        "SERVER_NAME" => "RFC 3875 §4.1.14",
        "SERVER_PORT" => "RFC 3875 §4.1.15",
        "SERVER_PROTOCOL" => "RFC 3875 §4.1.16",
        "SERVER_SOFTWARE" => "RFC 3875 §4.1.17",
        n if n.starts_with("HTTP_") => return ("HTTP_*", "RFC 3875 §4.1.18 (request headers)"),
        "REDIRECT_STATUS" => return ("extra", "php-cgi's force-redirect check (Apache)"),
        "UNIQUE_ID" => {
            return (
                "extra",
                "the request's id in the log (Apache mod_unique_id)",
            );
        }
        "REQUEST_URI" | "SCRIPT_FILENAME" | "DOCUMENT_ROOT" | "REMOTE_PORT" | "SERVER_ADDR"
        | "REQUEST_SCHEME" | "HTTPS" => return ("extra", "de facto (Apache, nginx)"),
        n if config.script_env.iter().any(|(k, _)| k == n) => {
            return ("configured", "[env] in the config");
        }
        _ => return ("extra", "Portico"),
    };
    ("RFC 3875", section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_unless_shown() {
        assert_eq!(masked("HTTP_COOKIE", "a=1", false), MASK);
        assert_eq!(masked("HTTP_COOKIE", "a=1", true), "a=1");
        assert_eq!(masked("HTTP_ACCEPT", "*/*", false), "*/*");
    }
}
