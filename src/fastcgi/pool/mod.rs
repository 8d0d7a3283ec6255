//! Where a FastCGI request goes: a mount's pool of endpoints (upstream servers, or the
//! workers Portico launched, one socket each), each with its kept-open connections.
//!
//! An endpoint takes at most `capacity` requests at once and never holds more connections
//! than that. This is what keeps a kept-open connection from pinning a worker while another
//! request waits behind it in the listen backlog (nginx's `keepalive` with a libfcgi pool):
//! a libfcgi worker serves one connection at a time, so its socket gets one connection.
//! A request that finds every endpoint at capacity waits, in FIFO order, up to the queue
//! timeout, then gets a 503.
//!
//! Here: the pool (balancing, the queue of waiting requests, stopping the app) and the
//! `Lease`, one request's hold on an endpoint. They share a file because each drives the
//! other: a lease is made by the pool and gives its place back to the pool's queue.
//! `endpoint` is the endpoint itself: its kept connections and its counters.

mod endpoint;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::conn::{Conn, Values, Writer};
use super::in_flight::InFlight;
use super::mux::{MuxConn, Ticket};
use crate::config::Balance;
use crate::error::Error;

pub use endpoint::{Endpoint, EndpointState};

/// A mount's endpoints, the requests waiting for one and those on one.
pub struct Pool {
    pub name: String,
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    balance: Balance,
    next: AtomicUsize,
    pub connect_timeout: Duration,
    fail_timeout: Duration,
    /// Requests waiting for a free endpoint, oldest first.
    waiters: Mutex<VecDeque<oneshot::Sender<()>>>,
    /// Requests that have an endpoint and are not answered yet, for the status page.
    pub in_flight: InFlight,
    /// Why the application is stopped, when it is: requests get a 503 at once.
    stopped: Mutex<Option<String>>,
    /// Cancelled on stop: requests sent but not taken by the app get their 503 too.
    stopping: CancellationToken,
    /// Wakes the supervisor when requests wait (it may start a worker).
    pub demand: Notify,
    /// Whether the supervisor may start another worker on demand: when it may not (a
    /// fixed pool, or one at `max_workers`), waiting requests do not wake it.
    may_grow: AtomicBool,
    /// The waits in line, observed as each request leaves it (`queue_wait_seconds`).
    queue_waits: Histogram,
}

impl Pool {
    pub fn new(
        name: String,
        balance: Balance,
        connect_timeout: Duration,
        fail_timeout: Duration,
    ) -> Pool {
        Pool {
            endpoints: Mutex::new(Vec::new()),
            balance,
            next: AtomicUsize::new(0),
            connect_timeout,
            fail_timeout,
            waiters: Mutex::new(VecDeque::new()),
            in_flight: InFlight::default(),
            stopped: Mutex::new(None),
            stopping: CancellationToken::new(),
            demand: Notify::new(),
            may_grow: AtomicBool::new(false),
            queue_waits: crate::metrics::metrics().queue_wait(&name),
            name,
        }
    }

    pub fn set_may_grow(&self, may_grow: bool) {
        self.may_grow.store(may_grow, Ordering::Relaxed);
    }

    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        lock(&self.endpoints).clone()
    }

    pub fn add(&self, endpoint: Arc<Endpoint>) {
        lock(&self.endpoints).push(endpoint);
        self.wake_one();
    }

    pub fn remove(&self, endpoint: &Arc<Endpoint>) {
        lock(&self.endpoints).retain(|e| !Arc::ptr_eq(e, endpoint));
    }

    /// Stops the application: queued and later requests get a 503 with this reason.
    pub fn stop(&self, reason: String) {
        *lock(&self.stopped) = Some(reason);
        self.stopping.cancel();
        for waiter in lock(&self.waiters).drain(..) {
            let _ = waiter.send(());
        }
    }

    pub fn stopped(&self) -> Option<String> {
        lock(&self.stopped).clone()
    }

    /// Cancelled when the application is stopped.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Requests waiting for an endpoint now (not those that have left).
    pub fn waiting(&self) -> usize {
        lock(&self.waiters)
            .iter()
            .filter(|w| !w.is_closed())
            .count()
    }

    /// A free endpoint, or a wait in line for one up to `queue_timeout`.
    pub async fn acquire(self: &Arc<Self>, queue_timeout: Duration) -> Result<Lease, Error> {
        let arrived = tokio::time::Instant::now();
        let deadline = arrived + queue_timeout;
        let mut woken = false;
        let left = |waited: bool| {
            if waited {
                self.queue_waits.observe(arrived.elapsed().as_secs_f64());
            }
        };
        loop {
            if let Some(reason) = self.stopped() {
                left(woken);
                return Err(Error::AppStopped(reason));
            }
            let (tx, rx) = oneshot::channel();
            {
                // Checked and queued under one lock, so a release in between is not missed;
                // a newcomer goes first only when nobody is waiting.
                let mut waiters = lock(&self.waiters);
                waiters.retain(|w| !w.is_closed());
                if (woken || waiters.is_empty())
                    && let Some(lease) = self.try_lease()
                {
                    left(woken);
                    return Ok(lease);
                }
                if woken {
                    waiters.push_front(tx);
                } else {
                    waiters.push_back(tx);
                }
            }
            if self.may_grow.load(Ordering::Relaxed) {
                self.demand.notify_one();
            }
            let mut turn = Turn { rx, pool: self };
            if tokio::time::timeout_at(deadline, &mut turn.rx)
                .await
                .is_err()
            {
                left(true);
                return Err(Error::Overloaded);
            }
            woken = true;
        }
    }

    fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let endpoints = lock(&self.endpoints);
        let now = Instant::now();
        let usable = |e: &Arc<Endpoint>, allow_down: bool| {
            let s = e.state();
            s.accepting
                && s.busy < s.capacity
                && !(s.asking && s.busy > 0)
                && (allow_down || !Endpoint::is_down(&s, now))
        };
        let n = endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut chosen = None;
        // Endpoints taken out after a failure are tried only when no other is left: while
        // one is up, even a busy one, a request waits in line for it rather than meet the
        // refused connection that took the other out.
        let any_up = endpoints.iter().any(|e| {
            let s = e.state();
            s.accepting && !Endpoint::is_down(&s, now)
        });
        for allow_down in [false, !any_up] {
            chosen = match self.balance {
                Balance::RoundRobin => (0..n)
                    .map(|i| &endpoints[(start + i) % n])
                    .find(|e| usable(e, allow_down)),
                Balance::LeastBusy => (0..n)
                    .map(|i| &endpoints[(start + i) % n])
                    .filter(|e| usable(e, allow_down))
                    .min_by(|a, b| {
                        Endpoint::load(&a.state()).total_cmp(&Endpoint::load(&b.state()))
                    }),
            };
            if chosen.is_some() {
                break;
            }
        }
        let endpoint = chosen?.clone();
        drop(endpoints);
        let mut state = endpoint.state();
        state.busy += 1;
        if let Some(left) = &mut state.requests_left {
            *left = left.saturating_sub(1);
            if *left == 0 {
                // Its last request: the supervisor replaces it (woken through `demand`).
                state.accepting = false;
                self.demand.notify_one();
            }
        }
        let conn = state.idle.pop();
        let generation = state.generation;
        let ask = !state.capacity_known && !state.asking;
        if ask {
            state.asking = true;
        }
        drop(state);
        Some(Lease {
            pool: self.clone(),
            endpoint,
            conn,
            generation,
            ask,
            unanswered: false,
            released: false,
        })
    }

    /// Lets the oldest waiting request try again (an endpoint became free or usable).
    pub fn wake_one(&self) {
        self.wake(1);
    }

    fn wake(&self, mut n: usize) {
        let mut waiters = lock(&self.waiters);
        while n > 0
            && let Some(waiter) = waiters.pop_front()
        {
            if waiter.send(()).is_ok() {
                n -= 1;
            }
        }
    }
}

/// What a request is sent on.
pub enum Link {
    Direct(Conn),
    Shared(Ticket, super::mux::Queue, Writer),
}

/// A place in the line. A request that leaves the line after its turn came (its client
/// went away) passes the turn on, so no free endpoint is left with requests waiting.
struct Turn<'a> {
    rx: oneshot::Receiver<()>,
    pool: &'a Pool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.pool.wake_one();
        }
    }
}

/// One request's hold on an endpoint: a connection to send it on and a place in the
/// endpoint's capacity, given back by `release` (or on drop, with the connection closed).
pub struct Lease {
    pool: Arc<Pool>,
    pub endpoint: Arc<Endpoint>,
    conn: Option<Conn>,
    generation: u64,
    /// This request asks the application's limits first (FCGI_GET_VALUES).
    ask: bool,
    /// Sent on a new connection and not answered yet.
    unanswered: bool,
    released: bool,
}

impl Lease {
    /// A kept connection if one is still good, else a new one; for an application that
    /// multiplexes, a request id on its shared connection.
    pub async fn connect(&mut self) -> Result<Link, Error> {
        if self.ask {
            let values =
                super::conn::ask_values(&self.endpoint.address, self.pool.connect_timeout).await;
            self.learn(values);
        }
        if self.endpoint.state().multiplexed {
            let endpoint = self.endpoint.clone();
            let mut shared = endpoint.shared.lock().await;
            if let Some(mux) = shared.as_ref().filter(|m| m.is_alive())
                && let Some((ticket, queue, writer)) = mux.open()
            {
                return Ok(Link::Shared(ticket, queue, writer));
            }
            let mux = MuxConn::start(self.open().await?);
            *shared = Some(mux.clone());
            let (ticket, queue, writer) = mux
                .open()
                .ok_or_else(|| Error::Upstream(std::io::ErrorKind::BrokenPipe.into()))?;
            return Ok(Link::Shared(ticket, queue, writer));
        }
        self.open().await.map(Link::Direct)
    }

    /// A new connection for a request whose kept one turned out closed.
    pub async fn reconnect(&mut self) -> Result<Conn, Error> {
        self.conn = None;
        self.open_new().await
    }

    /// Why the application is stopped, if it is.
    pub fn pool_stopped(&self) -> Option<String> {
        self.pool.stopped()
    }

    async fn open(&mut self) -> Result<Conn, Error> {
        while let Some(mut conn) = self.conn.take() {
            if conn.is_usable() {
                return Ok(conn);
            }
            self.conn = self.endpoint.state().idle.pop();
        }
        self.open_new().await
    }

    async fn open_new(&mut self) -> Result<Conn, Error> {
        match Conn::open(
            &self.endpoint.address,
            self.pool.connect_timeout,
            self.generation,
        )
        .await
        {
            Ok(conn) => {
                let mut state = self.endpoint.state();
                state.unanswered += 1;
                state.down_until = None;
                self.unanswered = true;
                Ok(conn)
            }
            Err(error) => {
                let mut state = self.endpoint.state();
                state.failures += 1;
                state.down_until = Some(Instant::now() + self.pool.fail_timeout);
                drop(state);
                tracing::warn!(
                    pool = %self.pool.name, upstream = %self.endpoint.address,
                    cause = crate::error::chain(&error), "cannot connect; left out for {:?}", self.pool.fail_timeout,
                );
                Err(error)
            }
        }
    }

    fn learn(&mut self, values: Option<Values>) {
        let mut state = self.endpoint.state();
        state.asking = false;
        state.capacity_known = true;
        if let Some(values) = values {
            // Several requests on one connection: FCGI_MAX_REQS bounds them, not the
            // connection count.
            state.multiplexed = values.mpxs_conns == Some(true);
            let capacity = match state.multiplexed {
                true => values.max_reqs.filter(|&n| n > 0).or(values.capacity()),
                false => values.capacity(),
            };
            tracing::debug!(upstream = %self.endpoint.address, ?values, "FCGI_GET_VALUES");
            if let Some(capacity) = capacity {
                state.capacity = capacity;
            }
        }
        let more = state.capacity.saturating_sub(1);
        drop(state);
        self.ask = false;
        // A larger capacity lets queued requests in.
        self.pool.wake(more);
    }

    /// The first record arrived on a new connection: the application accepted it.
    pub fn answered(&mut self) {
        if std::mem::take(&mut self.unanswered) {
            let mut state = self.endpoint.state();
            state.unanswered -= 1;
        }
    }

    /// Cancelled when the application is stopped.
    pub fn stopping(&self) -> CancellationToken {
        self.pool.stopping()
    }

    /// The request ran past its deadline: a launched worker is killed and replaced.
    pub fn mark_stuck(&self) {
        self.endpoint.state().stuck = true;
    }

    /// Gives the endpoint back after a request the application took, with the connection
    /// kept if it is clean to reuse; `clean` when the request ended as it should.
    pub fn release(mut self, conn: Option<Conn>, clean: bool) {
        self.give_back(conn, Some(clean));
    }

    /// `taken`: whether the request ended cleanly, if the application took it at all.
    fn give_back(&mut self, conn: Option<Conn>, taken: Option<bool>) {
        if self.released {
            return;
        }
        self.released = true;
        self.answered();
        let mut state = self.endpoint.state();
        if self.ask {
            state.asking = false;
        }
        state.busy -= 1;
        if let Some(clean) = taken {
            state.served += 1;
            state.failed += u64::from(!clean);
            state.last_used = Instant::now();
        }
        if let Some(conn) = conn
            && state.accepting
            && !state.stuck
            && conn.generation == state.generation
            && state.unanswered == 0
        {
            state.idle.push(conn);
        }
        drop(state);
        self.pool.wake_one();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(None, None);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
