//! A mount's FastCGI Authorizer asked before the request runs (`fastcgi::authorizer`):
//! its variables join the meta-variables, or its answer goes to the client instead.

use std::ffi::OsString;
use std::time::Instant;

use http::Response;

use super::{Gateway, Route};
use crate::access_log::Pending;
use crate::backend::{Request as BackendRequest, RequestLine, Runner, Stop};
use crate::body::{RequestBody, ResponseBody};
use crate::error::Error;
use crate::fastcgi::authorizer::Verdict;
use crate::meta::{self, MetaVars};
use crate::metrics::MountMetrics;
use crate::request_id::RequestId;
use crate::router;

/// What the request carries into the authorizer's question and its own log line.
pub(super) struct Asking<'a> {
    pub id: &'a RequestId,
    pub started: Instant,
    pub access: Option<&'a Pending>,
    pub counted: Option<std::sync::Arc<MountMetrics>>,
}

impl Gateway {
    /// The variables the authorizer of `route`'s mount grants, or the response it gave
    /// instead (already logged as the request's). No authorizer: nothing to add.
    pub(super) async fn authorize(
        &self,
        path: &str,
        route: &Route<'_>,
        info: &meta::RequestInfo<'_>,
        asking: Asking<'_>,
    ) -> Result<Result<Vec<(String, OsString)>, Response<ResponseBody>>, Error> {
        let Some(authorizer) = router::authorizer_for(&self.config, path) else {
            return Ok(Ok(Vec::new()));
        };
        // The credentials are what an authorizer judges (mod_fcgid passes them too), though
        // the program behind it gets them only with `pass_authorization`.
        let mut target = route.target();
        target.pass_authorization = true;
        // §6.3: no body, so no CONTENT_LENGTH (`Job::authorizer` drops it).
        let meta = meta::build(&self.config, &target, info)?;
        let line = |access: Option<&Pending>, metrics| RequestLine {
            id: asking.id.clone(),
            metrics,
            method: info.method.clone(),
            path: info.uri.path().into(),
            client: info.remote.ip().to_canonical(),
            started: asking.started,
            access: access.cloned(),
        };
        // Its own line names the authorizer and is not the request's: the request's is
        // written by the program that answers it, or below when the authorizer does.
        let question = BackendRequest {
            meta,
            body: RequestBody::None,
            line: line(None, None),
        };
        match self.fastcgi.authorize(authorizer, question).await? {
            Verdict::Allow(granted) => Ok(Ok(granted)),
            Verdict::Deny(response) => {
                let bytes = hyper::body::Body::size_hint(response.body()).exact();
                line(asking.access, asking.counted).write(
                    response.status().as_u16(),
                    bytes.unwrap_or(0),
                    &Stop::Ended,
                    Runner::Gateway,
                    None,
                );
                Ok(Err(response))
            }
        }
    }
}

/// Adds what an authorizer granted to `meta`, replacing a variable of the same name.
pub(super) fn grant(meta: &mut MetaVars, granted: &[(String, OsString)]) {
    for (name, value) in granted {
        meta.retain(|(existing, _)| existing != name);
        meta.push((name.clone(), value.clone()));
    }
}
