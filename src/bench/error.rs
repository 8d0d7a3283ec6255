//! Why `portico bench` did not produce a report: the config, the `--url`, I/O, or a target
//! that does not answer.
//!
//! Its own file because both the driver and the server under load return it, and the
//! binary maps it to an exit code (`main.rs`).

use crate::config;

/// Why a bench did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("bad --url `{0}`: expected http://HOST:PORT")]
    Url(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("target {0} does not answer: {1}")]
    Target(String, String),
    #[error("no target answered")]
    NoTarget,
}
