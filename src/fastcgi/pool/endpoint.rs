//! One place a mount's FastCGI requests can go: an upstream server, or the socket of one
//! worker Portico launched. It owns the connections kept open to it and the counters the
//! pool balances on, the supervisor recycles by and the status page shows.
//!
//! A noun of its own with its own users: the supervisor creates a launched worker's
//! endpoint, opens and closes it to requests and resets it when the process is replaced;
//! the status page reads its counters; the pool only adds, removes and leases it. Its
//! capacity comes from the config or from the application's answer to FCGI_GET_VALUES
//! (FastCGI spec §4.1).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;

use crate::config::Upstream;
use crate::fastcgi::conn::Conn;
use crate::fastcgi::mux::MuxConn;
use crate::metrics::{ConnectionLabels, metrics};

/// One place requests can be sent: an upstream server or one launched worker's socket.
pub struct Endpoint {
    pub address: Upstream,
    state: Mutex<EndpointState>,
    /// The shared connection of an application that multiplexes (FCGI_MPXS_CONNS=1).
    pub(super) shared: tokio::sync::Mutex<Option<Arc<MuxConn>>>,
    /// Requests sent on a connection opened for them, and on one kept from before.
    pub opened: Counter,
    pub reused: Counter,
}

/// An endpoint's counters and kept connections; `pub` fields are what the status page shows.
pub struct EndpointState {
    pub(super) idle: Vec<Conn>,
    pub busy: usize,
    pub capacity: usize,
    /// Whether the capacity came from the config or the application (FCGI_GET_VALUES).
    pub(super) capacity_known: bool,
    pub(super) asking: bool,
    /// False while a launched worker is starting, draining or stopped.
    pub accepting: bool,
    pub down_until: Option<Instant>,
    /// Requests the application took, however they ended.
    pub served: u64,
    /// Of those, the ones the application failed: it closed the connection or crashed
    /// before FCGI_END_REQUEST, missed a deadline, or sent what does not parse.
    pub failed: u64,
    pub failures: u64,
    pub last_used: Instant,
    /// Requests on new connections that have not heard back yet: kept connections are
    /// closed while there are any, in case the application is out of workers to accept.
    pub(super) unanswered: usize,
    /// Bumped when a launched worker is replaced: older connections are dropped.
    pub generation: u64,
    /// Set when a request ran past the launch's `request_timeout`: the worker is stuck.
    pub stuck: bool,
    /// Requests a launched worker may still take before it is recycled (`max_requests`).
    pub requests_left: Option<u64>,
    /// The application takes several requests on one connection (FCGI_MPXS_CONNS=1).
    pub multiplexed: bool,
}

impl Endpoint {
    pub fn new(address: Upstream, capacity: Option<usize>, default_capacity: usize) -> Endpoint {
        let connections = |how| {
            metrics()
                .fastcgi_connections
                .get_or_create(&ConnectionLabels {
                    upstream: address.to_string(),
                    how,
                })
                .clone()
        };
        let (opened, reused) = (connections("opened"), connections("reused"));
        Endpoint {
            opened,
            reused,
            address,
            state: Mutex::new(EndpointState {
                idle: Vec::new(),
                busy: 0,
                capacity: capacity.unwrap_or(default_capacity),
                capacity_known: capacity.is_some(),
                asking: false,
                accepting: true,
                down_until: None,
                served: 0,
                failed: 0,
                failures: 0,
                last_used: Instant::now(),
                unanswered: 0,
                generation: 0,
                stuck: false,
                requests_left: None,
                multiplexed: false,
            }),
            shared: tokio::sync::Mutex::new(None),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, EndpointState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every kept connection and starts a new generation (a worker was replaced).
    pub fn reset(&self) {
        let mut state = self.state();
        state.idle.clear();
        state.generation += 1;
        state.stuck = false;
        drop(state);
        self.close_shared();
    }

    /// Closes the kept connections (a draining worker then sees its clients leave).
    pub fn close_idle(&self) {
        self.state().idle.clear();
        self.close_shared();
    }

    fn close_shared(&self) {
        if let Ok(mut shared) = self.shared.try_lock()
            && let Some(mux) = shared.take()
        {
            mux.close();
        }
    }

    pub(super) fn is_down(state: &EndpointState, now: Instant) -> bool {
        state.down_until.is_some_and(|until| until > now)
    }

    /// The share of its capacity in use, for least-busy balancing.
    pub(super) fn load(state: &EndpointState) -> f64 {
        state.busy as f64 / state.capacity.max(1) as f64
    }
}
