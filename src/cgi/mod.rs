//! CGI mode: one process per request (RFC 3875).
//!
//! `Cgi::run` admits a request (bounded concurrency, bounded queue wait), spawns its
//! script and drives its run (`run`), which owns the process to the end: it feeds stdin,
//! reads stderr and stdout at once, enforces the three deadlines, reaps the script and
//! writes the request's log line. The caller gets the parsed head and a body that streams
//! from the script's stdout with backpressure; a run still going once its head is out goes
//! on as a task of its own.

pub mod exec;
pub mod response;
mod run;
pub mod spawn;
mod stderr;
pub mod stdio_slots;

use std::ffi::OsString;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Method, Response};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{RequestBody, ResponseBody};
use crate::config::Limits;
use crate::error::Error;
use crate::meta::MetaVars;

/// One script run to start.
pub struct Job {
    /// Interpreter (if any) and the script's absolute path.
    pub argv: Vec<OsString>,
    /// RFC 3875 §7.2: the script runs in its own directory.
    pub cwd: PathBuf,
    pub meta: MetaVars,
    pub body: RequestBody,
    pub is_nph: bool,
    pub method: Method,
    /// Request path, for the log.
    pub path: String,
    /// SCRIPT_NAME, for the log.
    pub script: Arc<str>,
    pub started: Instant,
    /// The request's access-log line, when there is an access log.
    pub access: Option<crate::access_log::Pending>,
}

/// What a script's response means for the gateway.
pub enum Outcome {
    Response(Response<ResponseBody>),
    /// RFC 3875 §5: the response of an NPH script, parsed, and its head as the script wrote it.
    Nph {
        response: Response<ResponseBody>,
        raw_head: bytes::Bytes,
    },
    /// RFC 3875 §6.2.2: serve this path instead.
    LocalRedirect(String),
    /// The script failed; its owner has logged why.
    Failed(Error),
}

/// The CGI backend: concurrency limit and the owners of all running scripts.
pub struct Cgi {
    limits: Arc<Limits>,
    base_env: Arc<spawn::BaseEnv>,
    rlimits: Arc<[exec::Rlimit]>,
    slots: Arc<Semaphore>,
    owners: Owners,
}

/// The tasks that own the requests in flight, and the signal that ends them all at the end
/// of a graceful shutdown. Shared by CGI and FastCGI.
#[derive(Default)]
pub(crate) struct Owners {
    pub kill_all: CancellationToken,
    pub tasks: TaskTracker,
}

impl Owners {
    /// Waits for the requests in flight, without ending them.
    pub async fn wait_idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Ends every request in flight and waits until their owners are done.
    pub async fn kill_all_and_wait(&self) {
        self.kill_all.cancel();
        self.wait_idle().await;
    }
}

impl Cgi {
    pub fn new(limits: Limits, base_env: &[(OsString, OsString)]) -> std::io::Result<Cgi> {
        let base_env = spawn::BaseEnv::new(base_env)?;
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

/// A future polled in place by its caller that, dropped before it is done, goes on as a
/// task of its own: a run must reach its end (reap, log line) whatever the client does.
pub(crate) struct FinishesAlone(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl FinishesAlone {
    pub fn new(future: impl Future<Output = ()> + Send + 'static) -> FinishesAlone {
        FinishesAlone(Some(Box::pin(future)))
    }
}

impl Future for FinishesAlone {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(future) = &mut self.0 {
            ready!(future.as_mut().poll(cx));
            self.0 = None;
        }
        Poll::Ready(())
    }
}

impl Drop for FinishesAlone {
    fn drop(&mut self) {
        if let Some(future) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}

/// What a script's owner tells the gateway once the head is known.
pub(crate) enum Reply {
    Head {
        head: response::Head,
        /// The head as the script wrote it, blank line included.
        raw_head: bytes::Bytes,
        /// Body bytes read together with the head.
        first: bytes::Bytes,
        is_head_request: bool,
    },
    LocalRedirect(String),
    Failed(Error),
}

/// The owner task's end of a request: the head (once), then body chunks, and whether the
/// body ended cleanly. Shared by CGI and FastCGI.
pub(crate) struct ReplySender {
    pub head: oneshot::Sender<Reply>,
    pub body: mpsc::Sender<std::io::Result<bytes::Bytes>>,
    pub complete: Arc<AtomicBool>,
}

/// The gateway's end.
pub(crate) struct ReplyReceiver {
    head: oneshot::Receiver<Reply>,
    body: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    complete: Arc<AtomicBool>,
}

pub(crate) fn reply_channel() -> (ReplySender, ReplyReceiver) {
    let (head_tx, head) = oneshot::channel();
    let (body_tx, body) = mpsc::channel(4);
    let complete = Arc::new(AtomicBool::new(false));
    let sender = ReplySender {
        head: head_tx,
        body: body_tx,
        complete: complete.clone(),
    };
    (
        sender,
        ReplyReceiver {
            head,
            body,
            complete,
        },
    )
}

impl ReplyReceiver {
    /// Waits for the head and turns it into what the gateway answers. A body that has
    /// already ended cleanly (`complete`, set after its last chunk was queued) is sent
    /// whole, with a Content-Length, instead of chunk by chunk.
    pub(crate) async fn outcome(self) -> Outcome {
        let reply = match self.head.await {
            Ok(reply) => reply,
            // The owner always answers unless its task panicked.
            Err(_) => return Outcome::Failed(Error::NoHead),
        };
        match reply {
            Reply::Head {
                head,
                raw_head,
                first,
                is_head_request,
            } => {
                let is_nph = head.kind == response::Kind::Nph;
                let whole = !is_nph && self.complete.load(Ordering::Acquire);
                let response = if whole {
                    run::whole_response(head, first, is_head_request, self.body)
                } else {
                    run::response(head, first, is_head_request, self.body, self.complete)
                };
                if is_nph {
                    Outcome::Nph { response, raw_head }
                } else {
                    Outcome::Response(response)
                }
            }
            Reply::LocalRedirect(location) => Outcome::LocalRedirect(location),
            Reply::Failed(error) => Outcome::Failed(error),
        }
    }
}
