//! The FastCGI backend: a pool per mount and the requests in flight, and one request's
//! job, its meta-variables encoded as FCGI_PARAMS. Each request is sent (`send`) and read
//! (`exchange`) in full duplex over a connection from its mount's pool: the body is
//! written as FCGI_STDIN while FCGI_STDOUT is read, so an app that answers as it reads
//! never deadlocks. Requests are sent with FCGI_KEEP_CONN, and a connection that ends its
//! request cleanly goes back to the pool.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::exchange::Exchange;
use super::params;
use super::pool::{Endpoint, Pool};
use crate::backend::{Outcome, Owners, Request, reply_channel};
use crate::config::{Config, FastcgiMount};
use crate::error::Error;
use crate::router;

/// One request for a FastCGI application.
pub struct Job {
    /// The mount, which names the pool.
    pub mount: String,
    pub read_timeout: Duration,
    /// A launched app's `request_timeout`: past it the worker is stuck and replaced.
    pub request_timeout: Option<Duration>,
    /// The FCGI_PARAMS stream's content: meta-variables, then the mount's extra params.
    pub params: Bytes,
    pub request: Request,
}

impl Job {
    /// The request for the app the router found, its meta-variables encoded once, here,
    /// as FCGI_PARAMS name-value pairs (§3.4), then the mount's extra params.
    pub fn new(app: &router::FastcgiMatch<'_>, request: Request) -> Result<Job, Error> {
        let mount = app.mount;
        let pairs = request
            .meta
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .chain(
                mount
                    .params
                    .iter()
                    .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            );
        let params = params::encode_pairs(pairs)
            .map_err(|_| Error::HeadersTooLarge)?
            .freeze();
        Ok(Job {
            mount: mount.mount.clone(),
            read_timeout: mount.read_timeout,
            request_timeout: mount.launch.as_ref().and_then(|l| l.request_timeout),
            params,
            request,
        })
    }
}

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
        let mut lease = pool.acquire(self.queue_timeout).await?;
        let link = match lease.connect().await {
            Ok(link) => link,
            Err(error) => {
                // Nothing was sent: one retry, on another endpoint.
                let Some(mut other) = pool.try_other(&lease.endpoint) else {
                    return Err(error);
                };
                drop(lease);
                let link = other.connect().await?;
                lease = other;
                link
            }
        };
        if self.owners.kill_all.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = reply_channel();
        let kill_all = self.owners.kill_all.clone();
        Exchange::new(job, lease, link, tx, kill_all, pool.stopping())
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
