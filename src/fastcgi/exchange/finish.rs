//! The end of one request: the client answered with the error if no head went out, the
//! access line written, the connection given back (kept only after a clean end, aborted
//! with FCGI_ABORT_REQUEST (§5.4) when the client left) and the lease released with what
//! the supervisor counts. A persistent CGI runner's failure of its own goes back to the
//! gateway without a line (`runner_failure`).

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
        // A runner that declined a script answered as it should.
        let declined = matches!(self.failed, Some(Error::Declined { .. }));
        let clean = !matches!(stop, Stop::Broken(_) | Stop::Deadline(_))
            && (self.failed.is_none() || declined);
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
                let error = match self.runner {
                    true => runner_failure(error, &stop, self.heard),
                    false => error,
                };
                // The gateway answers a runner's failure (plain CGI) and writes its line.
                if !matches!(error, Error::Declined { .. }) {
                    self.line
                        .write(error.status().as_u16(), 0, &stop, runner(), Some(&error));
                }
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
            // A declined request's END_REQUEST may still be on its way: not kept.
            Stop::Ended if !self.redirected && !declined => take_back(conn, sending).await,
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

/// What a persistent CGI runner's failure means (`crate::persistent`): one that plain CGI
/// would not have, its worker breaking off before any head (it crashed, or the script
/// ended it) or the runner stopped before it took the request, becomes `Error::Declined`;
/// a script's own failure (a bad head, a deadline) stays what it is.
fn runner_failure(error: Error, stop: &Stop, heard: bool) -> Error {
    match (error, stop) {
        (Error::UpstreamClosed | Error::NoHead, Stop::Broken(why)) => Error::Declined {
            why: format!("its worker broke off: {why}"),
            may_have_run: heard,
            runner_down: false,
        },
        (Error::AppStopped(why), _) => Error::Declined {
            why: format!("the runner is stopped: {why}"),
            may_have_run: false,
            runner_down: true,
        },
        (error, _) => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_runner_itself_are_declines() {
        let broken = || Stop::Broken("upstream closed before END_REQUEST".into());
        // (error, stop, heard, declined, may have run)
        let cases = [
            (Error::NoHead, broken(), false, true, false),
            (Error::UpstreamClosed, broken(), true, true, true),
            (
                Error::AppStopped("exits at start".into()),
                Stop::AppStopped,
                false,
                true,
                false,
            ),
            // The script printed nothing: plain CGI gives the same 502.
            (Error::NoHead, Stop::Ended, true, false, false),
            (
                Error::Timeout(crate::error::Deadline::Head),
                Stop::Deadline(crate::error::Deadline::Head),
                true,
                false,
                false,
            ),
            (Error::ClientGone, Stop::ClientGone, true, false, false),
        ];
        for (error, stop, heard, declined, ran) in cases {
            let text = error.to_string();
            match runner_failure(error, &stop, heard) {
                Error::Declined { may_have_run, .. } => {
                    assert!(declined, "{text} on {stop} was declined");
                    assert_eq!(may_have_run, ran, "{text} on {stop}");
                }
                other => assert!(!declined, "{text} on {stop} became {other}"),
            }
        }
    }
}
