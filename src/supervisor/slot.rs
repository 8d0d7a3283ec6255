//! A slot: one socket of a launch mount and the worker process serving it, with the
//! phase it is in (running, restarting, draining, stopping) and its history.
//!
//! The socket and its endpoint belong to the slot, not to the process, so that a crashed
//! worker is restarted in place: connections queued in the socket's backlog meanwhile are
//! served by the replacement, and the status page keeps counting restarts for the slot.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::worker::{Exit, Process, Socket};
use crate::config::Launch;
use crate::fastcgi::pool::Endpoint;

/// One socket and the worker process serving it.
pub(super) struct Slot {
    pub(super) id: usize,
    pub(super) socket: Socket,
    pub(super) endpoint: Arc<Endpoint>,
    pub(super) process: Option<Process>,
    pub(super) phase: Phase,
    pub(super) started: Instant,
    /// The endpoint's request count when this process started.
    pub(super) served_before: u64,
    /// The endpoint's failed request count when this process started.
    pub(super) failed_before: u64,
    /// Requests after which this worker is recycled (max_requests plus its jitter).
    pub(super) max_requests: Option<u64>,
    pub(super) crashes_in_a_row: u32,
    pub(super) restarts: u32,
    pub(super) last_exit: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    /// Crashed; restarted at this time.
    Restarting(Instant),
    /// Replaced by a new slot; stopped once idle, then removed.
    Draining(&'static str),
    /// SIGTERM sent at this time (SIGKILL after the grace period); removed on exit.
    Stopping(Instant),
    /// Killed because a request hung; restarted on exit.
    Killing,
    /// The app is stopped; nothing runs in this slot any more.
    Stopped,
}

/// Starts a slot's worker process; the slot may be borrowed out of `State::slots`.
pub(super) fn start_process(
    launch: &Launch,
    env: &[(OsString, OsString)],
    mount: &str,
    exits: &mpsc::UnboundedSender<Exit>,
    slot: &mut Slot,
) -> std::io::Result<()> {
    let process = Process::spawn(
        &launch.command,
        env,
        &slot.socket,
        mount,
        slot.id,
        exits.clone(),
    )?;
    tracing::info!(%mount, slot = slot.id, pid = process.pid, "worker started");
    slot.process = Some(process);
    slot.started = Instant::now();
    slot.phase = Phase::Running;
    let mut state = slot.endpoint.state();
    slot.served_before = state.served;
    slot.failed_before = state.failed;
    state.accepting = true;
    state.requests_left = slot.max_requests;
    Ok(())
}
