//! Persistent CGI: unmodified Perl and Python CGI scripts kept warm, the step between
//! CGI and FastCGI. A `[[cgi]]` mount's `persistent` table names scripts by file name
//! (`config::persistent`); each such script is sent as a FastCGI request, with exactly the
//! meta-variables plain CGI would put in its environment, to a launched worker running
//! the runner of its language. The runner compiles the script once per worker (again
//! when its file changes) and runs it per request with the environment, stdin and stdout
//! a CGI process would have, as Apache's `ModPerl::Registry` does for Perl. Its stdout is
//! a CGI response, parsed by the same head parser as a script's or an app's.
//!
//! This module owns the runners Portico ships (`PERL_RUNNER`, `PYTHON_RUNNER`), the one
//! field by which a runner declines a script (`DECLINED`), and the scripts that run as
//! plain CGI after a runner could not host them (`marks`). Choosing the runner and falling
//! back is the gateway's (`gateway::persistent`); the runners' pools and workers are
//! `fastcgi`'s and `supervisor`'s like any launched app's.

pub mod marks;

pub use marks::Marks;

/// The Perl runner as (file name, text), built into the binary and written to its
/// workers' private directory: FCGI and CGI::Compile.
pub const PERL_RUNNER: (&str, &str) = ("portico_cgi.pl", include_str!("portico_cgi.pl"));

/// The Python runner, the standard library only; it speaks FastCGI through the WSGI
/// adapter's code (`crate::wsgi::ADAPTER`), written beside it.
pub const PYTHON_RUNNER: (&str, &str) = ("portico_cgi.py", include_str!("portico_cgi.py"));

/// The response field by which a runner says it cannot host a script (it would not
/// compile there), with the reason as its value. Only a runner's answer is read for it,
/// and that answer never reaches a client: the script runs as plain CGI instead.
pub static DECLINED: http::HeaderName = http::HeaderName::from_static("portico-declined");
