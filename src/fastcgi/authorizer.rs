//! The Authorizer role (FastCGI 1.0 §6.3): before a mount's request runs, its authorizer
//! gets the request's meta-variables (no body) and answers. 200 lets the request through,
//! its `Variable-NAME: value` headers becoming NAME=value for the program that answers it;
//! any other answer goes to the client as the authorizer wrote it (a 401 with its
//! WWW-Authenticate, a 403, a redirect), and the program never runs.

use std::ffi::OsString;

use http::{HeaderMap, Response};

use super::client::FastCgi;
use super::job::Job;
use crate::backend::{Outcome, Request};
use crate::body::ResponseBody;
use crate::config::FastcgiMount;
use crate::error::Error;

/// What an authorizer decided.
pub enum Verdict {
    /// Let through, with the variables to add to the request's meta-variables.
    Allow(Vec<(String, OsString)>),
    /// Answered for the program: this response goes to the client.
    Deny(Response<ResponseBody>),
}

/// §6.3: "Variable-" names a variable for the responder; the prefix is case-insensitive,
/// as field names are.
const PREFIX: &str = "variable-";

impl FastCgi {
    /// Asks `authorizer` about `request` (its body is not sent, and stays the caller's).
    pub async fn authorize(
        &self,
        authorizer: &FastcgiMount,
        request: Request,
    ) -> Result<Verdict, Error> {
        let job = Job::authorizer(authorizer, request)?;
        match self.run(job).await? {
            Outcome::Response(response) if response.status() == http::StatusCode::OK => {
                Ok(Verdict::Allow(variables(response.headers())))
            }
            Outcome::Response(mut response) => {
                let headers = response.headers_mut();
                let names: Vec<_> = headers
                    .keys()
                    .filter(|name| name.as_str().starts_with(PREFIX))
                    .cloned()
                    .collect();
                for name in names {
                    headers.remove(name);
                }
                Ok(Verdict::Deny(response))
            }
            Outcome::Failed(error) => Err(error),
            // A path to serve instead means nothing for an authorizer: a broken answer.
            Outcome::LocalRedirect(_) | Outcome::Nph { .. } => Err(Error::Authorizer(
                "the authorizer answered with a local redirect, which §6.3 does not allow",
            )),
        }
    }
}

/// The `Variable-NAME: value` headers as NAME=value, NAME upper-cased as meta-variables
/// are; a name that is no meta-variable name, or a value that is not text, is left out.
fn variables(headers: &HeaderMap) -> Vec<(String, OsString)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let var = name.as_str().strip_prefix(PREFIX)?.to_ascii_uppercase();
            let var = var.replace('-', "_");
            let valid =
                !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let value = value.to_str().ok()?;
            valid.then(|| (var, OsString::from(value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_headers_become_meta_variables_and_nothing_else_does() {
        let mut headers = HeaderMap::new();
        headers.insert("variable-auth_user", "alice".parse().unwrap());
        headers.insert("Variable-Auth-Level", "admin".parse().unwrap());
        headers.insert("variable-", "empty name".parse().unwrap());
        headers.insert("variable-bad.name", "x".parse().unwrap());
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("x-variable-no", "x".parse().unwrap());
        let mut got = variables(&headers);
        got.sort();
        assert_eq!(
            got,
            [
                ("AUTH_LEVEL".to_owned(), OsString::from("admin")),
                ("AUTH_USER".to_owned(), OsString::from("alice")),
            ]
        );
    }
}
