//! The FastCGI backend: a pool per mount and the requests in flight. Each request is sent (`send`) and read
//! (`exchange`) in full duplex over a connection from its mount's pool: the body is
//! written as FCGI_STDIN while FCGI_STDOUT is read, so an app that answers as it reads
//! never deadlocks. Requests are sent with FCGI_KEEP_CONN, and a connection that ends its
//! request cleanly goes back to the pool.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::exchange::Exchange;
use super::job::Job;
use super::pool::{Endpoint, Pool};
use crate::backend::{Outcome, Owners, reply_channel};
use crate::config::{Config, FastcgiMount};
use crate::error::Error;

/// The FastCGI backend: a pool per mount and the owners of all requests in flight.
pub struct FastCgi {
    pools: HashMap<String, Arc<Pool>>,
    queue_timeout: Duration,
    owners: Owners,
}

impl FastCgi {
    pub fn new(config: &Config) -> FastCgi {
        let pools = config
            .fastcgi
            .iter()
            .chain(config.authorizers())
            .chain(config.persistent_runners())
            .map(|mount| (mount.mount.clone(), Arc::new(new_pool(mount))))
            .collect();
        FastCgi {
            pools,
            queue_timeout: config.limits.queue_timeout,
            owners: Owners::default(),
        }
    }

    pub fn pool(&self, mount: &str) -> Option<&Arc<Pool>> {
        self.pools.get(mount)
    }

    pub async fn run(&self, job: Job) -> Result<Outcome, Error> {
        let pool = self.pools.get(&job.mount).ok_or(Error::NotFound)?;
        let deadline = tokio::time::Instant::now() + self.queue_timeout;
        let mut lease = pool.acquire(self.queue_timeout).await?;
        let mut tried: Vec<Arc<Endpoint>> = Vec::new();
        let link = loop {
            match lease.connect().await {
                Ok(link) => break link,
                Err(error) => {
                    // Nothing was sent, and the endpoint is left out now: the request waits
                    // in line again, for another endpoint (a busy one frees up), within
                    // what is left of its queue time. Given one it tried, all are down.
                    tried.push(lease.endpoint.clone());
                    drop(lease);
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let Ok(next) = pool.acquire(left).await else {
                        return Err(error);
                    };
                    if tried.iter().any(|e| Arc::ptr_eq(e, &next.endpoint)) {
                        return Err(error);
                    }
                    lease = next;
                }
            }
        };
        if self.owners.kill_all.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = reply_channel();
        let kill_all = self.owners.kill_all.clone();
        Exchange::new(job, lease, link, tx, kill_all, pool)
            .run(&self.owners)
            .await;
        Ok(rx.outcome().await)
    }

    /// Waits for the requests in flight, without ending them.
    pub async fn wait_idle(&self) {
        self.owners.wait_idle().await;
    }

    /// Ends every request in flight and waits for their tasks.
    pub async fn kill_all_and_wait(&self) {
        self.owners.kill_all_and_wait().await;
    }
}

fn new_pool(mount: &FastcgiMount) -> Pool {
    let pool = Pool::new(
        mount.mount.clone(),
        mount.balance,
        mount.connect_timeout,
        mount.fail_timeout,
    );
    for upstream in &mount.upstreams {
        // An upstream that does not say its limits gets 8 connections.
        pool.add(Arc::new(Endpoint::new(
            upstream.clone(),
            mount.max_connections,
            8,
        )));
    }
    pool
}
