//! Accepting connections and serving them with hyper: HTTP/1.1 with keep-alive (and h2c),
//! bounds on header size and header read time, graceful shutdown, and closing each
//! connection without resetting its last response (`connection::Closer`). Takes listeners
//! that are already bound, so tests and `main` choose the addresses.
//!
//! [`Local`] is the same server inside another program (`portico bench`, `portico
//! explain`): on 127.0.0.1:0 in the caller's runtime, stopped by its handle.

mod listener;
mod local;
mod serve;

pub use listener::Listener;
pub use local::Local;
pub use serve::run;
