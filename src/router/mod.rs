//! URL path -> the script that answers it. The only place that turns URL paths into
//! file-system paths: percent-decoding, dot segments, NUL bytes and symlinks that leave
//! the mounted directory are decided here and nowhere else.
//!
//! - `mount`: which mount claims a raw path, and its authentication;
//! - `decode`: percent-decoding a segment and PATH_INFO, and what they may not hold;
//! - `cgi`: a CGI mount's walk to its script, SCRIPT_NAME and PATH_INFO (RFC 3875 §4.1.13,
//!   §4.1.5): [`Match`], [`resolve`];
//! - `fastcgi`: a FastCGI mount's split: [`FastcgiMatch`], [`resolve_fastcgi`];
//! - `suexec`: the ownership and permission checks of a `suexec = true` mount.
//!
//! The router knows no backend: it names files and splits paths, nothing more.

mod cgi;
mod decode;
mod fastcgi;
mod mount;
mod suexec;

pub use cgi::{Match, resolve};
pub use fastcgi::{FastcgiMatch, resolve_fastcgi};
pub use mount::{auth_for, authorizer_for};
