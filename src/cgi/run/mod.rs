//! One script run, owned by one future from spawn to reap: stdin fed from the request body,
//! stderr logged, stdout read with the head, idle and total deadlines, the whole process
//! group ended on a deadline, a client that went away or shutdown, and one log line. The
//! request's own task drives it until the head is out (a script that ends at once is done
//! by then); whatever is left runs as a task of its own.

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::Method;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::Job;
use super::exec::Rlimit;
use super::response::Kind;
use super::spawn::{self, Exit, Input, Process};
use super::stderr::{self, Tail};
use crate::backend::{Reply, RequestLine, Stop};
use crate::body::RequestBody;
use crate::children;
use crate::config::Limits;
use crate::error::Error;
use crate::metrics::metrics;

mod report;
mod stdout;

use report::Report;
use stdout::declared_length;

/// Reads of the body: large, so big responses take few wake-ups.
const READ_CHUNK: usize = 64 * 1024;
/// Reads of the head: most heads and many whole responses fit; a small first buffer keeps
/// the allocator from trimming and refilling 64 KiB on every request.
const HEAD_CHUNK: usize = 8 * 1024;
/// How long a failed script's stderr may take to reach its end before the log line is written.
const STDERR_SETTLE: Duration = Duration::from_millis(250);
/// How long output is gathered after the head before it is sent: most scripts end within
/// it, and are answered in one write with a Content-Length instead of chunk by chunk.
const GATHER_WINDOW: Duration = Duration::from_millis(1);

/// How long the end of stdout may come before the script's exit: a script killed by a
/// signal has its output cut short, which the client must be able to tell.
const EXIT_SETTLE: Duration = Duration::from_millis(20);

/// How much longer a script that is exiting already may take to become a zombie: the kernel
/// closes its files before it reports its exit, and on a busy machine the dying process
/// can wait for a CPU between the two.
const EXITING_SETTLE: Duration = Duration::from_secs(1);

pub(super) struct Run {
    process: Process,
    stdin_pump: Option<JoinHandle<()>>,
    tail: Tail,
    is_nph: bool,
    is_head_request: bool,
    script: Arc<str>,
    line: RequestLine,
    head_deadline: tokio::time::Instant,
    total_deadline: tokio::time::Instant,
    idle_timeout: Duration,
    kill_grace: Duration,
    kill_all: CancellationToken,
    /// How the script exited, when it did within `EXIT_SETTLE` of the end of its stdout.
    settled: Option<spawn::ExitStatus>,
}

impl Run {
    pub(super) fn start(
        job: Job,
        base_env: &super::env::BaseEnv,
        rlimits: &[Rlimit],
        limits: &Limits,
        kill_all: CancellationToken,
    ) -> Result<Run, Error> {
        let (input, feed) = match job.request.body {
            RequestBody::None => (Input::None, None),
            RequestBody::File { file, .. } => (Input::File(file), None),
            body @ (RequestBody::Stream { .. } | RequestBody::Memory(_)) => {
                (Input::Pipe, Some(body))
            }
        };
        let env = base_env
            .with_meta(&job.request.meta)
            .map_err(Error::Spawn)?;
        let mut process =
            Process::spawn(&job.argv, &env, &job.cwd, input, rlimits).map_err(|error| {
                metrics().cgi_spawn_failures.inc();
                Error::Spawn(error)
            })?;
        metrics().cgi_spawns.inc();
        process.register(children::Role::Script(children::Script {
            script: job.script.clone(),
            method: job.request.line.method.to_string(),
            path: job.request.line.path.to_string(),
            client: job.request.line.client.to_string(),
            request_id: job.request.line.id.to_string(),
        }));
        let stdin_pump = match (feed, process.stdin.take()) {
            (Some(body), Some(stdin)) => Some(tokio::spawn(pump(body, stdin))),
            _ => None,
        };
        let now = tokio::time::Instant::now();
        Ok(Run {
            process,
            stdin_pump,
            tail: Tail::default(),
            is_nph: job.is_nph,
            is_head_request: job.request.line.method == Method::HEAD,
            script: job.script,
            line: job.request.line,
            head_deadline: now + limits.script_head_timeout,
            total_deadline: now + limits.script_total_timeout,
            idle_timeout: limits.script_idle_timeout,
            kill_grace: limits.kill_grace,
            kill_all,
            settled: None,
        })
    }

    /// Runs the script to its end: head to `head_tx`, body chunks to `body_tx`, stderr to
    /// the log, then the request's log line. Stderr is read in this same task while it
    /// lasts; only a reader still waiting after the log line (a child of the script may
    /// hold stderr open) goes on as a task of its own.
    pub(super) async fn drive(
        mut self,
        head_tx: oneshot::Sender<Reply>,
        body_tx: mpsc::Sender<io::Result<Bytes>>,
        complete: Arc<AtomicBool>,
    ) {
        let pid = self.process.pid();
        let mut stderr = self.process.stderr.take().map(|pipe| {
            Box::pin(stderr::drain(
                pipe,
                self.script.clone(),
                pid,
                self.line.id.clone(),
                self.tail.clone(),
            ))
        });
        let report = {
            let mut work = pin!(self.work(head_tx, body_tx, complete));
            loop {
                match stderr.as_mut() {
                    Some(reader) => tokio::select! {
                        report = &mut work => break report,
                        () = reader => stderr = None,
                    },
                    None => break work.await,
                }
            }
        };
        if let Some(reader) = stderr.as_mut() {
            // A failed script's last lines may still be in the pipe; a clean one's reader
            // gets one more look, as its end usually came with stdout's.
            let ended = if report.failed() {
                tokio::time::timeout(STDERR_SETTLE, reader).await.is_ok()
            } else {
                reader.now_or_never().is_some()
            };
            if ended {
                stderr = None;
            }
        }
        report.log(&mut self.line, &self.script, self.process.pid(), &self.tail);
        if let Some((head_tx, error)) = report.failure {
            let _ = head_tx.send(Reply::Failed(error));
        }
        if let Some(reader) = stderr {
            tokio::spawn(reader);
        }
    }

    /// Everything but stderr and the log line: head, body, end of the process.
    async fn work(
        &mut self,
        mut head_tx: oneshot::Sender<Reply>,
        body_tx: mpsc::Sender<io::Result<Bytes>>,
        complete: Arc<AtomicBool>,
    ) -> Report {
        let mut buf = BytesMut::with_capacity(HEAD_CHUNK);
        let head = match self.read_head(&mut buf, &mut head_tx).await {
            Ok(head) => head,
            Err(stop) => {
                let error = match &stop {
                    Stop::Deadline(d) => Error::Timeout(*d),
                    Stop::Ended | Stop::Broken(_) | Stop::AppStopped => Error::NoHead,
                    Stop::ClientGone => Error::ClientGone,
                    Stop::Shutdown => Error::ShuttingDown,
                };
                let exit = self.end(&stop).await;
                return Report::failed_before_head(head_tx, error, stop, exit);
            }
        };
        let (head, raw_head) = match head {
            Ok(head) => head,
            Err(e) => {
                let exit = self.end(&Stop::Ended).await;
                return Report::failed_before_head(head_tx, e.into(), Stop::Ended, exit);
            }
        };

        let status = head.status;
        let redirect = match head.kind {
            Kind::LocalRedirect => head.location.clone(),
            _ => None,
        };
        let (stop, bytes) = if redirect.is_some() || self.is_head_request {
            // Nothing of the body is sent: the output is drained so the script ends normally.
            let reply = match head.location.clone() {
                Some(location) if head.kind == Kind::LocalRedirect => {
                    Reply::LocalRedirect(location)
                }
                _ => Reply::Head {
                    head,
                    raw_head,
                    first: Bytes::new(),
                    is_head_request: true,
                },
            };
            let _ = head_tx.send(reply);
            (self.pipe_body(&mut buf, None, None).await.0, 0)
        } else {
            let ended = if self.is_nph {
                None
            } else {
                self.gather(&mut buf).await
            };
            if let Some(Stop::Ended) = ended {
                // Nothing has left yet: a script that died of a signal gets its 502.
                if let Some(sig) = self.settle().await {
                    let exit = self.end(&Stop::Ended).await;
                    let error = Error::ScriptKilled(sig);
                    return Report::failed_before_head(head_tx, error, Stop::Ended, exit);
                }
                complete.store(true, Ordering::Release);
            }
            let first = buf.split().freeze();
            let sent_first = first.len() as u64;
            let owed = declared_length(&head).map(|length| length.saturating_sub(sent_first));
            let reply = Reply::Head {
                head,
                raw_head,
                first,
                is_head_request: false,
            };
            if head_tx.send(reply).is_err() {
                (Stop::ClientGone, 0)
            } else if let Some(stop) = ended {
                (stop, sent_first)
            } else {
                let (stop, bytes) = self.pipe_body(&mut buf, Some(&body_tx), owed).await;
                (stop, bytes + sent_first)
            }
        };
        // A body is whole when stdout ended and the script was not killed: the client of
        // one that died mid-output sees the body cut (no last chunk, or a connection
        // closed short of its length), never a complete-looking response.
        if let Stop::Ended = stop
            && (complete.load(Ordering::Acquire) || self.settle().await.is_none())
        {
            complete.store(true, Ordering::Release);
        }
        drop(body_tx);
        let exit = self.end(&stop).await;
        Report {
            status,
            bytes,
            stop,
            exit,
            failure: None,
            redirect,
        }
    }

    /// Reaps the script if it exits within `EXIT_SETTLE` of the end of its stdout; the
    /// signal that killed it, if one did.
    async fn settle(&mut self) -> Option<i32> {
        if self.settled.is_none() {
            // Left unreaped: a client gone after this still has the group ended.
            self.settled = match self.process.peek_exit() {
                Ok(Some(status)) => Some(status),
                Ok(None) => match tokio::time::timeout(EXIT_SETTLE, self.process.exited()).await {
                    Ok(Ok(())) => self.process.peek_exit().ok().flatten(),
                    Err(_) if self.process.is_exiting() => {
                        let exited = self.process.exited();
                        match tokio::time::timeout(EXITING_SETTLE, exited).await {
                            Ok(Ok(())) => self.process.peek_exit().ok().flatten(),
                            _ => None,
                        }
                    }
                    _ => None,
                },
                Err(_) => None,
            };
        }
        match self.settled? {
            spawn::ExitStatus::Signal(sig) => Some(sig),
            spawn::ExitStatus::Code(_) => None,
        }
    }

    /// Ends the process: waits for a script that finished its output to exit (within the
    /// total deadline), and ends the whole group otherwise.
    async fn end(&mut self, stop: &Stop) -> io::Result<Exit> {
        if let Some(pump) = self.stdin_pump.take() {
            pump.abort();
        }
        if matches!(stop, Stop::Ended | Stop::Broken(_)) {
            // Most scripts have exited by the time their stdout closes.
            if let Some(exit) = self.process.try_reap()? {
                return Ok(exit);
            }
            let exited = tokio::select! {
                r = self.process.exited() => r.is_ok(),
                _ = sleep_until(self.total_deadline) => false,
                _ = self.kill_all.cancelled() => false,
            };
            if exited {
                return self.process.reap();
            }
        }
        self.process.terminate(self.kill_grace).await
    }
}

/// Feeds the request body to the script. A script may exit without reading it all
/// (EPIPE): that ends the pump, not the request.
async fn pump(body: RequestBody, mut stdin: pipe::Sender) {
    match body {
        RequestBody::Memory(bytes) => {
            let _ = stdin.write_all(&bytes).await;
        }
        RequestBody::Stream { mut body, .. } => {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data()
                    && stdin.write_all(&data).await.is_err()
                {
                    break;
                }
            }
        }
        RequestBody::None | RequestBody::File { .. } => {}
    }
}
