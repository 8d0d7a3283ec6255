//! The process launcher: the workers of a `launch` mount, started, watched, restarted,
//! recycled, scaled and stopped by one task that owns all their state.
//!
//! The task waits for an event (a worker exited, a request is waiting, the tick, stop),
//! handles it, then restores the worker count. Workers are slots: a socket and the process
//! serving it. A crashed worker is restarted in its slot after a backoff; a worker that is
//! recycled (`max_requests`, memory, idle) is replaced by a new slot first, then drained:
//! no new requests, its kept connections closed once it is idle, then SIGTERM.
//!
//! - `task`: the task and its state, one handler per event;
//! - `slot`: one socket and the worker serving it, and starting that worker;
//! - `worker`: one worker's listening socket, its process and the task that reaps it;
//! - `status`: what the status page reads.

mod slot;
mod status;
mod task;
mod worker;

use std::ffi::OsString;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{FastcgiMount, Launch};
use crate::fastcgi::pool::Pool;
use task::State;

pub use status::{AppStatus, WorkerStatus};

/// The handle the gateway keeps: status for the page, stop for shutdown.
pub struct Supervisor {
    pub status: Arc<Mutex<AppStatus>>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    /// Creates the sockets and starts `min_workers` workers; the task does the rest.
    pub fn start(
        mount: &FastcgiMount,
        launch: &Launch,
        pool: Arc<Pool>,
        base_env: &[(OsString, OsString)],
        kill_grace: Duration,
    ) -> std::io::Result<Supervisor> {
        let dir = tempfile::Builder::new().prefix("portico-").tempdir()?;
        let mut launch = launch.clone();
        if let Some((name, source)) = launch.script {
            // A program Portico ships (the WSGI adapter) runs from the private directory.
            let path = dir.path().join(name);
            std::fs::write(&path, source)?;
            launch.command.insert(1, path.into_os_string());
        }
        for (name, source) in launch.modules {
            std::fs::write(dir.path().join(name), source)?;
        }
        let mut env = base_env.to_vec();
        env.extend(launch.env.iter().map(|(k, v)| (k.into(), v.into())));
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(AppStatus::default()));
        let stop = CancellationToken::new();
        let target = launch.min_workers;
        let mut state = State {
            mount: mount.mount.clone(),
            launch,
            capacity: mount.max_connections,
            env,
            dir,
            pool,
            slots: Vec::new(),
            next_slot: 0,
            target,
            failed_starts: 0,
            last_spawn: None,
            kill_grace,
            exits_tx,
            status: status.clone(),
        };
        state.restore();
        state.publish();
        let task = tokio::spawn(state.run(exits, stop.clone()));
        Ok(Supervisor {
            status,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops every worker (SIGTERM, grace, SIGKILL) and waits until all are reaped.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
