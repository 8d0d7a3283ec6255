//! Every process Portico started and has not reaped yet, and what it is doing: the
//! status page's scoreboard lists the scripts running now from it, and the orphan sweep
//! (`orphans`) tells Portico's own children from processes that escaped a script's or a
//! worker's process group by it.
//!
//! A process is in the table from just after its spawn until just before it is reaped
//! (its [`Registration`] is dropped then), so a pid in it is always a live child or an
//! unreaped zombie of Portico's, never a reused one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Instant;

/// What a child is for.
#[derive(Debug, Clone)]
pub enum Role {
    /// A CGI script answering one request.
    Script(Script),
    /// A launched FastCGI or WSGI worker of `mount`.
    Worker { mount: String },
}

/// The request a running script answers, as the scoreboard shows it.
#[derive(Debug, Clone)]
pub struct Script {
    /// SCRIPT_NAME.
    pub script: std::sync::Arc<str>,
    pub method: String,
    pub path: String,
    pub client: String,
    pub request_id: String,
}

#[derive(Debug, Clone)]
pub struct Child {
    pub pid: i32,
    pub role: Role,
    pub started: Instant,
    /// Tells this registration from a later one of the same pid, once it is reused.
    serial: u64,
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

static TABLE: LazyLock<Mutex<HashMap<i32, Child>>> = LazyLock::new(Mutex::default);

fn table() -> MutexGuard<'static, HashMap<i32, Child>> {
    // A panic elsewhere while the lock was held leaves a table that is still whole.
    TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A child's place in the table; dropping it takes the child out, and only this child:
/// dropped after the reap, when the pid may already be another child's, it leaves that
/// one's entry alone.
#[derive(Debug)]
pub struct Registration {
    pid: i32,
    serial: u64,
}

impl Registration {
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = table();
        if table
            .get(&self.pid)
            .is_some_and(|child| child.serial == self.serial)
        {
            table.remove(&self.pid);
        }
    }
}

/// Enters a child Portico has just started.
pub fn register(pid: i32, role: Role) -> Registration {
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let child = Child {
        pid,
        role,
        started: Instant::now(),
        serial,
    };
    table().insert(pid, child);
    Registration { pid, serial }
}

/// Whether `pid` is a child Portico started and has not reaped.
pub fn is_known(pid: i32) -> bool {
    table().contains_key(&pid)
}

/// Whether `pgid` is the process group of a child Portico has not reaped: what is left in
/// it is still that child's run's to end (by its deadlines, with its group).
pub fn owns_group(pgid: i32) -> bool {
    is_known(pgid)
}

/// The scripts running now, oldest first.
pub fn scripts() -> Vec<(Child, Script)> {
    let mut scripts: Vec<_> = table()
        .values()
        .filter_map(|child| match &child.role {
            Role::Script(script) => Some((child.clone(), script.clone())),
            Role::Worker { .. } => None,
        })
        .collect();
    scripts.sort_by_key(|(child, _)| child.started);
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(path: &str) -> Role {
        Role::Script(Script {
            script: "/cgi-bin/x".into(),
            method: "GET".into(),
            path: path.into(),
            client: "127.0.0.1".into(),
            request_id: "1".into(),
        })
    }

    #[test]
    fn a_child_is_known_from_its_registration_until_it_is_dropped() {
        // Pids far above pid_max, so no other test's real children collide.
        let first = register(1 << 30, script("/a"));
        let worker = register((1 << 30) + 1, Role::Worker { mount: "/w".into() });
        let second = register((1 << 30) + 2, script("/b"));
        assert!(is_known(1 << 30) && is_known((1 << 30) + 1));
        let paths: Vec<String> = scripts()
            .into_iter()
            .filter(|(child, _)| child.pid >= 1 << 30)
            .map(|(_, script)| script.path)
            .collect();
        assert_eq!(paths, ["/a", "/b"], "oldest first, workers left out");
        drop(first);
        assert!(!is_known(1 << 30));
        assert!(is_known(second.pid()) && is_known(worker.pid()));

        // The pid reused by a new child before the old registration is dropped.
        let reused = register((1 << 30) + 2, script("/c"));
        drop(second);
        assert!(is_known(reused.pid()), "the new child's entry stays");
    }
}
