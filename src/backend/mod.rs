//! What every backend hands the gateway, whichever generation runs the request: the
//! outcome (a response, an NPH response, a local redirect or a failure already logged),
//! the owners of the requests in flight, and the reply channel that carries the parsed
//! head and the streamed body from a request's owner to the gateway.
//!
//! CGI (`cgi`), FastCGI (`fastcgi`) and WSGI (a launched FastCGI app) all answer through
//! it; none of them imports another's insides. It knows nothing of processes, sockets or
//! records.
//!
//! - [`reply`]: the channel from a request's owner to the gateway, and the response built
//!   from what comes through it (the body's framing: whole with a Content-Length, or
//!   streamed and cut visibly when the output did not end cleanly);
//! - [`owners`]: the tasks that own requests in flight, and a future that finishes alone;
//! - [`log`]: the request's one access line, written by whoever ends the request.

pub mod log;
pub mod owners;
pub mod reply;

use http::Response;

use crate::body::{RequestBody, ResponseBody};
use crate::error::Error;
use crate::meta::MetaVars;

pub use log::{RequestLine, Runner, Stop};
pub use owners::{FinishesAlone, Owners};
pub use reply::{Reply, ReplyReceiver, ReplySender, reply_channel};

/// What every backend is handed, whatever carries it to the program: the meta-variables
/// (RFC 3875 §4.1), the body, and the request's access line to write at the end.
pub struct Request {
    pub meta: MetaVars,
    pub body: RequestBody,
    pub line: RequestLine,
}

/// What a backend's answer means for the gateway.
pub enum Outcome {
    Response(Response<ResponseBody>),
    /// RFC 3875 §5: the response of an NPH script, parsed, and its head as the script wrote it.
    Nph {
        response: Response<ResponseBody>,
        raw_head: bytes::Bytes,
    },
    /// RFC 3875 §6.2.2: serve this path instead.
    LocalRedirect(String),
    /// The request failed; its owner has logged why.
    Failed(Error),
}
