//! Portico: a CGI gateway and process launcher.
//!
//! It takes an HTTP request, finds the program that answers it and hands that program
//! the request as RFC 3875 meta-variables, the body on stdin, and streams its answer back;
//! or sends the same meta-variables as FastCGI records to a persistent worker.
//!
//! # Layout (reading order)
//!
//! - [`cli`], [`config`]: command line and TOML merged into one validated `Config`, one
//!   file per table (`config::limits`, `config::cgi`, `config::fastcgi` with its `launch`
//!   tables, ...); `config::source` puts file, line and key on every error.
//! - [`server`]: accepting connections, hyper, graceful shutdown (`server::Local`: the same
//!   server in-process, for `bench` and `explain`); [`connection`]: the socket,
//!   which an NPH script may take over, and its lingering close (RFC 9112 §9.6).
//! - [`gateway`]: the service: route, run, errors to responses, access log;
//!   [`access_log`]: the Common/Combined Log Format file.
//! - [`router`]: URL path -> script, SCRIPT_NAME and PATH_INFO; all path safety lives here.
//! - [`auth`]: a mount's HTTP Basic authentication against an htpasswd file.
//! - [`meta`]: the meta-variables, shared by every way of running a program.
//! - [`body`]: request bodies (limits, spooling) and the response body type.
//! - [`cgi`]: one process per request. Its `run` module is the task that owns one script
//!   run (stdin, stdout, deadlines, the log line); [`cgi::spawn`] owns the process (pipes,
//!   group kill, reaping with rusage) and starts it through `exec` (a vfork-style clone),
//!   handing it its stdio through [`cgi::stdio_slots`]; `stderr` logs the script's stderr; [`cgi::response`] parses the response head.
//! - [`fastcgi`]: the same request as FastCGI 1.0 records: the codec ([`fastcgi::record`],
//!   [`fastcgi::params`]), one connection ([`fastcgi::conn`]), a mount's endpoints and
//!   their kept connections ([`fastcgi::pool`]), one connection shared by many requests
//!   for apps that multiplex ([`fastcgi::mux`]), one request over them ([`fastcgi::client`]).
//! - [`supervisor`]: the launcher: worker processes on sockets of their own, restarted,
//!   recycled, scaled and stopped by one task; `supervisor::worker` owns one process.
//! - [`wsgi`]: WSGI callables served by launched FastCGI workers running the adapter
//!   built into the binary (`src/wsgi/portico_wsgi.py`); `wsgi::mount` turns a `[[wsgi]]`
//!   table into that FastCGI mount.
//! - [`status`]: the operators' status page.
//! - [`explain`]: `portico explain`: one request shown as CGI, FastCGI and WSGI.
//! - [`bench`]: `portico bench`: the load generator ([`bench::load`]), the report and its
//!   HTML page.
//! - [`privileges`]: the user Portico serves as once its sockets are bound.
//! - [`error`]: the request-path error, its status and whose fault it is.

pub mod access_log;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod body;
pub mod cgi;
pub mod cli;
pub mod config;
pub mod connection;
pub mod error;
pub mod explain;
pub mod fastcgi;
pub mod gateway;
pub mod meta;
pub mod privileges;
pub mod router;
pub mod server;
pub mod status;
pub mod supervisor;
pub mod wsgi;
