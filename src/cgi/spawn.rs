//! Starting a script and owning its process: command, cleared environment, own process
//! group, pipes, deadline kills of the whole group, and reaping with the child's rusage.
//!
//! Children are waited for with `waitid(WNOWAIT)` and, when they have not exited yet, a
//! pidfd, instead of tokio's SIGCHLD-driven `Child`: `wait4` is what reports CPU time and
//! peak memory, and waiting with the leader still a zombie keeps its pid (the group id)
//! from being reused while the group is signalled. Most scripts have exited by the time
//! their stdout closes, so the pidfd is only opened for the others.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};

/// What the script reads on stdin.
pub enum Input {
    /// No body: stdin is /dev/null.
    None,
    /// The body is written to a pipe while the script runs.
    Pipe,
    /// A spooled body: the file itself becomes stdin.
    File(std::fs::File),
}

/// How a script ended, from `wait4`.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub status: ExitStatus,
    /// User plus system CPU time of the script and the children it waited for.
    pub cpu: Duration,
    pub max_rss_kb: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn is_success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "{code}"),
            ExitStatus::Signal(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// A running script. Its owner must end it with `reap` or `terminate`; dropping it
/// unreaped kills the group and reaps it in the background.
pub struct Process {
    pid: libc::pid_t,
    pidfd: Option<AsyncFd<OwnedFd>>,
    reaped: bool,
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    pub stderr: Option<ChildStderr>,
}

impl Process {
    /// Starts `argv` in `cwd` with exactly `env`, in a process group of its own.
    ///
    /// `argv[0]` is an absolute path, so std can use posix_spawn (a vfork-style clone):
    /// that is what keeps the per-request cost of CGI close to the kernel's.
    pub fn spawn<'a>(
        argv: &[&std::ffi::OsStr],
        env: impl IntoIterator<Item = (&'a std::ffi::OsStr, &'a std::ffi::OsStr)>,
        cwd: &Path,
        input: Input,
    ) -> io::Result<Process> {
        let (program, args) = argv.split_first().ok_or(io::ErrorKind::InvalidInput)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(cwd)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.stdin(match input {
            Input::None => Stdio::null(),
            Input::Pipe => Stdio::piped(),
            Input::File(file) => Stdio::from(file),
        });
        let mut child = command.spawn()?;
        let pid = child.id() as libc::pid_t;
        let stdio = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // std's Child neither waits nor kills on drop; from here on `Process` owns the pid.
        drop(child);
        let (Some(stdout), Some(stderr)) = (stdio.1, stdio.2) else {
            unreachable!("stdout and stderr are piped above");
        };
        Ok(Process {
            pid,
            pidfd: None,
            reaped: false,
            stdin: stdio.0.map(ChildStdin::from_std).transpose()?,
            stdout: ChildStdout::from_std(stdout)?,
            stderr: Some(ChildStderr::from_std(stderr)?),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Resolves once the script (the group leader) has exited; it stays unreaped.
    pub async fn exited(&mut self) -> io::Result<()> {
        if self.has_exited()? {
            return Ok(());
        }
        let pidfd = match &mut self.pidfd {
            Some(fd) => fd,
            None => {
                let fd = pidfd_open(self.pid)?;
                // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open until dropped.
                let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                    .map_err(io::Error::from)?;
                self.pidfd.insert(fd)
            }
        };
        pidfd.readable().await?.retain_ready();
        Ok(())
    }

    fn has_exited(&self) -> io::Result<bool> {
        // SAFETY: siginfo_t is plain data that waitid fills in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: pid is our unreaped child; info points to valid memory.
        if unsafe { libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid filled `info`; si_pid stays 0 when the child has not exited.
        Ok(unsafe { info.si_pid() } != 0)
    }

    /// Reaps the exited leader; call after `exited`.
    pub fn reap(&mut self) -> io::Result<Exit> {
        let mut status = 0;
        // SAFETY: rusage is plain data that wait4 fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our unreaped child; status and usage point to valid memory.
        let got = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "script still running",
            ));
        }
        self.reaped = true;
        let status = if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        };
        let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
        Ok(Exit {
            status,
            cpu,
            max_rss_kb: usage.ru_maxrss,
        })
    }

    /// Ends the whole process group: SIGTERM, up to `grace` for the leader to exit, then
    /// SIGKILL for whatever is left of the group; then reaps the leader.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<Exit> {
        kill_group(self.pid, libc::SIGTERM);
        let _ = tokio::time::timeout(grace, self.exited()).await;
        // The unreaped leader holds the group id, so this cannot hit a stranger.
        kill_group(self.pid, libc::SIGKILL);
        self.exited().await?;
        self.reap()
    }

    /// Kills what is left of the group once the leader has exited (it is still a zombie),
    /// for children that kept the output pipes open.
    pub fn kill_stragglers(&self) {
        kill_group(self.pid, libc::SIGKILL);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        kill_group(self.pid, libc::SIGKILL);
        let pid = self.pid;
        // Reaping must not block a runtime thread; off the runtime, a killed child exits promptly.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || reap_blocking(pid));
            }
            Err(_) => reap_blocking(pid),
        }
    }
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    debug_assert!(fd.as_raw_fd() >= 0);
    Ok(fd)
}

fn kill_group(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill has no memory effects; a vanished group gives ESRCH, which is fine.
    unsafe {
        libc::kill(-pid, signal);
    }
}

fn reap_blocking(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: pid is our child; status is valid memory.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// The environment of one script: the base (PATH, env.pass, env.set), then meta-variables.
pub fn environment<'a>(
    base: &'a [(OsString, OsString)],
    meta: &'a [(String, OsString)],
) -> impl Iterator<Item = (&'a std::ffi::OsStr, &'a std::ffi::OsStr)> {
    base.iter()
        .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
        .chain(
            meta.iter()
                .map(|(k, v)| (std::ffi::OsStr::new(k.as_str()), v.as_os_str())),
        )
}
