//! The load generator behind `portico bench`: closed-loop HTTP/1.1 with keep-alive, a fixed
//! number of connections spread over threads of their own (each a current-thread runtime,
//! as wrk runs one event loop per thread), for a fixed time or request count.
//!
//! Each connection sends a request, reads the whole response (Content-Length, chunked or
//! until close; `response` does the reading), records the latency and sends the next;
//! with a fixed rate it waits for each request's due time first, and latency counts from
//! that time. Latencies go to an HDR histogram per connection, merged at the end.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::response::{Failure, read_response};

/// A response slower than this (less up to `TIMEOUT_SLACK`) counts as a timeout and its
/// connection is opened again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How early the timeout may fire: a connection's timer is moved on only when it would
/// fire more than this before a full `REQUEST_TIMEOUT` after the request, so it is reset
/// about once a second rather than once per request (a reset is a lock and a move in the
/// runtime's timer wheel, a good part of a small request's cost to the generator).
const TIMEOUT_SLACK: Duration = Duration::from_secs(1);
/// How late tokio's timer may wake a connection (its wheel ticks in milliseconds).
const TIMER_SLACK: Duration = Duration::from_micros(1500);
/// Latencies are recorded in microseconds up to this (an hour).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What to load and how hard.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: SocketAddr,
    /// The request-target and Host, as sent.
    pub path: String,
    pub host: String,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    /// Stop after this many requests in all instead of after `duration`.
    pub requests: Option<u64>,
    /// Requests per second in all, evenly spaced, instead of as fast as answers come. Latency
    /// is then counted from when a request was due, not when it was sent, so a stall shows
    /// in full instead of hiding the requests it delayed (coordinated omission).
    pub rate: Option<f64>,
}

/// Failures by kind, as wrk counts them, plus answers that were not 2xx or 3xx.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    /// Responses Portico could not parse as HTTP/1.1.
    pub parse: u64,
    /// Complete responses with a status of 400 or more.
    pub status: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.parse + self.status
    }

    fn add(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.read += other.read;
        self.write += other.write;
        self.timeout += other.timeout;
        self.parse += other.parse;
        self.status += other.status;
    }
}

/// What a load run measured.
pub struct Outcome {
    /// Complete responses (any status).
    pub requests: u64,
    pub errors: Errors,
    pub statuses: BTreeMap<u16, u64>,
    /// Response bytes read, heads included.
    pub bytes: u64,
    pub elapsed: Duration,
    /// Latency of each complete response, in microseconds.
    pub latency: Histogram<u64>,
    /// CPU time the load generator's own threads used.
    pub cpu: Duration,
}

impl Outcome {
    /// Adds another run of the same target (rounds).
    pub fn merge(&mut self, other: &Outcome) {
        self.requests += other.requests;
        self.errors.add(&other.errors);
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        let _ = self.latency.add(&other.latency);
        self.cpu += other.cpu;
    }
}

/// Runs the load and returns once every connection has stopped.
pub fn run(load: &Load) -> io::Result<Outcome> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: portico-bench\r\n\r\n",
        load.path, load.host
    );
    let request: Arc<[u8]> = request.into_bytes().into();
    let threads = load.threads.clamp(1, load.connections.max(1));
    let budget = load.requests.map(|n| Arc::new(AtomicU64::new(n)));
    let started = Instant::now();
    let deadline = started + load.duration;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Connections are dealt out like cards: thread t gets t, t + threads, ...
            let connections = (t..load.connections).step_by(threads).count();
            let (request, budget, addr) = (request.clone(), budget.clone(), load.addr);
            // Each connection's share of the rate: one request per `interval`.
            let interval = load
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(load.connections as f64 / r));
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || -> io::Result<(Vec<Tally>, Duration)> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let tallies = runtime.block_on(async {
                        let tasks: Vec<_> = (0..connections)
                            .map(|_| {
                                let (request, budget) = (request.clone(), budget.clone());
                                tokio::spawn(connection(addr, request, deadline, budget, interval))
                            })
                            .collect();
                        let mut tallies = Vec::new();
                        for task in tasks {
                            if let Ok(tally) = task.await {
                                tallies.push(tally);
                            }
                        }
                        tallies
                    });
                    Ok((tallies, thread_cpu()))
                })
        })
        .collect::<Result<_, _>>()?;
    let mut outcome = Outcome {
        requests: 0,
        errors: Errors::default(),
        statuses: BTreeMap::new(),
        bytes: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        cpu: Duration::ZERO,
    };
    for handle in handles {
        let (tallies, cpu) = handle
            .join()
            .map_err(|_| io::Error::other("a load thread panicked"))??;
        outcome.cpu += cpu;
        for tally in tallies {
            outcome.requests += tally.requests;
            outcome.bytes += tally.bytes;
            outcome.errors.add(&tally.errors);
            for (status, n) in tally.statuses {
                *outcome.statuses.entry(status).or_default() += n;
            }
            let _ = outcome.latency.add(&tally.latency);
        }
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One connection's counts.
struct Tally {
    requests: u64,
    bytes: u64,
    errors: Errors,
    statuses: BTreeMap<u16, u64>,
    latency: Histogram<u64>,
}

/// Requests one after another on a kept connection, reconnecting after an error or a
/// `Connection: close`, until the deadline or the shared request budget runs out.
async fn connection(
    addr: SocketAddr,
    request: Arc<[u8]>,
    deadline: Instant,
    budget: Option<Arc<AtomicU64>>,
    interval: Option<Duration>,
) -> Tally {
    let mut tally = Tally {
        requests: 0,
        bytes: 0,
        errors: Errors::default(),
        statuses: BTreeMap::new(),
        latency: histogram(),
    };
    let mut stream: Option<TcpStream> = None;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let timeout = tokio::time::sleep(REQUEST_TIMEOUT);
    tokio::pin!(timeout);
    // Connections start spread over one interval, not all at once.
    let mut due = Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64(fastrand::f64()));
    loop {
        if let Some(interval) = interval {
            tokio::time::sleep_until(due.into()).await;
            due += interval;
        }
        if Instant::now() >= deadline {
            break;
        }
        if let Some(budget) = &budget
            && budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err()
        {
            break;
        }
        let socket = match stream.as_mut() {
            Some(socket) => socket,
            None => match TcpStream::connect(addr).await {
                Ok(socket) => {
                    let _ = socket.set_nodelay(true);
                    buf.clear();
                    stream.insert(socket)
                }
                Err(_) => {
                    tally.errors.connect += 1;
                    // A refused connect returns at once; do not spin on it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // At a fixed rate a request counts from when it was due if it is sent late because
        // the previous answer was; lateness within the timer's resolution is not counted.
        let now = Instant::now();
        let sent = match interval {
            Some(interval) if now.duration_since(due - interval) > TIMER_SLACK => due - interval,
            _ => now,
        };
        let latest = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        if timeout.deadline() + TIMEOUT_SLACK < latest {
            timeout.as_mut().reset(latest);
        }
        let exchange = async {
            if socket.write_all(&request).await.is_err() {
                return Err(Failure::Write);
            }
            read_response(socket, &mut buf).await
        };
        let answered = tokio::select! {
            biased;
            answered = exchange => Ok(answered),
            () = &mut timeout => Err(()),
        };
        match answered {
            Ok(Ok(response)) => {
                let micros = sent.elapsed().as_micros() as u64;
                let _ = tally.latency.record(micros.clamp(1, MAX_LATENCY_US));
                tally.requests += 1;
                tally.bytes += response.bytes;
                *tally.statuses.entry(response.status).or_default() += 1;
                if response.status >= 400 {
                    tally.errors.status += 1;
                }
                if !response.keep_alive {
                    stream = None;
                }
            }
            Ok(Err(failure)) => {
                match failure {
                    Failure::Write => tally.errors.write += 1,
                    Failure::Read => tally.errors.read += 1,
                    Failure::Parse => tally.errors.parse += 1,
                }
                stream = None;
            }
            Err(_) => {
                tally.errors.timeout += 1;
                stream = None;
            }
        }
    }
    tally
}
