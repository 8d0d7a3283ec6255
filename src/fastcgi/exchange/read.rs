//! Reading one request's records (FastCGI §6.2): the next record, waited for under the
//! head, idle and total deadlines while watching the client, the app being stopped and
//! the request's own write side; then what each record means: stdout through the CGI
//! head parser and on to the client with backpressure, stderr to the log, and
//! FCGI_END_REQUEST. A kept connection found closed before any record came back has the
//! request sent once more on a fresh one, when that can do no harm.

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::{Exchange, Pumped, closed};
use crate::backend::{Reply, Stop};
use crate::cgi::response::{self, Kind as HeadKind};
use crate::error::{Deadline, Error};
use crate::fastcgi::half::{is_closed, split};
use crate::fastcgi::pool::Link;
use crate::fastcgi::record::{self, Kind};
use crate::fastcgi::send::{Sending, write_request};
use crate::persistent::DECLINED;

impl Exchange {
    /// The kept connection ended before any record came back: the request goes once more
    /// on a fresh connection, if the app cannot have acted on it (the write failed) or
    /// acting twice does no harm (an idempotent method, RFC 9110 §9.2.2), as Go's
    /// `net/http` transport does. A request that may have been processed is not sent
    /// again; it gets its 502.
    async fn resend(&mut self) -> bool {
        let Some(replay) = self.replay.take() else {
            return false;
        };
        if !(self.write_failed || replay.is_idempotent) {
            return false;
        }
        let Some(lease) = self.lease.as_mut() else {
            return false;
        };
        if let Some(sending) = self.sending.take() {
            sending.abort();
        }
        self.conn = None;
        tracing::debug!(
            mount = %self.mount, upstream = %self.endpoint.address, path = %self.line.path,
            "kept connection closed by the application; sending on a new one",
        );
        match lease.reconnect().await {
            Ok(conn) => {
                // A new connection may sit in the listen queue of an app being stopped.
                self.stopping.get_or_insert_with(|| lease.stopping());
                let (half, writer) = split(Link::Direct(conn));
                self.sending = Some(Sending::start(writer, half.id, replay.opening, replay.body));
                self.conn = Some(half);
                self.write_failed = false;
                true
            }
            Err(error) => {
                self.failed = Some(error);
                false
            }
        }
    }

    pub(super) async fn read(&mut self, detach: bool) -> Pumped {
        // A chunk left over from the first call: its head went out when that call returned.
        if let (Some(chunk), Some(body_tx)) = (self.unsent.take(), self.body_tx.as_ref()) {
            tokio::select! {
                r = body_tx.send(chunk) => if r.is_err() { return Pumped::Ended(Stop::ClientGone) },
                _ = self.kill_all.cancelled() => return Pumped::Ended(Stop::Shutdown),
            }
        }
        loop {
            if let Some(Sending::Inline(..)) = self.sending {
                let Some(Sending::Inline(writer, id, opening, body)) = self.sending.take() else {
                    unreachable!("matched just above")
                };
                let writing = tokio::time::timeout(
                    self.read_timeout,
                    write_request(writer, id, opening, body),
                );
                self.sending = Some(match writing.await {
                    Ok(Ok(writer)) => Sending::Sent(writer),
                    // The read below sees why (the app closed the connection).
                    Ok(Err(_)) => {
                        self.write_failed = true;
                        Sending::Failed
                    }
                    Err(_) => return Pumped::Ended(Stop::Deadline(Deadline::Head)),
                });
            }
            let Some(conn) = self.conn.as_mut() else {
                return Pumped::Ended(closed());
            };
            let head_known = self.head_tx.is_none() || self.ready.is_some();
            let record = if detach && head_known {
                match conn.records.next().now_or_never() {
                    Some(record) => record,
                    None => return Pumped::Waiting,
                }
            } else {
                let (mut deadline, mut which) = match head_known {
                    false => (
                        tokio::time::Instant::now() + self.read_timeout,
                        Deadline::Head,
                    ),
                    true => (
                        tokio::time::Instant::now() + self.read_timeout,
                        Deadline::Idle,
                    ),
                };
                if let Some(total) = self.total.filter(|t| *t < deadline) {
                    (deadline, which) = (total, Deadline::Total);
                }
                let client_gone = async {
                    match (self.head_tx.as_mut(), self.body_tx.as_ref()) {
                        (Some(tx), _) => tx.closed().await,
                        (None, Some(tx)) => tx.closed().await,
                        (None, None) => std::future::pending().await,
                    }
                };
                // A request the app has not taken yet waits for nothing once the app is
                // stopped: its connection sits in a listen queue nobody accepts from.
                let stopped = async {
                    match self.heard {
                        false => match &self.stopping {
                            Some(stopping) => stopping.cancelled().await,
                            None => std::future::pending().await,
                        },
                        true => std::future::pending().await,
                    }
                };
                // The body's writer failing ends the request now: the app would wait for
                // the rest of FCGI_STDIN, and this side for its answer.
                let writer = async {
                    match self.sending.as_mut() {
                        Some(Sending::Task(task)) => task.await,
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    record = conn.records.next() => record,
                    written = writer => {
                        self.sending = Some(match written {
                            Ok(Ok(writer)) => Sending::Sent(writer),
                            Ok(Err(e)) if is_closed(e.kind()) => {
                                self.write_failed = true;
                                Sending::Failed
                            }
                            // The client's body broke off: it has gone away.
                            _ => return Pumped::Ended(Stop::ClientGone),
                        });
                        continue;
                    }
                    _ = sleep_until(deadline) => return Pumped::Ended(Stop::Deadline(which)),
                    _ = client_gone => return Pumped::Ended(Stop::ClientGone),
                    _ = stopped => return Pumped::Ended(Stop::AppStopped),
                    _ = self.kill_all.cancelled() => return Pumped::Ended(Stop::Shutdown),
                }
            };
            let record = match record {
                Some(Ok(r)) => r,
                // The end of a kept connection before any record: the app closed it as
                // this request went out, or read the request and crashed; which one cannot
                // be told, so only a request that can do no harm twice is sent again.
                None if self.resend().await => continue,
                Some(Err(record::RecordError::Io(e))) if is_closed(e.0) && self.resend().await => {
                    continue;
                }
                None => return Pumped::Ended(closed()),
                Some(Err(e)) => return Pumped::Ended(self.broken(e)),
            };
            self.heard = true;
            self.replay = None;
            let Some(conn) = self.conn.as_mut() else {
                return Pumped::Ended(closed());
            };
            if let Some(lease) = self.lease.as_mut() {
                lease.answered();
            }
            if record.request_id != conn.id {
                continue; // §3.3: a management record or not ours
            }
            match Kind::from_u8(record.kind) {
                Some(Kind::Stdout) if self.head_tx.is_some() && self.ready.is_none() => {
                    self.head_buf.extend_from_slice(&record.content);
                    if let Some((parsed, _)) = response::take_head(&mut self.head_buf, false) {
                        let first = self.head_buf.split().freeze();
                        let Some(tx) = self.head_tx.take() else {
                            continue;
                        };
                        match parsed {
                            Ok(head) if self.runner && head.headers.contains_key(&DECLINED) => {
                                // The runner did not run the script: nothing of this goes
                                // to the client, and the rest of the request is not needed.
                                let why =
                                    head.headers.get(&DECLINED).map_or_else(String::new, |v| {
                                        String::from_utf8_lossy(v.as_bytes()).into_owned()
                                    });
                                self.head_tx = Some(tx);
                                self.failed = Some(Error::Declined {
                                    why,
                                    may_have_run: false,
                                    runner_down: false,
                                });
                                return Pumped::Ended(Stop::Ended);
                            }
                            Ok(head) if head.kind == HeadKind::LocalRedirect => {
                                self.status = Some(head.status);
                                let location = head.location.unwrap_or_default();
                                let _ = tx.send(Reply::LocalRedirect(location));
                                self.redirected = true;
                                return Pumped::Ended(Stop::Ended);
                            }
                            Ok(head) => {
                                self.status = Some(head.status);
                                self.sent += first.len() as u64;
                                let reply = Reply::Head {
                                    head,
                                    raw_head: Bytes::new(),
                                    first,
                                    is_head_request: self.is_head_request,
                                };
                                if detach {
                                    self.head_tx = Some(tx);
                                    self.ready = Some(reply);
                                } else if tx.send(reply).is_err() {
                                    return Pumped::Ended(Stop::ClientGone);
                                }
                            }
                            Err(e) => {
                                self.head_tx = Some(tx);
                                self.failed = Some(e.into());
                                return Pumped::Ended(closed());
                            }
                        }
                    }
                }
                Some(Kind::Stdout) => {
                    if record.content.is_empty() || self.is_head_request {
                        continue;
                    }
                    self.sent += record.content.len() as u64;
                    let Some(body_tx) = self.body_tx.as_ref() else {
                        return Pumped::Ended(Stop::ClientGone);
                    };
                    let chunk = Ok(record.content);
                    if detach {
                        // The client reads the body only once this future has returned.
                        match body_tx.try_send(chunk) {
                            Ok(()) => continue,
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                return Pumped::Ended(Stop::ClientGone);
                            }
                            Err(mpsc::error::TrySendError::Full(chunk)) => {
                                self.unsent = Some(chunk);
                                return Pumped::Waiting;
                            }
                        }
                    }
                    tokio::select! {
                        r = body_tx.send(chunk) => if r.is_err() { return Pumped::Ended(Stop::ClientGone) },
                        _ = self.kill_all.cancelled() => return Pumped::Ended(Stop::Shutdown),
                    }
                }
                Some(Kind::Stderr) => {
                    for line in String::from_utf8_lossy(&record.content).lines() {
                        tracing::warn!(
                            target: "portico::stderr", id = %self.line.id, mount = %self.mount,
                            upstream = %self.endpoint.address, "{line}",
                        );
                    }
                }
                Some(Kind::EndRequest) => match record.end_request() {
                    Ok((app_status, _)) => {
                        self.app_status = Some(app_status);
                        return Pumped::Ended(Stop::Ended);
                    }
                    Err(e) => return Pumped::Ended(self.broken(e)),
                },
                _ => {}
            }
        }
    }

    /// A record error: its kind for the log, and the error the client gets if no head
    /// went out.
    fn broken(&mut self, error: record::RecordError) -> Stop {
        let stop = Stop::Broken(error.to_string());
        self.failed.get_or_insert(error.into());
        stop
    }
}
