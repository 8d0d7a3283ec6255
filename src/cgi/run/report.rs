//! How one run went ([`Report`]) and the access line it makes: the script's exit, CPU
//! time and peak memory, why its output stopped, and its last stderr lines when it failed.

use std::io;

use http::StatusCode;
use tokio::sync::oneshot;

use crate::backend::{Reply, RequestLine, Runner, Stop};
use crate::cgi::spawn::Exit;
use crate::cgi::stderr::Tail;
use crate::error::Error;
use crate::metrics::{DeadlineLabel, metrics};

/// How one run went, for its log line.
pub(super) struct Report {
    /// The status sent, or the one the failure maps to.
    pub(super) status: StatusCode,
    pub(super) bytes: u64,
    pub(super) stop: Stop,
    pub(super) exit: io::Result<Exit>,
    /// A run that failed before its head: the gateway's answer waits for the log line, so
    /// that the line (with the script's stderr) is written when the client sees the error.
    pub(super) failure: Option<(oneshot::Sender<Reply>, Error)>,
    /// RFC 3875 §6.2.2: the path the request goes on as; that one writes the access-log
    /// file's line.
    pub(super) redirect: Option<String>,
}

impl Report {
    pub(super) fn failed(&self) -> bool {
        let clean_exit = matches!(&self.exit, Ok(e) if e.status.is_success());
        self.failure.is_some() || !matches!(self.stop, Stop::Ended) || !clean_exit
    }

    pub(super) fn failed_before_head(
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

impl Report {
    /// Writes the run's access line for `script`, with its last stderr lines if it failed.
    pub(super) fn log(&self, line: &mut RequestLine, script: &str, pid: u32, tail: &Tail) {
        let (exit, exited_cleanly, cpu_ms, max_rss_kb) = match &self.exit {
            Ok(e) => (
                e.status.to_string(),
                e.status.is_success(),
                e.cpu.as_secs_f64() * 1000.0,
                e.max_rss_kb,
            ),
            Err(e) => (format!("unknown ({e})"), false, 0.0, 0),
        };
        let failure = self.failure.as_ref().map(|(_, error)| error);
        // RFC 3875 §6.2.2: the request goes on as another, whose line is the access-log
        // file's.
        if self.redirect.is_some() {
            line.redirected();
        }
        if let Stop::Deadline(deadline) = self.stop {
            let deadline = deadline.name();
            metrics()
                .cgi_deadline_kills
                .get_or_create(&DeadlineLabel { deadline })
                .inc();
        }
        let stderr = if self.failed() {
            tail.lines()
        } else {
            Vec::new()
        };
        let runner = Runner::Script {
            script,
            pid,
            exit: &exit,
            exited_cleanly,
            cpu_ms,
            max_rss_kb,
            stderr: &stderr,
            redirect: self.redirect.as_deref(),
        };
        line.write(
            self.status.as_u16(),
            self.bytes,
            &self.stop,
            runner,
            failure,
        );
    }
}
