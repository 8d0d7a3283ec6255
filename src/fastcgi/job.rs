//! One request for a FastCGI application, as the backend takes it: the mount that names
//! its pool, its deadlines, and the meta-variables encoded once as FCGI_PARAMS. A request
//! for a persistent CGI runner (`crate::persistent`) is one too, marked as such.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use bytes::Bytes;

use super::params;
use super::record::Role;
use crate::backend::Request;
use crate::config::FastcgiMount;
use crate::error::Error;
use crate::router;

/// One request for a FastCGI application.
pub struct Job {
    /// The mount, which names the pool.
    pub mount: String,
    pub read_timeout: Duration,
    /// A launched app's `request_timeout`: past it the worker is stuck and replaced.
    pub request_timeout: Option<Duration>,
    /// FCGI_RESPONDER, or FCGI_AUTHORIZER for a mount's authorizer (§6.3).
    pub role: Role,
    /// The FCGI_PARAMS stream's content: meta-variables, then the mount's extra params.
    pub params: Bytes,
    /// The app is a persistent CGI runner: its head may decline the request
    /// (`persistent::DECLINED`), and a failure of its own before any head is handed back
    /// as `Error::Declined` without an access line, for the gateway to answer otherwise.
    pub runner: bool,
    pub request: Request,
}

impl Job {
    /// The request for the app the router found, its meta-variables encoded once, here,
    /// as FCGI_PARAMS name-value pairs (§3.4), then the mount's extra params.
    pub fn new(app: &router::FastcgiMatch<'_>, request: Request) -> Result<Job, Error> {
        Job::to(app.mount, Role::Responder, false, request)
    }

    /// The request for a persistent CGI runner: the script's meta-variables exactly as
    /// plain CGI would set them (SCRIPT_FILENAME names the script to run), nothing else.
    pub fn for_runner(runner: &FastcgiMount, request: Request) -> Result<Job, Error> {
        Job::to(runner, Role::Responder, true, request)
    }

    /// The question for `authorizer` about `request` (FastCGI §6.3): its meta-variables
    /// without CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED and SCRIPT_NAME, and no body.
    pub fn authorizer(authorizer: &FastcgiMount, mut request: Request) -> Result<Job, Error> {
        request.meta.retain(|(name, _)| {
            !matches!(
                name.as_str(),
                "CONTENT_LENGTH" | "PATH_INFO" | "PATH_TRANSLATED" | "SCRIPT_NAME"
            )
        });
        request.body = crate::body::RequestBody::None;
        Job::to(authorizer, Role::Authorizer, false, request)
    }

    /// `request` for `mount`'s pool in `role`: the meta-variables, then the mount's extra
    /// params (none for an authorizer or a runner), encoded once as FCGI_PARAMS.
    fn to(mount: &FastcgiMount, role: Role, runner: bool, request: Request) -> Result<Job, Error> {
        let pairs = request
            .meta
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .chain(
                mount
                    .params
                    .iter()
                    .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            );
        let params = params::encode_pairs(pairs)
            .map_err(|_| Error::HeadersTooLarge)?
            .freeze();
        Ok(Job {
            mount: mount.mount.clone(),
            read_timeout: mount.read_timeout,
            request_timeout: mount.launch.as_ref().and_then(|l| l.request_timeout),
            role,
            params,
            runner,
            request,
        })
    }
}
