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
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::Job;
use super::exec::Rlimit;
use super::response::{self, Head, Kind};
use super::spawn::{self, Exit, Input, Process};
use super::stderr::{self, Tail};
use crate::backend::{Reply, RequestLine, Runner, Stop};
use crate::body::RequestBody;
use crate::config::Limits;
use crate::error::{Deadline, Error};

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
            Process::spawn(&job.argv, &env, &job.cwd, input, rlimits).map_err(Error::Spawn)?;
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
        self.log(&report);
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

    /// Reads stdout until the blank line that ends the head. The outer error is why reading
    /// stopped early; the inner one a head that does not parse.
    async fn read_head(
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
    async fn gather(&mut self, buf: &mut BytesMut) -> Option<Stop> {
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
    async fn pipe_body(
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

    /// Reaps the script if it exits within `EXIT_SETTLE` of the end of its stdout; the
    /// signal that killed it, if one did.
    async fn settle(&mut self) -> Option<i32> {
        if self.settled.is_none() {
            // Left unreaped: a client gone after this still has the group ended.
            self.settled = match self.process.peek_exit() {
                Ok(Some(status)) => Some(status),
                Ok(None) => match tokio::time::timeout(EXIT_SETTLE, self.process.exited()).await {
                    Ok(Ok(())) => self.process.peek_exit().ok().flatten(),
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

    fn log(&mut self, report: &Report) {
        let (exit, exited_cleanly, cpu_ms, max_rss_kb) = match &report.exit {
            Ok(e) => (
                e.status.to_string(),
                e.status.is_success(),
                e.cpu.as_secs_f64() * 1000.0,
                e.max_rss_kb,
            ),
            Err(e) => (format!("unknown ({e})"), false, 0.0, 0),
        };
        let failure = report.failure.as_ref().map(|(_, error)| error);
        // RFC 3875 §6.2.2: the request goes on as another, whose line is the access-log
        // file's.
        if report.redirect.is_some() {
            self.line.access = None;
        }
        let failed = failure.is_some() || !exited_cleanly || !matches!(report.stop, Stop::Ended);
        let stderr = if failed {
            self.tail.lines()
        } else {
            Vec::new()
        };
        let runner = Runner::Script {
            script: &self.script,
            pid: self.process.pid(),
            exit: &exit,
            exited_cleanly,
            cpu_ms,
            max_rss_kb,
            stderr: &stderr,
            redirect: report.redirect.as_deref(),
        };
        self.line.write(
            report.status.as_u16(),
            report.bytes,
            &report.stop,
            runner,
            failure,
        );
    }
}

/// The Content-Length the script declared, which hyper holds the response to.
fn declared_length(head: &Head) -> Option<u64> {
    head.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How one run went, for its log line.
struct Report {
    /// The status sent, or the one the failure maps to.
    status: StatusCode,
    bytes: u64,
    stop: Stop,
    exit: io::Result<Exit>,
    /// A run that failed before its head: the gateway's answer waits for the log line, so
    /// that the line (with the script's stderr) is written when the client sees the error.
    failure: Option<(oneshot::Sender<Reply>, Error)>,
    /// RFC 3875 §6.2.2: the path the request goes on as; that one writes the access-log
    /// file's line.
    redirect: Option<String>,
}

impl Report {
    fn failed(&self) -> bool {
        let clean_exit = matches!(&self.exit, Ok(e) if e.status.is_success());
        self.failure.is_some() || !matches!(self.stop, Stop::Ended) || !clean_exit
    }

    fn failed_before_head(
        head_tx: oneshot::Sender<Reply>,
        error: Error,
        stop: Stop,
        exit: io::Result<Exit>,
    ) -> Report {
        Report {
            status: error.status(),
            bytes: 0,
            stop,
            exit,
            failure: Some((head_tx, error)),
            redirect: None,
        }
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
