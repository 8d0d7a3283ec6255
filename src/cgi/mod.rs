//! CGI mode: one process per request (RFC 3875).
//!
//! `Cgi::run` admits a request (bounded concurrency, bounded queue wait), spawns its
//! script and drives its run (`run`), which owns the process to the end: it feeds stdin,
//! reads stderr and stdout at once, enforces the three deadlines, reaps the script and
//! writes the request's log line. The caller gets the parsed head and a body that streams
//! from the script's stdout with backpressure; a run still going once its head is out goes
//! on as a task of its own.

pub mod env;
pub mod exec;
mod pipes;
pub mod response;
mod run;
pub mod spawn;
mod stderr;
pub mod stdio_slots;

use std::ffi::OsString;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::backend::{FinishesAlone, Outcome, Owners, Request, reply_channel};
use crate::config::Limits;
use crate::error::Error;
use crate::router;

/// One script run to start.
pub struct Job {
    /// Interpreter (if any) and the script's absolute path.
    pub argv: Vec<OsString>,
    /// RFC 3875 §7.2: the script runs in its own directory.
    pub cwd: PathBuf,
    pub is_nph: bool,
    /// SCRIPT_NAME, for the log.
    pub script: Arc<str>,
    pub request: Request,
}

impl Job {
    /// The run of the script the router found, for `request`.
    pub fn new(script: &router::Match<'_>, request: Request) -> Job {
        let mut argv: Vec<OsString> = script.interpreter.map(<[_]>::to_vec).unwrap_or_default();
        argv.push(script.script_path.clone().into_os_string());
        Job {
            argv,
            cwd: script
                .script_path
                .parent()
                .map(ToOwned::to_owned)
                .unwrap_or_default(),
            is_nph: script.is_nph,
            script: script.script_name.to_string_lossy().into(),
            request,
        }
    }
}

/// The CGI backend: concurrency limit and the owners of all running scripts.
pub struct Cgi {
    limits: Arc<Limits>,
    base_env: Arc<env::BaseEnv>,
    rlimits: Arc<[exec::Rlimit]>,
    slots: Arc<Semaphore>,
    owners: Owners,
}

impl Cgi {
    pub fn new(limits: Limits, base_env: &[(OsString, OsString)]) -> std::io::Result<Cgi> {
        let base_env = env::BaseEnv::new(base_env)?;
        let rlimits = spawn::script_rlimits(&limits).into();
        Ok(Cgi {
            slots: Arc::new(Semaphore::new(limits.max_concurrent_scripts)),
            limits: Arc::new(limits),
            base_env: Arc::new(base_env),
            rlimits,
            owners: Owners::default(),
        })
    }

    pub async fn run(&self, job: Job) -> Result<Outcome, Error> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => tokio::time::timeout(
                self.limits.queue_timeout,
                self.slots.clone().acquire_owned(),
            )
            .await
            .map_err(|_| Error::Overloaded)?
            .map_err(|_| Error::ShuttingDown)?,
        };
        if self.owners.kill_all.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = reply_channel();
        let (base_env, rlimits, limits, kill_all) = (
            self.base_env.clone(),
            self.rlimits.clone(),
            self.limits.clone(),
            self.owners.kill_all.clone(),
        );
        // Starting a script suspends the calling thread until the child has called execve
        // (`exec`). With two runtime threads or more it happens right here, the others
        // serving meanwhile; a lone runtime thread hands it to the blocking pool instead,
        // so that I/O never stops. The hand-off costs two thread wake-ups per request.
        let run = if tokio::runtime::Handle::current().metrics().num_workers() > 1 {
            run::Run::start(job, &base_env, &rlimits, &limits, kill_all)?
        } else {
            tokio::task::spawn_blocking(move || {
                run::Run::start(job, &base_env, &rlimits, &limits, kill_all)
            })
            .await
            .map_err(|e| Error::Spawn(std::io::Error::other(e)))??
        };
        // The run is driven right here until its head is known, so that a script that ends
        // at once costs no task of its own; a longer one goes on as its own task.
        let mut drive = FinishesAlone::new(self.owners.tasks.track_future(async move {
            run.drive(tx.head, tx.body, tx.complete).await;
            drop(slot);
        }));
        let mut outcome = pin!(rx.outcome());
        Ok(tokio::select! {
            biased;
            () = &mut drive => outcome.await,
            outcome = &mut outcome => outcome,
        })
    }

    /// Scripts running now.
    pub fn running(&self) -> usize {
        self.limits.max_concurrent_scripts - self.slots.available_permits()
    }

    /// Waits for the scripts running, without ending them.
    pub async fn wait_idle(&self) {
        self.owners.wait_idle().await;
    }

    /// Ends every running script (TERM, grace, KILL) and waits until all are reaped.
    pub async fn kill_all_and_wait(&self) {
        self.owners.kill_all_and_wait().await;
    }
}
