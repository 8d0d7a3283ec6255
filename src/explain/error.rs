//! Why a request could not be explained: the config, the command line's request, the
//! route, or the in-process server.

use crate::config;

/// Why a request could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("bad request: {0}")]
    Request(String),
    #[error("{0}")]
    Route(#[from] crate::error::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
