//! The requests on a mount's application now, for the status page's scoreboard: each is in
//! the table from the moment it has a connection to its endpoint (`Exchange::new`) until
//! its access line is written, or its exchange is dropped, whichever comes first. A
//! request still waiting for an endpoint is the pool's `waiting` count, not a row here.
//!
//! It is on the request path of every FastCGI and WSGI request, so entering and leaving
//! are one short lock each, of a shard: each runtime thread enters into a shard of its
//! own, and only the page's reads, or a request that ends on another thread than it
//! started, ever meet another lock holder. It knows nothing of how the page shows rows.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http::Method;

use super::pool::Endpoint;
use crate::request_id::RequestId;

/// More shards than runtime threads on most machines; a thread past them shares one.
const SHARDS: usize = 16;

/// One request in flight, as the scoreboard shows it.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub path: Arc<str>,
    pub client: IpAddr,
    pub id: RequestId,
    /// When its head came: its age includes its wait for an endpoint.
    pub started: Instant,
    pub endpoint: Arc<Endpoint>,
}

/// A mount's requests in flight.
pub struct InFlight {
    shards: [Arc<Shard>; SHARDS],
}

/// One shard, on cache lines of its own so that two threads' entries never share one.
#[repr(align(64))]
#[derive(Default)]
struct Shard(Mutex<Slab>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Slab> {
        // A panic while the lock was held leaves a slab that is still whole.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Entries by key; a freed key is reused, so a shard stops allocating once it has grown
/// to the most requests it held at once.
#[derive(Default)]
struct Slab {
    entries: Vec<Option<Request>>,
    free: Vec<usize>,
}

/// A request's place in the table; dropping it takes the request out, on every path.
pub struct Entered {
    shard: Arc<Shard>,
    key: usize,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut slab = self.shard.lock();
        if let Some(entry) = slab.entries.get_mut(self.key) {
            *entry = None;
            slab.free.push(self.key);
        }
    }
}

impl Default for InFlight {
    fn default() -> InFlight {
        InFlight {
            shards: std::array::from_fn(|_| Arc::default()),
        }
    }
}

impl InFlight {
    pub fn enter(&self, request: Request) -> Entered {
        let shard = &self.shards[thread_shard()];
        let mut slab = shard.lock();
        let key = match slab.free.pop() {
            Some(key) => {
                slab.entries[key] = Some(request);
                key
            }
            None => {
                slab.entries.push(Some(request));
                slab.entries.len() - 1
            }
        };
        drop(slab);
        Entered {
            shard: shard.clone(),
            key,
        }
    }

    /// The requests in flight now, oldest first.
    pub fn list(&self) -> Vec<Request> {
        let mut all = Vec::new();
        for shard in &self.shards {
            all.extend(shard.lock().entries.iter().flatten().cloned());
        }
        all.sort_by_key(|request| request.started);
        all
    }
}

/// The calling thread's shard: threads take shards in turn as they first enter.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Upstream;

    fn request(path: &str, started: Instant) -> Request {
        let address = Upstream::Tcp("127.0.0.1:9000".into());
        Request {
            method: Method::GET,
            path: path.into(),
            client: "127.0.0.1".parse().unwrap(),
            id: RequestId::new(),
            started,
            endpoint: Arc::new(Endpoint::new(address, Some(1), 1)),
        }
    }

    fn paths(table: &InFlight) -> Vec<String> {
        table.list().iter().map(|r| r.path.to_string()).collect()
    }

    #[test]
    fn a_request_is_listed_from_its_entry_until_its_guard_is_dropped() {
        let table = InFlight::default();
        let now = Instant::now();
        let late = table.enter(request("/late", now));
        let early = table.enter(request("/early", now - Duration::from_secs(1)));
        assert_eq!(paths(&table), ["/early", "/late"], "oldest first");
        let freed = early.key;
        drop(early);
        assert_eq!(paths(&table), ["/late"]);
        let again = table.enter(request("/again", now));
        assert_eq!(again.key, freed, "the freed key is reused");
        drop((late, again));
        assert!(table.list().is_empty());
    }

    #[test]
    fn requests_entered_and_ended_on_other_threads_all_leave() {
        let table = Arc::new(InFlight::default());
        let entered: Vec<Entered> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let table = &table;
                    scope.spawn(move || {
                        (0..50)
                            .map(|j| table.enter(request(&format!("/{i}/{j}"), Instant::now())))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(table.list().len(), 400);
        std::thread::spawn(move || drop(entered)).join().unwrap();
        assert!(table.list().is_empty());
    }
}
