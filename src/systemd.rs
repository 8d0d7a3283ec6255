//! systemd: the sockets a socket unit hands over (`LISTEN_FDS`, sd_listen_fds(3)) and the
//! service's state told to the manager (`NOTIFY_SOCKET`, sd_notify(3)) for `Type=notify`:
//! READY=1 once serving, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 when
//! draining. Without systemd (neither variable set) all of it does nothing.
//!
//! The protocol is the `sd-notify` crate's; what the sockets and states mean here is ours.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A socket the manager handed over, and the name its unit gave it (`FileDescriptorName=`).
pub struct Inherited {
    pub fd: OwnedFd,
    pub name: String,
}

/// Takes the sockets passed by socket activation, if Portico was started that way, and
/// unsets the variables so that nothing Portico starts sees them.
///
/// # Safety
/// Changes the environment: call it before any other thread exists (before the runtime).
pub unsafe fn take_listen_fds() -> io::Result<Vec<Inherited>> {
    // SAFETY: the caller guarantees no other thread reads the environment meanwhile.
    let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env()? };
    Ok(fds
        .map(|(fd, name)| Inherited {
            // SAFETY: sd_listen_fds(3): these fds are ours from here on, open and unique.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            name,
        })
        .collect())
}

/// What to tell the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ready,
    Reloading,
    Stopping,
}

/// Tells the manager, if there is one; a failure is logged, never fatal.
pub fn notify(state: State) {
    let result = match state {
        State::Ready => sd_notify::notify(&[sd_notify::NotifyState::Ready]),
        // `Type=notify-reload` needs the time of the reload beside RELOADING=1.
        State::Reloading => sd_notify::NotifyState::monotonic_usec_now()
            .and_then(|now| sd_notify::notify(&[sd_notify::NotifyState::Reloading, now])),
        State::Stopping => sd_notify::notify(&[sd_notify::NotifyState::Stopping]),
    };
    if let Err(error) = result {
        tracing::warn!(%error, ?state, "could not notify the service manager");
    }
}
