//! The request-path error: each variant knows its HTTP status and whose fault it is.
//! `gateway` turns one into a response with a short generic body; the details
//! (stderr, paths, causes) go to the log only.

use std::fmt;

use http::StatusCode;

/// The cause of an error raised inside a backend (a head that does not parse, records that
/// break the protocol): each backend converts its own error types into `Error`, so this
/// module knows none of them.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Whose fault an error is, for the log (like pingora's downstream/upstream/internal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Script,
    Gateway,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Script => "script",
            Side::Gateway => "gateway",
        })
    }
}

/// Which of a script's three deadlines ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Connecting to a FastCGI upstream.
    Connect,
    Head,
    Idle,
    Total,
}

impl Deadline {
    pub fn name(self) -> &'static str {
        match self {
            Deadline::Head => "head",
            Deadline::Idle => "idle",
            Deadline::Total => "total",
            Deadline::Connect => "connect",
        }
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no script at this path")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body larger than the limit")]
    BodyTooLarge,
    #[error("request headers larger than the limit")]
    HeadersTooLarge,
    #[error("reading the request body failed")]
    BodyRead(#[source] std::io::Error),
    #[error("all script slots busy past the queue timeout")]
    Overloaded,
    #[error("the script could not be started")]
    Spawn(#[source] std::io::Error),
    #[error("the script's response head is invalid")]
    Head(#[source] Cause),
    #[error("the script ended before its response head")]
    NoHead,
    #[error("the script was killed by signal {0} before its output ended")]
    ScriptKilled(i32),
    #[error("the script missed its {0} deadline")]
    Timeout(Deadline),
    #[error("more than {0} local redirects")]
    RedirectLoop(u32),
    #[error("spooling the request body failed")]
    Spool(#[source] std::io::Error),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the client went away")]
    ClientGone,
    #[error("the FastCGI upstream failed")]
    Upstream(#[source] std::io::Error),
    #[error("the FastCGI upstream closed the connection before FCGI_END_REQUEST")]
    UpstreamClosed,
    #[error("the FastCGI upstream broke the protocol")]
    Protocol(#[source] Cause),
    #[error("the FastCGI authorizer failed: {0}")]
    Authorizer(&'static str),
    #[error("X-Sendfile named a file outside the mount's x_sendfile directory")]
    SendfileOutside,
    #[error("the application is stopped: {0}")]
    AppStopped(String),
    /// A persistent CGI runner could not host the script (`crate::persistent`): it declined
    /// it, its worker broke off before any head, or the runner is down. `may_have_run`: the
    /// script may have started, so running it again is safe only for an idempotent request.
    /// `runner_down`: the runner, not the script, is the cause (it is stopped).
    #[error("the persistent runner could not serve the script: {why}")]
    Declined {
        why: String,
        may_have_run: bool,
        runner_down: bool,
    },
    #[error("no valid credentials for realm {0:?}")]
    Unauthorized(String),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            // The client paused its body past body_read_timeout_seconds.
            Error::BodyRead(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                StatusCode::REQUEST_TIMEOUT
            }
            Error::BadRequest(_) | Error::BodyRead(_) => StatusCode::BAD_REQUEST,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Overloaded | Error::ShuttingDown | Error::AppStopped(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Spawn(_)
            | Error::Head(_)
            | Error::NoHead
            | Error::ScriptKilled(_)
            | Error::RedirectLoop(_)
            | Error::Upstream(_)
            | Error::UpstreamClosed
            | Error::Protocol(_)
            | Error::Authorizer(_)
            | Error::SendfileOutside
            | Error::Declined { .. } => StatusCode::BAD_GATEWAY,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::Spool(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // nginx's 499: only ever logged, there is nobody left to answer.
            Error::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    pub fn side(&self) -> Side {
        match self {
            Error::NotFound
            | Error::Unauthorized(_)
            | Error::Forbidden(_)
            | Error::BadRequest(_)
            | Error::MethodNotAllowed
            | Error::BodyTooLarge
            | Error::HeadersTooLarge
            | Error::BodyRead(_)
            | Error::ClientGone => Side::Client,
            Error::Head(_)
            | Error::NoHead
            | Error::ScriptKilled(_)
            | Error::Timeout(_)
            | Error::RedirectLoop(_)
            | Error::Spawn(_)
            | Error::Upstream(_)
            | Error::UpstreamClosed
            | Error::Protocol(_)
            | Error::Authorizer(_)
            | Error::SendfileOutside
            | Error::AppStopped(_)
            | Error::Declined { .. } => Side::Script,
            Error::Overloaded | Error::Spool(_) | Error::ShuttingDown => Side::Gateway,
        }
    }
}

/// The error and its sources, one line, for a log field.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
