//! A request's one access line, written once by whoever ends the request: the gateway for
//! a request that never reached a program, else the backend that ran it, once its output
//! has ended. The line goes to Portico's log (target `portico::access`, with what the
//! program did) and to the access-log file when there is one.
//!
//! It also owns [`Stop`], why a program's output stopped, in the same words for every
//! generation.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Method;

use crate::access_log::Pending;
use crate::error::{Deadline, Error, Side};
use crate::metrics::MountMetrics;

/// Why a request's output stopped.
#[derive(Debug)]
pub enum Stop {
    /// As it should: the end of a script's stdout, FCGI_END_REQUEST.
    Ended,
    Deadline(Deadline),
    /// The client went away; the program was ended (its group killed, or FCGI_ABORT_REQUEST).
    ClientGone,
    Shutdown,
    /// The application was stopped before it took the request.
    AppStopped,
    /// The output broke off: a read error, a connection closed early, records that do not
    /// parse.
    Broken(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Ended => f.write_str("ended"),
            Stop::Deadline(d) => write!(f, "{d} deadline"),
            Stop::ClientGone => f.write_str("client gone"),
            Stop::Shutdown => f.write_str("shutdown"),
            Stop::AppStopped => f.write_str("application stopped"),
            Stop::Broken(why) => f.write_str(why),
        }
    }
}

/// What the line says about the program that answered.
pub enum Runner<'a> {
    /// Nobody but Portico: an error before any program ran.
    Gateway,
    /// A CGI script, reaped: its exit and resource use, and its last stderr lines when the
    /// run failed.
    Script {
        script: &'a str,
        pid: u32,
        exit: &'a str,
        exited_cleanly: bool,
        cpu_ms: f64,
        max_rss_kb: i64,
        stderr: &'a [String],
        /// The path a local redirect (RFC 3875 §6.2.2) sent the request on to.
        redirect: Option<&'a str>,
    },
    /// A FastCGI application (launched, external, or a WSGI mount's workers).
    Upstream {
        upstream: &'a dyn fmt::Display,
        app_status: Option<u32>,
    },
}

/// The parts of a request every line names, carried by whoever will end it.
pub struct RequestLine {
    pub id: crate::request_id::RequestId,
    pub method: Method,
    /// Shared with the status page's scoreboard while the request runs.
    pub path: Arc<str>,
    /// The client, as REMOTE_ADDR names it.
    pub client: IpAddr,
    pub started: Instant,
    /// The access-log file's pending line, when there is a file.
    pub access: Option<Pending>,
    /// The counters of the mount that took the request (`metrics`); `None` for a line
    /// that is not the request's last (a local redirect's) or not a request's at all.
    pub metrics: Option<Arc<MountMetrics>>,
}

impl RequestLine {
    /// RFC 3875 §6.2.2: the request goes on as another, whose line is the access-log
    /// file's line and the one counted.
    pub fn redirected(&mut self) {
        self.access = None;
        self.metrics = None;
    }

    /// Writes the line. `failure` is the error the client was answered with, if any. A
    /// script that answered with a local redirect names where to: the request goes on as
    /// another, whose line follows (or comes first, when this script is reaped later).
    pub fn write(
        &self,
        status: u16,
        bytes: u64,
        stop: &Stop,
        runner: Runner<'_>,
        failure: Option<&Error>,
    ) {
        if let Some(access) = &self.access {
            access.finish(status, bytes);
        }
        if let Some(metrics) = &self.metrics {
            metrics.record(&self.method, status, bytes, self.started.elapsed());
        }
        let duration_ms = format_args!("{:.2}", self.started.elapsed().as_secs_f64() * 1000.0);
        let (id, method, path) = (&self.id, &self.method, &self.path);
        let side = failure.map(Error::side);
        let cause = failure.map(|error| crate::error::chain(error));
        let ended = (!matches!(stop, Stop::Ended)).then(|| stop.to_string());
        let deadline = match stop {
            Stop::Deadline(d) => Some(tracing::field::display(d)),
            _ => None,
        };
        let quiet = matches!(stop, Stop::Ended)
            && side.is_none_or(|s| s == Side::Client)
            && !matches!(
                runner,
                Runner::Script {
                    exited_cleanly: false,
                    ..
                }
            );
        match runner {
            Runner::Gateway if quiet => tracing::info!(
                target: "portico::access", %id, %method, %path, status, bytes, duration_ms,
                side = side.map(tracing::field::display), cause,
            ),
            Runner::Gateway => tracing::warn!(
                target: "portico::access", %id, %method, %path, status, bytes, duration_ms,
                side = side.map(tracing::field::display), cause,
            ),
            Runner::Script {
                script,
                pid,
                exit,
                cpu_ms,
                max_rss_kb,
                redirect,
                ..
            } if quiet => tracing::info!(
                target: "portico::access", %id, %method, %path, status, bytes, duration_ms,
                %script, pid, %exit, cpu_ms = format_args!("{cpu_ms:.2}"), max_rss_kb,
                redirect,
            ),
            Runner::Script {
                script,
                pid,
                exit,
                cpu_ms,
                max_rss_kb,
                stderr,
                redirect,
                ..
            } => tracing::warn!(
                target: "portico::access", %id, %method, %path, status, bytes, duration_ms,
                %script, pid, %exit, cpu_ms = format_args!("{cpu_ms:.2}"), max_rss_kb,
                redirect, ended, deadline, cause, ?stderr,
            ),
            Runner::Upstream {
                upstream,
                app_status,
            } if quiet => tracing::info!(
                target: "portico::access", %id, %method, %path, status, bytes, duration_ms,
                %upstream, app_status,
            ),
            Runner::Upstream {
                upstream,
                app_status,
            } => tracing::warn!(
                target: "portico::access", %id, %method, %path, status, bytes, duration_ms,
                %upstream, app_status, ended, deadline, cause,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stop_reads_the_same_for_every_generation() {
        let cases = [
            (Stop::Ended, "ended"),
            (Stop::Deadline(Deadline::Head), "head deadline"),
            (Stop::Deadline(Deadline::Idle), "idle deadline"),
            (Stop::ClientGone, "client gone"),
            (Stop::Shutdown, "shutdown"),
            (Stop::AppStopped, "application stopped"),
            (
                Stop::Broken("upstream closed before END_REQUEST".into()),
                "upstream closed before END_REQUEST",
            ),
        ];
        for (stop, text) in cases {
            assert_eq!(stop.to_string(), text);
        }
    }
}
