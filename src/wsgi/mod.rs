//! WSGI (PEP 3333) in Portico: a Python callable `application(environ, start_response)`
//! served by persistent Python workers that Portico launches and supervises as a FastCGI
//! application. Every worker runs the adapter built into the binary, `portico_wsgi.py`, a
//! FastCGI responder in the standard library alone: FCGI_PARAMS become the `environ`,
//! FCGI_STDIN streams as `wsgi.input`, `wsgi.errors` goes to Portico's log, and the
//! iterable streams back as FCGI_STDOUT, its `close()` called once per response.
//!
//! So a WSGI mount is a FastCGI mount whose command is `python portico_wsgi.py
//! module:callable [sys.path entries...]`: `mount` turns a `[[wsgi]]` table into one,
//! and from there `crate::fastcgi` and `crate::supervisor` serve it like any other. This
//! module owns the adapter and that translation; it does not speak FastCGI, run
//! processes or read the rest of the config.

pub mod environ;
pub(crate) mod mount;

/// The adapter as (file name, text), built into the binary and written next to the
/// workers' sockets.
pub const ADAPTER: (&str, &str) = ("portico_wsgi.py", include_str!("portico_wsgi.py"));
