//! Reading a script's stdout (RFC 3875 §6): the head up to its blank line within the head
//! deadline, what follows it at once (so a small response goes out whole, with a length),
//! and the body on to the client with backpressure under the idle and total deadlines.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

use super::{GATHER_WINDOW, HEAD_CHUNK, READ_CHUNK, Run};
use crate::backend::{Reply, Stop};
use crate::cgi::response::{self, Head};
use crate::error::Deadline;

impl Run {
    /// Reads stdout until the blank line that ends the head. The outer error is why reading
    /// stopped early; the inner one a head that does not parse.
    pub(super) async fn read_head(
        &mut self,
        buf: &mut BytesMut,
        head_tx: &mut oneshot::Sender<Reply>,
    ) -> Result<Result<(Head, Bytes), response::HeadError>, Stop> {
        let deadline = self.head_deadline.min(self.total_deadline);
        let which = if self.head_deadline <= self.total_deadline {
            Deadline::Head
        } else {
            Deadline::Total
        };
        loop {
            if let Some((parsed, raw)) = response::take_head(buf, self.is_nph) {
                return Ok(parsed.map(|head| (head, raw)));
            }
            buf.reserve(HEAD_CHUNK);
            tokio::select! {
                read = self.process.stdout.read_buf(buf) => match read {
                    Ok(0) => return Err(Stop::Ended),
                    Ok(_) => {}
                    Err(e) => return Err(Stop::Broken(format!("reading stdout: {e}"))),
                },
                _ = sleep_until(deadline) => return Err(Stop::Deadline(which)),
                _ = head_tx.closed() => return Err(Stop::ClientGone),
                _ = self.kill_all.cancelled() => return Err(Stop::Shutdown),
            }
        }
    }

    /// Reads on for up to `GATHER_WINDOW` after the head, while less than a large read has
    /// come. `Some` when stdout ended (or failed) within it.
    pub(super) async fn gather(&mut self, buf: &mut BytesMut) -> Option<Stop> {
        let until = tokio::time::Instant::now() + GATHER_WINDOW;
        while buf.len() < READ_CHUNK {
            buf.reserve(HEAD_CHUNK);
            tokio::select! {
                read = self.process.stdout.read_buf(buf) => match read {
                    Ok(0) => return Some(Stop::Ended),
                    Ok(_) => {}
                    Err(e) => return Some(Stop::Broken(format!("reading stdout: {e}"))),
                },
                _ = sleep_until(until) => return None,
            }
        }
        None
    }

    /// Copies stdout to the client (or drains it when `body_tx` is `None`) until EOF,
    /// a deadline, a client gone or shutdown.
    ///
    /// `owed` is what is left of the Content-Length the script declared: once the client
    /// has it all, hyper has ended the response and lets go of the body, which is then no
    /// client gone but a script still on its way out. Its output is drained to its end
    /// (within the deadlines) rather than the script killed.
    pub(super) async fn pipe_body(
        &mut self,
        buf: &mut BytesMut,
        mut body_tx: Option<&mpsc::Sender<io::Result<Bytes>>>,
        mut owed: Option<u64>,
    ) -> (Stop, u64) {
        let mut sent = 0;
        // Small reads until the script shows it has a lot to say.
        let mut chunk = HEAD_CHUNK;
        let stop = loop {
            buf.clear();
            buf.reserve(chunk);
            let idle = tokio::time::Instant::now() + self.idle_timeout;
            let (deadline, which) = if idle < self.total_deadline {
                (idle, Deadline::Idle)
            } else {
                (self.total_deadline, Deadline::Total)
            };
            let client_gone = async {
                match body_tx {
                    Some(tx) => tx.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = self.process.stdout.read_buf(buf) => match read {
                    Ok(0) => break Stop::Ended,
                    Ok(n) => {
                        if n >= HEAD_CHUNK / 2 {
                            chunk = READ_CHUNK;
                        }
                        if let Some(tx) = body_tx {
                            // A client that stops reading holds the script up, but only
                            // until the total deadline.
                            tokio::select! {
                                sent_ok = tx.send(Ok(buf.split().freeze())) => if sent_ok.is_err() {
                                    if owed == Some(0) {
                                        body_tx = None;
                                        continue;
                                    }
                                    break Stop::ClientGone;
                                },
                                _ = sleep_until(self.total_deadline) => break Stop::Deadline(Deadline::Total),
                                _ = self.kill_all.cancelled() => break Stop::Shutdown,
                            }
                            sent += n as u64;
                            owed = owed.map(|o| o.saturating_sub(n as u64));
                        }
                    }
                    Err(e) => break Stop::Broken(format!("reading stdout: {e}")),
                },
                _ = sleep_until(deadline) => break Stop::Deadline(which),
                _ = client_gone => {
                    if owed == Some(0) {
                        body_tx = None;
                        continue;
                    }
                    break Stop::ClientGone;
                }
                _ = self.kill_all.cancelled() => break Stop::Shutdown,
            }
        };
        (stop, sent)
    }
}

/// The Content-Length the script declared, which hyper holds the response to.
pub(super) fn declared_length(head: &Head) -> Option<u64> {
    head.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
