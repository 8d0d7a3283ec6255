//! The pipes a script's stdio is made of. Portico's end is non-blocking, as tokio needs;
//! the child's stays blocking, as scripts expect of their stdio, and sits above fd 2 so
//! that placing it at 0, 1 or 2 cannot overwrite another. A script without a body reads
//! one `/dev/null`, opened once.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// Which end of a pipe Portico keeps.
pub enum Parent {
    Reads,
    Writes,
}

/// A pipe as (Portico's end, the child's end). Portico's end is non-blocking, as tokio
/// needs; the child's stays blocking, as scripts expect of their stdio.
pub fn pipe(parent: Parent) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are new and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (ours, theirs) = match parent {
        Parent::Reads => (read, write),
        Parent::Writes => (write, read),
    };
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one c_int; `ours` is open.
    if unsafe { libc::ioctl(ours.as_raw_fd(), libc::FIONBIO, &on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ours, above_stdio(theirs)?))
}

/// Moves an fd to 3 or above, so that making it the child's fd 0, 1 or 2 cannot overwrite
/// another one (possible only when Portico itself runs with a standard fd closed).
pub fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd >= 3 or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `/dev/null`, opened once: the stdin of every script that gets no body.
pub fn dev_null() -> io::Result<&'static OwnedFd> {
    static DEV_NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd);
    }
    let fd = above_stdio(std::fs::File::open("/dev/null")?.into())?;
    // A thread that loses the race drops its own fd.
    Ok(DEV_NULL.get_or_init(|| fd))
}
