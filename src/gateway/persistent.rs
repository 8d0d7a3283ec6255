//! A script its mount keeps warm (`[[cgi]] persistent`, `crate::persistent`): sent as a
//! FastCGI request to the runner of its language with the meta-variables plain CGI would
//! put in its environment, and answered by plain CGI instead when the runner could not
//! host it: it declined the script (it does not compile there), its worker broke off
//! before any head, or the runner is down. A script the runner failed (not a runner that
//! is down) is then marked to run as plain CGI until its file changes
//! (`persistent::Marks`). Either way a log line says why.
//!
//! The script runs again as a process only when that can do no harm: the runner never
//! started it, or the request is idempotent (RFC 9110 §9.2.2); and only while its body is
//! still at hand (none, in memory, or spooled to a file). Otherwise the client gets the
//! 502 a crashed script gets.

use std::os::fd::AsRawFd;

use crate::backend::{Outcome, Request, RequestLine};
use crate::body::RequestBody;
use crate::config::Runner;
use crate::error::Error;
use crate::meta::MetaVars;
use crate::{cgi, fastcgi, router};

impl super::Gateway {
    /// Runs the script the router found: in its runner when its mount keeps it warm, else
    /// (or when the runner cannot host it) as a process of its own.
    pub(super) async fn run_script(
        &self,
        script: &router::Match<'_>,
        request: Request,
    ) -> Result<Outcome, Error> {
        let Some(runner) = self.runner_for(script) else {
            return self.cgi.run(cgi::Job::new(script, request)).await;
        };
        let id = request.line.id.clone();
        let again = Again::keep(&request);
        let job = fastcgi::job::Job::for_runner(&runner.mount, request)?;
        let (why, may_have_run, runner_down) = match self.fastcgi.run(job).await {
            Ok(Outcome::Failed(Error::Declined {
                why,
                may_have_run,
                runner_down,
            })) => (why, may_have_run, runner_down),
            // Turned away before anything was sent: the runner's workers are not there.
            Err(Error::AppStopped(why)) => (format!("the runner is stopped: {why}"), false, true),
            Err(Error::Upstream(e)) => (format!("the runner cannot be reached: {e}"), false, true),
            other => return other,
        };
        let again = again.filter(|again| !may_have_run || again.line.method.is_idempotent());
        let (id, name) = (&id, script.script_name.to_string_lossy());
        let runner_name = &runner.mount.mount;
        if runner_down {
            tracing::warn!(
                %id, script = %name, runner = %runner_name, cause = %why, again = again.is_some(),
                "answered by plain CGI: its persistent runner is down",
            );
        } else {
            self.marks.mark(&script.script_path);
            tracing::warn!(
                %id, script = %name, runner = %runner_name, cause = %why, again = again.is_some(),
                "runs as plain CGI until its file changes: its persistent runner could not serve it",
            );
        }
        match again {
            Some(again) => self.cgi.run(cgi::Job::new(script, again.request())).await,
            None => Err(Error::Declined {
                why,
                may_have_run,
                runner_down,
            }),
        }
    }

    /// The runner that keeps `script` warm, unless it runs as plain CGI: not listed, an
    /// NPH script (its head is its own, which FastCGI cannot carry), or marked.
    fn runner_for<'c>(&self, script: &router::Match<'c>) -> Option<&'c Runner> {
        if script.is_nph {
            return None;
        }
        let name = script.script_path.file_name()?.to_string_lossy();
        let runner = script.mount.runner_for(&name)?;
        (!self.marks.is_marked(&script.script_path)).then_some(runner)
    }
}

/// What running the script as a process takes, kept while its runner has the request.
struct Again {
    meta: MetaVars,
    body: RequestBody,
    line: RequestLine,
}

impl Again {
    /// A copy of `request`, unless its body streams from the client and cannot be read twice.
    fn keep(request: &Request) -> Option<Again> {
        let body = match &request.body {
            RequestBody::None => RequestBody::None,
            RequestBody::Memory(bytes) => RequestBody::Memory(bytes.clone()),
            // The spooled file opened once more: a description with an offset of its own.
            RequestBody::File { file, length } => RequestBody::File {
                file: std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?,
                length: *length,
            },
            RequestBody::Stream { .. } => return None,
        };
        let line = &request.line;
        Some(Again {
            meta: request.meta.clone(),
            body,
            line: RequestLine {
                id: line.id.clone(),
                method: line.method.clone(),
                path: line.path.clone(),
                client: line.client,
                started: line.started,
                access: line.access.clone(),
                metrics: line.metrics.clone(),
            },
        })
    }

    fn request(self) -> Request {
        Request {
            meta: self.meta,
            body: self.body,
            line: self.line,
        }
    }
}
