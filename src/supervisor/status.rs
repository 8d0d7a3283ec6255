//! What the supervisor tells the outside about a launched app: each worker as the status
//! page shows it, and why the app stopped if it did.
//!
//! Written by the supervisor's task after every event and read by the status page under a
//! lock; copies of plain values, so the page never touches a worker or its endpoint.

/// A worker as the status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerStatus {
    pub slot: usize,
    pub pid: Option<u32>,
    pub state: &'static str,
    pub requests: u64,
    pub busy: usize,
    pub age_seconds: f64,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub address: String,
}

/// What the supervisor tells the outside: its workers, and why the app stopped if it did.
#[derive(Debug, Clone, Default)]
pub struct AppStatus {
    pub workers: Vec<WorkerStatus>,
    pub stopped: Option<String>,
}
