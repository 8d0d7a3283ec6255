//! The end of one request: the client answered with the error if no head went out, the
//! access line written, the connection given back (kept only after a clean end, aborted
//! with FCGI_ABORT_REQUEST (§5.4) when the client left) and the lease released with what
//! the supervisor counts.

use std::sync::atomic::Ordering;

use http::StatusCode;

use super::Exchange;
use crate::backend::{Reply, Runner, Stop};
use crate::error::{Deadline, Error};
use crate::fastcgi::half::{abort, take_back};

impl Exchange {
    /// Answers the client if the head never went out, writes the log line and gives the
    /// connection back (kept if the request ended cleanly).
    pub(super) async fn finish(mut self, stop: Stop) {
        let is_complete = matches!(stop, Stop::Ended) && !self.redirected;
        // What the supervisor counts: a worker that takes requests and answers none backs
        // off. A client that left or a shutdown is nobody's failure.
        let clean = !matches!(stop, Stop::Broken(_) | Stop::Deadline(_)) && self.failed.is_none();
        if is_complete && (self.head_tx.is_none() || self.ready.is_some()) {
            self.complete.store(true, Ordering::Release);
        }
        // A head held back goes out only with a whole response; otherwise no byte has
        // reached the client and it gets the error below instead.
        if is_complete {
            self.release_head();
        } else if self.ready.take().is_some() {
            self.status = None;
            self.sent = 0;
        }
        let Some(lease) = self.lease.take() else {
            return;
        };
        if let Stop::Deadline(Deadline::Total) = stop {
            lease.mark_stuck();
        }
        // A local redirect's access line is written by the request it turned into.
        if self.redirected {
            self.line.redirected();
        }
        let endpoint = self.endpoint.clone();
        let runner = || Runner::Upstream {
            upstream: &endpoint.address,
            app_status: self.app_status,
        };
        match (self.head_tx.take(), self.failed.take()) {
            (Some(tx), failed) => {
                let error = failed.unwrap_or_else(|| match &stop {
                    Stop::Deadline(d) => Error::Timeout(*d),
                    Stop::ClientGone => Error::ClientGone,
                    Stop::Shutdown => Error::ShuttingDown,
                    Stop::AppStopped => Error::AppStopped(
                        lease.pool_stopped().unwrap_or_else(|| "stopped".to_owned()),
                    ),
                    Stop::Broken(_) if self.heard => Error::UpstreamClosed,
                    Stop::Ended | Stop::Broken(_) => Error::NoHead,
                });
                self.line
                    .write(error.status().as_u16(), 0, &stop, runner(), Some(&error));
                let _ = tx.send(Reply::Failed(error));
            }
            (None, _) => {
                let status = self.status.unwrap_or(StatusCode::OK).as_u16();
                self.line.write(status, self.sent, &stop, runner(), None);
            }
        }
        // The client's side ends here; tidying the connection up is not its business.
        self.body_tx = None;
        self.in_flight = None;
        let (Some(conn), Some(sending)) = (self.conn.take(), self.sending.take()) else {
            return;
        };
        let kept = match stop {
            Stop::Ended if !self.redirected => take_back(conn, sending).await,
            Stop::ClientGone | Stop::Ended => {
                abort(conn, sending).await;
                None
            }
            _ => {
                sending.abort();
                None
            }
        };
        lease.release(kept, clean);
    }
}
