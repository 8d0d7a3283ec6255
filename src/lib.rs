//! Portico: a CGI gateway and process launcher.
//!
//! It takes an HTTP request, finds the program that answers it and hands that program the
//! request in one of three generations of one contract: as RFC 3875 meta-variables in the
//! environment of a process started for it (CGI), as the same meta-variables in FastCGI
//! records to a persistent worker (FastCGI), or as a PEP 3333 `environ` to a Python callable
//! in a worker Portico launches (WSGI). `ARCHITECTURE.md` at the repository root has the
//! code map and the invariants; this is the reading order.
//!
//! # Reading order
//!
//! 1. The door: [`cli`] and [`config`] (one validated `Config`, one file per table);
//!    [`server`] (accepting, hyper, graceful shutdown, `server::Local` for the tools) and
//!    [`connection`] (the socket, NPH takeover, lingering close); [`gateway`] (route,
//!    dispatch, errors to responses), with [`router`] (all path safety), [`auth`] and
//!    [`body`] (request bodies, limits, spooling).
//! 2. The contract: [`meta`] builds the meta-variables every generation carries;
//!    [`backend`] is what every generation hands back (the outcome, the reply channel and
//!    the body's framing, the owners of requests in flight, the one access line).
//! 3. CGI: [`cgi`]: `cgi::env` builds a script's environment, `cgi::spawn` owns its process, `cgi::run` one run of it,
//!    [`cgi::response`] parses the response head (FastCGI reuses it).
//! 4. FastCGI: [`fastcgi`]: the codec (`fastcgi::record`, `fastcgi::params`), a request's
//!    job, its write side (`fastcgi::send`) and read side, connections and pools
//!    (`fastcgi::conn`, `fastcgi::pool`, `fastcgi::mux`); [`supervisor`] launches,
//!    restarts, recycles and scales the workers Portico runs.
//!    Between the two, [`persistent`]: a CGI script kept warm in a launched runner that
//!    compiles it once, answered by plain CGI when the runner cannot host it.
//! 5. WSGI: [`wsgi`]: a `[[wsgi]]` mount becomes a launched FastCGI app running the
//!    adapter built into the binary; `wsgi::environ` shows the environ it builds.
//! 6. The windows and tools: [`status`] (with [`traffic`] and [`children`]), [`metrics`],
//!    [`access_log`], [`privileges`]; [`explain`] and
//!    [`bench`](mod@bench) use only the public surface.
//! 7. [`error`]: the request-path error, its status and whose fault it is.

pub mod access_log;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod body;
pub mod cgi;
pub mod children;
pub mod cli;
pub mod config;
pub mod connection;
pub mod error;
pub mod explain;
pub mod fastcgi;
pub mod forwarded;
pub mod gateway;
pub mod meta;
pub mod metrics;
pub mod orphans;
pub mod persistent;
pub mod privileges;
pub mod request_id;
pub mod router;
pub mod sendfile;
pub mod server;
pub mod status;
pub mod supervisor;
pub mod systemd;
pub mod traffic;
pub mod wsgi;
