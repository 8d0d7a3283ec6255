//! The channel from a request's owner (a CGI run, a FastCGI exchange) to the gateway:
//! the parsed head once, then body chunks with backpressure, and whether the body ended
//! cleanly; and the response hyper sends, built from it.
//!
//! The framing is decided here for every backend: a body already whole when the head is
//! read goes out in one frame with a Content-Length; otherwise it streams, and a body
//! whose output did not end cleanly ends with an error, so that hyper cuts the response
//! (no last chunk, or a connection closed short of its length) instead of framing a
//! truncated body as complete.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use tokio::sync::{mpsc, oneshot};

use super::Outcome;
use crate::body::ResponseBody;
use crate::cgi::response::{self, Head};
use crate::error::Error;

/// What a request's owner tells the gateway once the head is known.
pub enum Reply {
    Head {
        head: response::Head,
        /// The head as the script wrote it, blank line included.
        raw_head: bytes::Bytes,
        /// Body bytes read together with the head.
        first: bytes::Bytes,
        is_head_request: bool,
    },
    LocalRedirect(String),
    Failed(Error),
}

/// The owner task's end of a request: the head (once), then body chunks, and whether the
/// body ended cleanly. Shared by CGI and FastCGI.
pub struct ReplySender {
    pub head: oneshot::Sender<Reply>,
    pub body: mpsc::Sender<std::io::Result<bytes::Bytes>>,
    pub complete: Arc<AtomicBool>,
}

/// The gateway's end.
pub struct ReplyReceiver {
    head: oneshot::Receiver<Reply>,
    body: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    complete: Arc<AtomicBool>,
}

pub fn reply_channel() -> (ReplySender, ReplyReceiver) {
    let (head_tx, head) = oneshot::channel();
    let (body_tx, body) = mpsc::channel(4);
    let complete = Arc::new(AtomicBool::new(false));
    let sender = ReplySender {
        head: head_tx,
        body: body_tx,
        complete: complete.clone(),
    };
    (
        sender,
        ReplyReceiver {
            head,
            body,
            complete,
        },
    )
}

impl ReplyReceiver {
    /// Waits for the head and turns it into what the gateway answers. A body that has
    /// already ended cleanly (`complete`, set after its last chunk was queued) is sent
    /// whole, with a Content-Length, instead of chunk by chunk.
    pub async fn outcome(self) -> Outcome {
        let reply = match self.head.await {
            Ok(reply) => reply,
            // The owner always answers unless its task panicked.
            Err(_) => return Outcome::Failed(Error::NoHead),
        };
        match reply {
            Reply::Head {
                head,
                raw_head,
                first,
                is_head_request,
            } => {
                let is_nph = head.kind == response::Kind::Nph;
                let whole = !is_nph && self.complete.load(Ordering::Acquire);
                let response = if whole {
                    whole_response(head, first, is_head_request, self.body)
                } else {
                    response(head, first, is_head_request, self.body, self.complete)
                };
                if is_nph {
                    Outcome::Nph { response, raw_head }
                } else {
                    Outcome::Response(response)
                }
            }
            Reply::LocalRedirect(location) => Outcome::LocalRedirect(location),
            Reply::Failed(error) => Outcome::Failed(error),
        }
    }
}

/// The response hyper sends: the head's status, reason and fields, and the output.
fn response(
    head: Head,
    first: Bytes,
    is_head_request: bool,
    body_rx: mpsc::Receiver<io::Result<Bytes>>,
    complete: Arc<AtomicBool>,
) -> Response<ResponseBody> {
    let first = (!first.is_empty()).then(|| Ok(Frame::data(first)));
    // A channel that closes before the script's output ended cleanly (deadline, shutdown,
    // read error) ends the body with an error, so hyper cuts the response instead of
    // framing a truncated body as complete.
    let rest = futures_util::stream::unfold(Some(body_rx), move |rx| {
        let complete = complete.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(chunk) => Some((chunk.map(Frame::data), Some(rx))),
                None if complete.load(Ordering::Acquire) => None,
                None => {
                    // hyper drops what it has not written yet when a body fails: one turn
                    // lets it flush the output that did arrive before the cut.
                    tokio::task::yield_now().await;
                    Some((Err(io::Error::other("output cut short")), None))
                }
            }
        }
    });
    let body = StreamBody::new(futures_util::StreamExt::chain(
        futures_util::stream::iter(first),
        rest,
    ))
    .boxed();
    with_head(head, is_head_request, body)
}

fn with_head(head: Head, is_head_request: bool, body: ResponseBody) -> Response<ResponseBody> {
    let body = if is_head_request {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        body
    };
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    if let Some(reason) = head.reason
        && head.status.canonical_reason() != Some(reason.as_str())
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        response.extensions_mut().insert(phrase);
    }
    *response.headers_mut() = head.headers;
    response
}

/// The response for a body that has ended cleanly and is all at hand: one frame, so hyper
/// frames it with a Content-Length.
fn whole_response(
    head: Head,
    first: Bytes,
    is_head_request: bool,
    mut body_rx: mpsc::Receiver<io::Result<Bytes>>,
) -> Response<ResponseBody> {
    let mut chunks = vec![first];
    while let Ok(Ok(chunk)) = body_rx.try_recv() {
        chunks.push(chunk);
    }
    let body = match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    };
    with_head(head, is_head_request, crate::body::full(body))
}
