//! FastCGI 1.0: the same request CGI mode runs as a process, sent as records to a
//! persistent worker over a kept-open socket.
//!
//! Portico writes its own codec instead of using the fastcgi-client crate: that crate writes
//! all of FCGI_STDIN before it reads any FCGI_STDOUT and always uses request id 1, so an app
//! that answers while it reads deadlocks against it once both socket buffers are full
//! (`tests/fastcgi_client_crate.rs` shows it), and it has no FCGI_ABORT_REQUEST or
//! FCGI_GET_VALUES. The codec is small and sans-I/O:
//!
//! - [`record`]: record framing (FastCGI spec §3.3) and the fixed-size bodies of
//!   BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE (§5.1, §5.5, §4.2);
//! - [`params`]: name-value pairs (§3.4), which carry the meta-variables in FCGI_PARAMS and
//!   the FCGI_GET_VALUES queries.
//!
//! On top of it:
//! - [`conn`]: one connection: opening, reuse checks, FCGI_GET_VALUES;
//! - [`pool`]: a mount's endpoints (upstreams or launched workers), balancing, capacity,
//!   health and the queue of waiting requests;
//! - [`mux`]: one connection shared by several requests, when the app allows it;
//! - [`send`]: the write side of one request, and what is kept to send it again;
//! - `exchange`: the read side of one request and its end (log line, connection back);
//! - `half`: a connection cut in two while a request is on it, joined again or aborted;
//! - [`job`]: one request's job, its meta-variables encoded as FCGI_PARAMS;
//! - [`in_flight`]: a mount's requests on their application now, for the status page;
//! - [`client`]: the backend: a pool per mount and the requests in flight.

pub mod authorizer;
pub mod client;
pub mod conn;
mod exchange;
mod half;
pub mod in_flight;
pub mod job;
pub mod mux;
pub mod params;
pub mod pool;
pub mod record;
pub mod send;
