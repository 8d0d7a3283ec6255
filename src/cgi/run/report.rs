//! How one run went ([`Report`]) and the access line it makes: the script's exit, CPU
//! time and peak memory, why its output stopped, and its last stderr lines when it failed.

use std::io;

use http::StatusCode;
use tokio::sync::oneshot;

use super::Run;
use crate::backend::{Reply, Runner, Stop};
use crate::cgi::spawn::Exit;
use crate::error::Error;

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

impl Run {
    pub(super) fn log(&mut self, report: &Report) {
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
