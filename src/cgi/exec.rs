//! Starting a program the way glibc's posix_spawn does (a `clone` that shares the parent's
//! memory and suspends the calling thread until `execve`), without its per-call costs.
//!
//! Why not `std::process::Command`: measured under load, a CGI request spent about a
//! fifth of Portico's own CPU time in it: an environment map rebuilt per call, the
//! `/dev/null` open, and glibc mapping and unmapping a fresh child stack for every spawn
//! (each unmap in a multi-threaded process is a TLB shoot-down on the other CPUs). Here
//! the environment arrives ready-made, `/dev/null` is opened once and every thread keeps
//! one child stack for good: the thread is suspended while the child uses it.
//!
//! The child runs on that stack in Portico's memory until `execve`, so it only makes
//! system calls: no allocation, no locks, no unwinding.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// What the child needs, prepared by the parent before the clone.
pub struct Plan<'a> {
    pub program: &'a CStr,
    /// NULL-terminated.
    pub argv: &'a [*const c_char],
    /// NULL-terminated.
    pub envp: &'a [*const c_char],
    pub cwd: &'a CStr,
    /// Become fds 0, 1 and 2 of the child; each must be 3 or above.
    pub stdio: [RawFd; 3],
    /// `Some(limit)`: the child shares Portico's fd table and keeps a private copy of only
    /// the fds below `limit` (see `stdio_slots`), where `stdio` must lie. `None`: the
    /// child gets a copy of the whole table.
    pub share_fds_below: Option<RawFd>,
    /// Set in the child before `execve`.
    pub rlimits: &'a [Rlimit],
}

/// One resource limit for a child (`setrlimit`).
#[derive(Debug, Clone, Copy)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// The type `setrlimit` takes its resource as.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub type Resource = libc::c_int;

/// Shared with the child through the common memory; `error` is its way back.
#[repr(C)]
struct ChildArgs {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdio: [RawFd; 3],
    /// Below zero: copy the whole table.
    share_fds_below: RawFd,
    rlimits: *const Rlimit,
    rlimit_count: usize,
    /// Bit `n` set: signal `n` must be reset to its default action.
    reset_signals: u64,
    error: c_int,
    /// The kernel could not unshare part of the table.
    unshare_failed: bool,
}

const STACK_WORDS: usize = 64 * 1024 / 16;

thread_local! {
    /// One child stack per thread, reused: the thread sleeps while its child runs on it.
    /// `u128` keeps it 16-byte aligned as the x86-64 and AArch64 ABIs want.
    static CHILD_STACK: RefCell<Box<[u128]>> = RefCell::new(vec![0; STACK_WORDS].into_boxed_slice());
}

/// Starts `plan.program` in a new process group; returns once it has called `execve`.
pub fn spawn(plan: &Plan<'_>) -> io::Result<libc::pid_t> {
    debug_assert_eq!(plan.argv.last(), Some(&std::ptr::null()));
    debug_assert_eq!(plan.envp.last(), Some(&std::ptr::null()));
    debug_assert!(plan.stdio.iter().all(|&fd| fd > 2));
    let mut args = ChildArgs {
        program: plan.program.as_ptr(),
        argv: plan.argv.as_ptr(),
        envp: plan.envp.as_ptr(),
        cwd: plan.cwd.as_ptr(),
        stdio: plan.stdio,
        share_fds_below: plan.share_fds_below.unwrap_or(-1),
        rlimits: plan.rlimits.as_ptr(),
        rlimit_count: plan.rlimits.len(),
        reset_signals: *SIGNALS_TO_RESET.get_or_init(signals_to_reset),
        error: 0,
        unshare_failed: false,
    };
    let share = if plan.share_fds_below.is_some() {
        libc::CLONE_FILES
    } else {
        0
    };
    // Signals stay blocked until the child has reset every handler: a handler running in
    // the child would run on Portico's memory. SIGCHLD is left unblocked while it has no
    // handler (tokio installs one once the launcher has started a worker): scripts end all
    // the time, and one ending while this thread blocks SIGCHLD would have the kernel queue
    // it and wake another thread of Portico to discard it.
    let sigchld_handled = has_handler(libc::SIGCHLD);
    if sigchld_handled {
        args.reset_signals |= 1 << (libc::SIGCHLD - 1);
    }
    // SAFETY: plain sigset_t manipulation on local values.
    let mut blocked: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut blocked);
        if !sigchld_handled {
            libc::sigdelset(&mut blocked, libc::SIGCHLD);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &blocked, &mut old);
    }
    let result = CHILD_STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        // SAFETY: one past the end of the thread's own stack buffer; stacks grow down.
        let top = unsafe { stack.as_mut_ptr().add(stack.len()) }.cast::<c_void>();
        // SAFETY: CLONE_VFORK suspends this thread until the child calls execve or exits,
        // so the stack and `args` outlive every use the child makes of them.
        let pid = unsafe {
            libc::clone(
                child_main,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | share | libc::SIGCHLD,
                (&raw mut args).cast::<c_void>(),
            )
        };
        if pid < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(pid)
        }
    });
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    let pid = result?;
    if args.error != 0 {
        let mut status = 0;
        // SAFETY: the child has exited (it reported an error); reap it.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
        }
        if args.unshare_failed {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "close_range(CLOSE_RANGE_UNSHARE) failed",
            ));
        }
        return Err(io::Error::from_raw_os_error(args.error));
    }
    Ok(pid)
}

/// The child, until `execve`: own fd table, signals, process group, resource limits,
/// stdio, working directory, exec.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ChildArgs, alive while the parent is suspended.
    let args = unsafe { &mut *arg.cast::<ChildArgs>() };
    // SAFETY: only system-call wrappers below, on data the parent prepared.
    unsafe {
        // First of all: until this succeeds, any change to an fd would be Portico's too.
        if args.share_fds_below >= 0
            && libc::syscall(
                libc::SYS_close_range,
                args.share_fds_below as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_UNSHARE,
            ) != 0
        {
            args.unshare_failed = true;
            return fail(args);
        }
        for sig in 1..=64 {
            if args.reset_signals & (1 << (sig - 1)) != 0 {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(args);
        }
        for limit in std::slice::from_raw_parts(args.rlimits, args.rlimit_count) {
            let value = libc::rlimit {
                rlim_cur: limit.soft as libc::rlim_t,
                rlim_max: limit.hard as libc::rlim_t,
            };
            if libc::setrlimit(limit.resource, &value) != 0 {
                return fail(args);
            }
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            if libc::dup2(fd, target as c_int) < 0 {
                return fail(args);
            }
        }
        if libc::chdir(args.cwd) != 0 {
            return fail(args);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(args.program, args.argv, args.envp);
        fail(args)
    }
}

/// Marks every fd from 3 up close-on-exec, so that none Portico inherited from whoever
/// started it reaches a script (fds Portico opens itself are close-on-exec already).
/// Called once at start-up; Portico can still use them itself.
pub fn keep_inherited_fds_from_scripts() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on open fds.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

static SIGNALS_TO_RESET: OnceLock<u64> = OnceLock::new();

/// The signals a child must reset before it unblocks signals: those with a handler in
/// Portico (the handler would run on Portico's memory), and SIGPIPE, which Rust's runtime
/// ignores and a script must see with its default action. Ignored signals otherwise stay
/// ignored across `execve`, as with posix_spawn. Read once, at the first spawn: Portico
/// installs its handlers (SIGTERM, SIGINT, SIGHUP) before it serves; SIGCHLD, whose handler
/// may come later, is looked at on every spawn. glibc's posix_spawn asks the kernel about
/// all 64 signals in every child instead.
fn signals_to_reset() -> u64 {
    (1..=64)
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter(|&sig| sig == libc::SIGPIPE || has_handler(sig))
        .fold(0, |mask, sig| mask | 1 << (sig - 1))
}

fn has_handler(sig: c_int) -> bool {
    // SAFETY: a query only; `action` is plain data.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut action) } != 0 {
        return false;
    }
    action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN
}

/// Reports errno to the parent and exits without running any of Portico's exit code.
unsafe fn fail(args: &mut ChildArgs) -> c_int {
    // SAFETY: errno is readable right after the failed call; `_exit` never returns.
    unsafe {
        args.error = (*libc::__errno_location()).max(1);
        libc::_exit(127)
    }
}
