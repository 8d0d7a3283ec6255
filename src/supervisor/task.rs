//! The supervisor's task: the one owner of a launch mount's workers, driven by events.
//!
//! It waits for an event (a worker exited, requests are waiting, the tick, stop), handles
//! it, then restores the worker count and publishes the status, as gunicorn's arbiter loop
//! does. Nothing here runs because of a request, only because of what the pool reports
//! (`demand`, `waiting`) or what a worker did. A crashed worker is restarted in its slot
//! after a backoff that grows only while starts keep failing; `start_retries` failed starts
//! in a row stop the app.

use std::ffi::OsString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::slot::{Phase, Slot, start_process};
use super::status::{AppStatus, WorkerStatus};
use super::worker::{self, Exit, Socket};
use crate::config::Launch;
use crate::fastcgi::pool::{Endpoint, Pool};
use crate::metrics::{MountLabel, RecycleLabels, metrics};

/// A worker exit this soon after its start, before it served anything, is a failed start.
const START_WINDOW: Duration = Duration::from_secs(2);
/// Restart backoff after a crash: doubles from the first value up to the second.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));
const TICK: Duration = Duration::from_millis(100);

pub(super) struct State {
    pub(super) mount: String,
    pub(super) launch: Launch,
    pub(super) capacity: Option<usize>,
    pub(super) env: Vec<(OsString, OsString)>,
    pub(super) dir: tempfile::TempDir,
    pub(super) pool: Arc<Pool>,
    pub(super) slots: Vec<Slot>,
    pub(super) next_slot: usize,
    /// Workers wanted: min_workers, more on demand up to max_workers.
    pub(super) target: usize,
    /// Workers in a row that exited at start.
    pub(super) failed_starts: u32,
    pub(super) last_spawn: Option<Instant>,
    pub(super) kill_grace: Duration,
    pub(super) exits_tx: mpsc::UnboundedSender<Exit>,
    pub(super) status: Arc<Mutex<AppStatus>>,
}

impl State {
    pub(super) async fn run(
        mut self,
        mut exits: mpsc::UnboundedReceiver<Exit>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let pool = self.pool.clone();
        loop {
            tokio::select! {
                Some(exit) = exits.recv() => self.on_exit(exit),
                () = pool.demand.notified() => {
                    self.on_tick();
                    self.on_demand();
                }
                _ = tick.tick() => {
                    self.on_tick();
                    self.on_demand();
                }
                () = stop.cancelled() => break,
            }
            self.restore();
            self.pool
                .set_may_grow(self.target < self.launch.max_workers);
            self.publish();
        }
        self.shutdown(&mut exits).await;
        self.publish();
    }

    fn live(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                matches!(
                    s.phase,
                    Phase::Running | Phase::Restarting(_) | Phase::Killing
                )
            })
            .count()
    }

    /// Starts workers until `target` are live, unless the app is stopped.
    pub(super) fn restore(&mut self) {
        while self.pool.stopped().is_none() && self.live() < self.target {
            if let Err(error) = self.add_slot() {
                self.stop_app(format!("cannot start a worker: {error}"));
            }
        }
    }

    fn add_slot(&mut self) -> std::io::Result<()> {
        let id = self.next_slot;
        self.next_slot += 1;
        let name = format!("worker-{id}");
        let socket = Socket::bind(self.launch.socket, self.dir.path(), &name)?;
        let endpoint = Arc::new(Endpoint::new(socket.address.clone(), self.capacity, 1));
        let jitter = match self.launch.max_requests_jitter {
            0 => 0,
            j => fastrand::u64(0..=j),
        };
        let mut slot = Slot {
            id,
            socket,
            endpoint: endpoint.clone(),
            process: None,
            phase: Phase::Running,
            started: Instant::now(),
            served_before: 0,
            failed_before: 0,
            max_requests: self.launch.max_requests.map(|m| m + jitter),
            crashes_in_a_row: 0,
            restarts: 0,
            last_exit: None,
        };
        self.spawn(&mut slot)?;
        self.pool.add(endpoint);
        self.slots.push(slot);
        Ok(())
    }

    fn spawn(&mut self, slot: &mut Slot) -> std::io::Result<()> {
        start_process(&self.launch, &self.env, &self.mount, &self.exits_tx, slot)?;
        self.pool.wake_one();
        self.last_spawn = Some(Instant::now());
        Ok(())
    }

    fn on_exit(&mut self, exit: Exit) {
        let Some(index) = self.slots.iter().position(|s| s.id == exit.slot) else {
            return;
        };
        let how = worker::describe(&exit.status);
        let slot = &mut self.slots[index];
        let stderr = slot
            .process
            .take()
            .map(|p| p.stderr_tail())
            .unwrap_or_default();
        slot.endpoint.reset();
        slot.endpoint.state().accepting = false;
        let lived = slot.started.elapsed();
        let (served, clean) = {
            let state = slot.endpoint.state();
            let served = state.served - slot.served_before;
            (served, served - (state.failed - slot.failed_before))
        };
        match slot.phase {
            Phase::Stopping(_) if self.pool.stopped().is_some() => {
                slot.last_exit = Some(how);
                slot.phase = Phase::Stopped;
                return;
            }
            Phase::Stopping(_) | Phase::Draining(_) => {
                tracing::info!(mount = %self.mount, slot = slot.id, pid = exit.pid, "worker stopped: {how}");
                let slot = self.slots.remove(index);
                self.pool.remove(&slot.endpoint);
                return;
            }
            Phase::Killing => {
                slot.last_exit = Some(format!("{how} (request_timeout)"));
                slot.restarts += 1;
                count_restart(&self.mount);
                slot.phase = Phase::Restarting(Instant::now());
                return;
            }
            Phase::Running | Phase::Restarting(_) | Phase::Stopped => {}
        }
        slot.last_exit = Some(how.clone());
        slot.restarts += 1;
        count_restart(&self.mount);
        let failed_start = served == 0 && lived < START_WINDOW;
        // A worker that came up and answered a request is a crash, not a failing start: it
        // is replaced at once, as supervisord does past `startsecs`, so that a few crashes
        // spread over minutes never leave the mount without workers for seconds. One that
        // took requests but answered none (a crash on every request) backs off like a
        // failing start, without stopping the app: a restart per request would only burn
        // CPU.
        if clean > 0 {
            slot.crashes_in_a_row = 0;
        }
        let backoff = BACKOFF.0 * 2u32.saturating_pow(slot.crashes_in_a_row.min(10));
        slot.crashes_in_a_row += 1;
        slot.phase = Phase::Restarting(Instant::now() + backoff.min(BACKOFF.1));
        tracing::warn!(
            mount = %self.mount, slot = slot.id, pid = exit.pid, served, lived_ms = lived.as_millis() as u64,
            stderr, "worker exited: {how}; restarting in {:?}", backoff.min(BACKOFF.1),
        );
        if failed_start {
            self.failed_starts += 1;
            if self.failed_starts >= self.launch.start_retries {
                let reason = format!(
                    "{} workers in a row exited at start, the last with {how}",
                    self.failed_starts
                );
                self.stop_app(reason);
            }
        } else {
            self.failed_starts = 0;
        }
    }

    /// Requests are waiting: one more worker, if the pool may grow and none just started.
    fn on_demand(&mut self) {
        let recently = self
            .last_spawn
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200));
        if self.pool.waiting() > 0 && self.target < self.launch.max_workers && !recently {
            self.target += 1;
            tracing::info!(mount = %self.mount, workers = self.target, "requests waiting: starting a worker");
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if self.failed_starts > 0
            && self
                .slots
                .iter()
                .any(|s| s.endpoint.state().served > s.served_before)
        {
            self.failed_starts = 0;
        }
        for i in 0..self.slots.len() {
            let retire = self.recycle_reason(i, now);
            let stopped = self.pool.stopped().is_some();
            let slot = &mut self.slots[i];
            let (busy, stuck) = {
                let s = slot.endpoint.state();
                (s.busy, s.stuck)
            };
            match slot.phase {
                Phase::Restarting(at) if at <= now && !stopped => {
                    match start_process(&self.launch, &self.env, &self.mount, &self.exits_tx, slot)
                    {
                        Ok(()) => {
                            self.last_spawn = Some(now);
                            // Requests queued while it was down may go now.
                            self.pool.wake_one();
                        }
                        Err(error) => tracing::error!(
                            mount = %self.mount, slot = slot.id, %error, "cannot restart a worker"
                        ),
                    }
                }
                Phase::Running if stuck => {
                    tracing::warn!(
                        mount = %self.mount, slot = slot.id,
                        "a request passed request_timeout: killing the worker"
                    );
                    slot.endpoint.state().accepting = false;
                    if let Some(p) = &slot.process {
                        p.signal(libc::SIGKILL);
                    }
                    slot.phase = Phase::Killing;
                }
                Phase::Running => {
                    if let Some(reason) = retire {
                        tracing::info!(mount = %self.mount, slot = slot.id, "recycling a worker: {reason}");
                        let labels = RecycleLabels {
                            mount: self.mount.clone(),
                            reason,
                        };
                        metrics().worker_recycles.get_or_create(&labels).inc();
                        slot.endpoint.state().accepting = false;
                        slot.phase = Phase::Draining(reason);
                        if reason == "idle" {
                            self.target =
                                self.target.saturating_sub(1).max(self.launch.min_workers);
                        }
                    }
                }
                Phase::Draining(_) if busy == 0 => {
                    // Nothing in flight: closing the kept connections first means no
                    // client of this worker ever sees a reset.
                    slot.endpoint.close_idle();
                    if let Some(p) = &slot.process {
                        p.signal(libc::SIGTERM);
                    }
                    slot.phase = Phase::Stopping(now);
                }
                Phase::Stopping(since) if now.duration_since(since) > self.kill_grace => {
                    if let Some(p) = &slot.process {
                        p.signal(libc::SIGKILL);
                    }
                }
                _ => {}
            }
        }
    }

    /// Why a running worker should be replaced now, if it should.
    fn recycle_reason(&self, i: usize, now: Instant) -> Option<&'static str> {
        let slot = &self.slots[i];
        let state = slot.endpoint.state();
        if state.requests_left == Some(0) {
            return Some("max_requests");
        }
        if let (Some(max), Some(p)) = (self.launch.max_memory_bytes, &slot.process)
            && p.rss_bytes().is_some_and(|rss| rss > max)
        {
            return Some("max_memory");
        }
        let idle = state.busy == 0
            && now.duration_since(state.last_used.max(slot.started)) > self.launch.idle_timeout;
        if idle && self.live() > self.launch.min_workers && self.pool.waiting() == 0 {
            return Some("idle");
        }
        None
    }

    fn stop_app(&mut self, reason: String) {
        tracing::error!(mount = %self.mount, "application stopped: {reason}");
        self.pool.stop(reason);
        let now = Instant::now();
        for slot in &mut self.slots {
            slot.endpoint.state().accepting = false;
            slot.phase = match &slot.process {
                Some(p) => {
                    p.signal(libc::SIGTERM);
                    Phase::Stopping(now)
                }
                // Waiting to restart: kept for the status page and its last exit.
                None => Phase::Stopped,
            };
        }
    }

    /// SIGTERM to every worker, SIGKILL after the grace period, and every exit reaped.
    async fn shutdown(&mut self, exits: &mut mpsc::UnboundedReceiver<Exit>) {
        for slot in &mut self.slots {
            slot.endpoint.state().accepting = false;
            slot.endpoint.close_idle();
            if let Some(p) = &slot.process {
                p.signal(libc::SIGTERM);
            }
        }
        let deadline = tokio::time::Instant::now() + self.kill_grace;
        let mut killed = false;
        while self.slots.iter().any(|s| s.process.is_some()) {
            let exit = if killed {
                exits.recv().await
            } else {
                match tokio::time::timeout_at(deadline, exits.recv()).await {
                    Ok(exit) => exit,
                    Err(_) => {
                        for p in self.slots.iter().filter_map(|s| s.process.as_ref()) {
                            p.signal(libc::SIGKILL);
                        }
                        killed = true;
                        continue;
                    }
                }
            };
            let Some(exit) = exit else { break };
            if let Some(slot) = self.slots.iter_mut().find(|s| s.id == exit.slot) {
                slot.process = None;
            }
        }
        for slot in &self.slots {
            self.pool.remove(&slot.endpoint);
        }
        self.slots.clear();
    }

    pub(super) fn publish(&self) {
        let workers = self
            .slots
            .iter()
            .map(|slot| {
                let state = slot.endpoint.state();
                WorkerStatus {
                    slot: slot.id,
                    pid: slot.process.as_ref().map(|p| p.pid),
                    state: match slot.phase {
                        Phase::Running if state.busy > 0 => "busy",
                        Phase::Running => "idle",
                        Phase::Restarting(_) => "restarting",
                        Phase::Draining(_) => "draining",
                        Phase::Stopping(_) => "stopping",
                        Phase::Killing => "killing",
                        Phase::Stopped => "stopped",
                    },
                    requests: state.served - slot.served_before,
                    busy: state.busy,
                    age_seconds: slot.started.elapsed().as_secs_f64(),
                    restarts: slot.restarts,
                    last_exit: slot.last_exit.clone(),
                    address: slot.endpoint.address.to_string(),
                }
            })
            .collect();
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.workers = workers;
        status.stopped = self.pool.stopped();
    }
}

/// A worker of `mount` restarted, for `/metrics`.
fn count_restart(mount: &str) {
    let mount = mount.to_owned();
    metrics()
        .worker_restarts
        .get_or_create(&MountLabel { mount })
        .inc();
}
