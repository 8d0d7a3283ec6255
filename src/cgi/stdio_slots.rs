//! Low fd numbers reserved for handing a script its stdin, stdout and stderr, so that the
//! child need not copy Portico's whole fd table.
//!
//! A plain `clone` copies every open fd of Portico (each client socket, each other
//! script's pipes) into the child, and the child's `execve` closes them all again: under
//! load that was the part of a spawn that grew with the number of connections (with 1,000
//! fds open, starting and reaping `/bin/true` took about 100 µs longer; `cargo bench
//! --bench spawn` compares both ways). A child
//! started with `CLONE_FILES` shares the table instead, and `close_range(limit, ~0,
//! CLOSE_RANGE_UNSHARE)` gives it a private copy of only the fds below `limit`. So the
//! three fds a child needs are first placed in a slot below that limit. Between spawns a
//! slot holds `/dev/null`, which keeps its numbers from being handed out to anything else
//! and is already the stdin of a script that gets no body.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Slots a machine can use at once; past that, a spawn copies the whole table.
const MAX_SLOTS: usize = 64;

struct Slots {
    /// Three fds per slot, all below `limit`.
    fds: Vec<[RawFd; 3]>,
    limit: RawFd,
    /// Bit `n` set: slot `n` is free.
    free: AtomicU64,
    /// Cleared when the kernel cannot unshare part of a table (before Linux 5.9).
    usable: AtomicBool,
    placeholder: OwnedFd,
}

/// One slot, held for one spawn; dropping it puts the placeholders back.
pub struct Slot {
    index: usize,
    /// Bit `n` set: fd `n` of the slot was pointed away from `/dev/null`.
    placed: u8,
}

static SLOTS: OnceLock<io::Result<Slots>> = OnceLock::new();

/// Reserves `count` slots (at most 64). Best called before Portico opens anything else,
/// so that the slots, and with them the part of the table a child copies, stay small.
/// Later calls change nothing.
pub fn reserve(count: usize) {
    let slots = SLOTS.get_or_init(|| Slots::reserve(count.clamp(1, MAX_SLOTS)));
    if let Err(error) = slots {
        tracing::warn!(%error, "cannot reserve fds for scripts' stdio; each spawn copies the fd table");
    }
}

fn slots() -> Option<&'static Slots> {
    SLOTS
        .get_or_init(|| Slots::reserve(4))
        .as_ref()
        .ok()
        .filter(|slots| slots.usable.load(Ordering::Relaxed))
}

/// A free slot, or `None` when all are in use (or unusable on this kernel).
pub fn acquire() -> Option<Slot> {
    let slots = slots()?;
    let mut free = slots.free.load(Ordering::Acquire);
    loop {
        if free == 0 {
            return None;
        }
        let index = free.trailing_zeros() as usize;
        match slots.free.compare_exchange_weak(
            free,
            free & !(1 << index),
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => return Some(Slot { index, placed: 0 }),
            Err(now) => free = now,
        }
    }
}

/// Called when a child could not unshare its table: every later spawn copies it.
pub fn unusable() {
    if let Some(Ok(slots)) = SLOTS.get() {
        slots.usable.store(false, Ordering::Relaxed);
    }
}

impl Slots {
    fn reserve(count: usize) -> io::Result<Slots> {
        let placeholder: OwnedFd = std::fs::File::open("/dev/null")?.into();
        let mut taken = Vec::with_capacity(count * 3);
        for _ in 0..count * 3 {
            // The lowest free numbers from 3 up: fds Portico inherited keep theirs.
            taken.push(dup_from(&placeholder, 3)?);
        }
        let limit = taken.iter().map(|fd| fd.as_raw_fd()).max().unwrap_or(2) + 1;
        let fds = taken
            .chunks(3)
            .map(|three| {
                [
                    three[0].as_raw_fd(),
                    three[1].as_raw_fd(),
                    three[2].as_raw_fd(),
                ]
            })
            .collect();
        // The numbers stay reserved for good; `Slot` replaces what they refer to.
        taken.into_iter().for_each(std::mem::forget);
        Ok(Slots {
            fds,
            limit,
            free: AtomicU64::new(if count == 64 {
                u64::MAX
            } else {
                (1 << count) - 1
            }),
            usable: AtomicBool::new(true),
            placeholder,
        })
    }
}

impl Slot {
    fn slots(&self) -> &'static Slots {
        // A slot exists only once `SLOTS` holds reserved slots.
        match SLOTS.get() {
            Some(Ok(slots)) => slots,
            _ => unreachable!("a slot outlived its table"),
        }
    }

    /// The fd a child keeps a private copy of everything below.
    pub fn limit(&self) -> RawFd {
        self.slots().limit
    }

    /// Points the slot's fds at `stdio` and returns their numbers; `None` leaves that
    /// one at `/dev/null`. The caller may close its own fds afterwards: the slot holds
    /// the files until it is dropped.
    pub fn place(&mut self, stdio: [Option<RawFd>; 3]) -> io::Result<[RawFd; 3]> {
        let fds = self.slots().fds[self.index];
        for (i, (&from, &to)) in stdio.iter().zip(&fds).enumerate() {
            if let Some(from) = from {
                dup_onto(from, to)?;
                self.placed |= 1 << i;
            }
        }
        Ok(fds)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slots = self.slots();
        for (i, &fd) in slots.fds[self.index].iter().enumerate() {
            if self.placed & (1 << i) != 0 {
                // Cannot fail: both fds are open and `fd` is below the fd limit.
                let _ = dup_onto(slots.placeholder.as_raw_fd(), fd);
            }
        }
        slots.free.fetch_or(1 << self.index, Ordering::Release);
    }
}

fn dup_from(fd: &OwnedFd, lowest: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd >= `lowest` or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, lowest) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is new and owned by nobody else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(new) })
}

/// Makes `to` refer to what `from` refers to, close-on-exec, in one atomic step.
fn dup_onto(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup3 only changes the fd table; `to` is a reserved slot fd.
    if unsafe { libc::dup3(from, to, libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn inode(fd: RawFd) -> (u64, u64) {
        // SAFETY: fstat fills plain data for an open fd.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(fd, &mut stat) }, 0);
        (stat.st_dev, stat.st_ino)
    }

    /// Other tests spawn scripts at the same time and hold slots for a moment.
    fn acquire_soon() -> Slot {
        for _ in 0..1000 {
            if let Some(slot) = acquire() {
                return slot;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("no slot came free");
    }

    #[test]
    fn a_slot_holds_what_it_was_given_until_dropped_then_dev_null() {
        reserve(4);
        let null = inode(std::fs::File::open("/dev/null").unwrap().as_raw_fd());
        let file = tempfile::tempfile().unwrap();
        let mut slot = acquire_soon();
        let fds = slot.place([None, Some(file.as_raw_fd()), None]).unwrap();
        assert!(fds.iter().all(|&fd| fd > 2 && fd < slot.limit()));
        assert_eq!(inode(fds[0]), null);
        assert_eq!(inode(fds[1]), inode(file.as_raw_fd()));
        assert_eq!(inode(fds[2]), null);
        // SAFETY: F_GETFD on an open fd.
        assert_eq!(
            unsafe { libc::fcntl(fds[1], libc::F_GETFD) },
            libc::FD_CLOEXEC
        );
        drop(slot);
        assert_eq!(inode(fds[1]), null);
    }
}
