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
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::env::{CStrings, c_string};
use super::pipes::{self, Parent};
use super::{exec, stdio_slots};
use crate::children;
use crate::config::Limits;

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
    /// Its entry in `children`, kept until it is reaped.
    registration: Option<children::Registration>,
    pub stdin: Option<pipe::Sender>,
    pub stdout: pipe::Receiver,
    pub stderr: Option<pipe::Receiver>,
}

impl Process {
    /// Starts `argv` in `cwd` with exactly `env`, in a process group of its own, under
    /// `rlimits`. `argv[0]` is an absolute path: no PATH search happens here.
    pub fn spawn(
        argv: &[OsString],
        env: &CStrings,
        cwd: &Path,
        input: Input,
        rlimits: &[exec::Rlimit],
    ) -> io::Result<Process> {
        let mut args = CStrings::with_capacity(argv.len(), 0);
        for arg in argv {
            args.push(&[arg.as_bytes()])?;
        }
        let program = args.first().ok_or(io::ErrorKind::InvalidInput)?;
        let cwd = c_string(cwd.as_os_str().as_bytes())?;
        let argv_ptrs = args.pointers();
        let env_ptrs = env.pointers();

        let (stdout_read, stdout_write) = pipes::pipe(Parent::Reads)?;
        let (stderr_read, stderr_write) = pipes::pipe(Parent::Reads)?;
        // `child_stdin` keeps an fd of the child's open until the spawn; /dev/null needs none.
        let (stdin_fd, child_stdin, parent_stdin) = match input {
            Input::None => (pipes::dev_null()?.as_raw_fd(), None, None),
            Input::Pipe => {
                let (write, read) = pipes::pipe(Parent::Writes)?;
                (read.as_raw_fd(), Some(read), Some(write))
            }
            Input::File(file) => {
                let fd = pipes::above_stdio(file.into())?;
                (fd.as_raw_fd(), Some(fd), None)
            }
        };
        let stdio = [stdin_fd, stdout_write.as_raw_fd(), stderr_write.as_raw_fd()];
        let plan = exec::Plan {
            program,
            argv: &argv_ptrs,
            envp: &env_ptrs,
            cwd: &cwd,
            stdio,
            share_fds_below: None,
            rlimits,
        };
        let pid = match stdio_slots::acquire() {
            Some(mut slot) => {
                let stdin = child_stdin.is_some().then_some(stdin_fd);
                let shared = exec::Plan {
                    stdio: slot.place([stdin, Some(stdio[1]), Some(stdio[2])])?,
                    share_fds_below: Some(slot.limit()),
                    ..plan
                };
                match exec::spawn(&shared) {
                    Err(error) if error.kind() == io::ErrorKind::Unsupported => {
                        stdio_slots::unusable();
                        drop(slot);
                        exec::spawn(&plan)
                    }
                    spawned => spawned,
                }
            }
            None => exec::spawn(&plan),
        }?;
        // The child's ends close here, so EOF on stdout means the script (and its
        // children) closed theirs.
        drop((child_stdin, stdout_write, stderr_write));
        Ok(Process {
            pid,
            pidfd: None,
            reaped: false,
            registration: None,
            stdin: parent_stdin
                .map(pipe::Sender::from_owned_fd_unchecked)
                .transpose()?,
            stdout: pipe::Receiver::from_owned_fd_unchecked(stdout_read)?,
            stderr: Some(pipe::Receiver::from_owned_fd_unchecked(stderr_read)?),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Enters the script in `children` until it is reaped, as doing `role`.
    pub fn register(&mut self, role: children::Role) {
        self.registration = Some(children::register(self.pid, role));
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
        Ok(self.peek_exit()?.is_some())
    }

    /// How the leader ended, if it has, leaving it unreaped (waitid's WNOWAIT): while it
    /// is, its pid cannot be reused, so its group may still be signalled safely.
    pub fn peek_exit(&self) -> io::Result<Option<ExitStatus>> {
        // SAFETY: siginfo_t is plain data that waitid fills in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: pid is our unreaped child; info points to valid memory.
        if unsafe { libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid filled `info`; si_pid stays 0 when the child has not exited.
        if unsafe { info.si_pid() } == 0 {
            return Ok(None);
        }
        // SAFETY: for a child that exited, si_status is its exit code or its signal.
        let status = unsafe { info.si_status() };
        Ok(Some(match info.si_code {
            libc::CLD_KILLED | libc::CLD_DUMPED => ExitStatus::Signal(status),
            _ => ExitStatus::Code(status),
        }))
    }

    /// Whether the leader has begun to exit (PF_EXITING in /proc/PID/stat's flags) but is
    /// not a zombie yet: its files are closed first, so its stdout can end before it does.
    pub fn is_exiting(&self) -> bool {
        const PF_EXITING: u64 = 0x4;
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        // Fields after the command name (which may hold spaces): state is the first, flags
        // the seventh (field 9 of proc(5)).
        let flags = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_ascii_whitespace().nth(6))
            .and_then(|flags| flags.parse::<u64>().ok());
        flags.is_some_and(|flags| flags & PF_EXITING != 0)
    }

    /// Reaps the exited leader; call after `exited`.
    pub fn reap(&mut self) -> io::Result<Exit> {
        self.try_reap()?
            .ok_or_else(|| io::Error::new(io::ErrorKind::WouldBlock, "script still running"))
    }

    /// Reaps the leader if it has exited. Once reaped, its pid may be reused, so this is
    /// only for a script whose group will not be signalled any more.
    pub fn try_reap(&mut self) -> io::Result<Option<Exit>> {
        let mut status = 0;
        // SAFETY: rusage is plain data that wait4 fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our unreaped child; status and usage point to valid memory.
        let got = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        if got == 0 {
            return Ok(None);
        }
        self.reaped = true;
        self.registration = None;
        let status = if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        };
        let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
        Ok(Some(Exit {
            status,
            cpu,
            max_rss_kb: usage.ru_maxrss,
        }))
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

/// The resource limits every script starts under (`limits.script_*`).
pub fn script_rlimits(limits: &Limits) -> Vec<exec::Rlimit> {
    let cpu = limits.script_cpu_seconds.map(|seconds| exec::Rlimit {
        resource: libc::RLIMIT_CPU,
        // SIGXCPU at the soft limit lets a script notice; the kernel sends SIGKILL at the
        // hard one.
        soft: seconds,
        hard: seconds.saturating_add(1),
    });
    let memory = limits.script_memory_bytes.map(|bytes| exec::Rlimit {
        resource: libc::RLIMIT_AS,
        soft: bytes,
        hard: bytes,
    });
    // A script past it gets SIGXFSZ: one file cannot fill the disk (`misbehaving` tests).
    let file_size = limits.script_file_size_bytes.map(|bytes| exec::Rlimit {
        resource: libc::RLIMIT_FSIZE,
        soft: bytes,
        hard: bytes,
    });
    cpu.into_iter().chain(memory).chain(file_size).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgi::env::BaseEnv;
    use tokio::io::AsyncReadExt;

    fn sh(script: &str) -> Vec<OsString> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    async fn run(argv: &[OsString], env: &CStrings, cwd: &Path) -> (String, Exit) {
        let mut process = Process::spawn(argv, env, cwd, Input::None, &[]).unwrap();
        let mut out = String::new();
        process.stdout.read_to_string(&mut out).await.unwrap();
        process.exited().await.unwrap();
        (out, process.reap().unwrap())
    }

    #[tokio::test]
    async fn child_gets_exactly_its_environment_cwd_and_own_group() {
        let base = BaseEnv::new(&[
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("A".into(), "base".into()),
        ])
        .unwrap();
        let env = base
            .with_meta(&[("A".into(), "meta".into()), ("B".into(), "2".into())])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        let script = "echo A=$A B=$B; pwd; env | wc -l; [ $(ps -o pgid= -p $$) -eq $$ ] && echo leader; exit 3";
        let (out, exit) = run(&sh(script), &env, &cwd).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "A=meta B=2");
        assert_eq!(lines[1], cwd.to_str().unwrap());
        // PATH, A, B, plus what sh itself exports (PWD, maybe SHLVL).
        assert!(lines[2].trim().parse::<u32>().unwrap() <= 5, "{out}");
        assert_eq!(lines.get(3), Some(&"leader"), "{out}");
        assert_eq!(exit.status, ExitStatus::Code(3));
    }

    #[tokio::test]
    async fn child_gets_its_stdio_and_no_other_fd() {
        // The test runner may have inherited fds of its own, as Portico may.
        exec::keep_inherited_fds_from_scripts().unwrap();
        let argv = ["/bin/ls".into(), "-l".into(), "/proc/self/fd".into()];
        let (out, exit) = run(&argv, &CStrings::default(), Path::new("/")).await;
        assert!(exit.status.is_success());
        let fds: Vec<(&str, &str)> = out
            .lines()
            .filter_map(|line| line.split_once(" -> "))
            .map(|(left, target)| (left.rsplit(' ').next().unwrap(), target))
            // ls's own handle on the directory it lists.
            .filter(|(_, target)| !target.starts_with("/proc/"))
            .collect();
        assert_eq!(fds.len(), 3, "{out}");
        assert_eq!(fds[0], ("0", "/dev/null"));
        assert_eq!(fds[1].0, "1");
        assert_eq!(fds[2].0, "2");
        assert!(fds[1].1.starts_with("pipe:") && fds[2].1.starts_with("pipe:"));
        assert_ne!(fds[1].1, fds[2].1);
    }

    #[tokio::test]
    async fn a_running_script_is_not_exiting_and_a_zombie_has_exited() {
        let env = BaseEnv::new(&[]).unwrap().with_meta(&[]).unwrap();
        let mut process =
            Process::spawn(&sh("sleep 0.3"), &env, Path::new("/"), Input::None, &[]).unwrap();
        assert!(!process.is_exiting());
        process.exited().await.unwrap();
        // A zombie is past exiting: its status is there to be read.
        assert!(process.peek_exit().unwrap().is_some());
        process.reap().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn spawning_leaves_the_threads_signal_mask_as_it_was() {
        fn blocked() -> Vec<i32> {
            // SAFETY: a query of this thread's mask into a local sigset_t.
            let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
            (1..=64)
                .filter(|&sig| unsafe { libc::sigismember(&mask, sig) } == 1)
                .collect()
        }
        let before = blocked();
        let (_, exit) = run(&sh("exit 0"), &CStrings::default(), Path::new("/")).await;
        assert!(exit.status.is_success());
        assert_eq!(blocked(), before);
    }

    #[tokio::test]
    async fn sigpipe_has_its_default_action_in_the_child() {
        // Rust ignores SIGPIPE in Portico; a script writing to a closed pipe must die of it.
        let (_, exit) = run(
            &sh("kill -PIPE $$; echo survived"),
            &CStrings::default(),
            Path::new("/"),
        )
        .await;
        assert_eq!(exit.status, ExitStatus::Signal(libc::SIGPIPE));
    }

    #[tokio::test]
    async fn child_starts_under_the_configured_resource_limits() {
        let limits = Limits {
            script_cpu_seconds: Some(7),
            script_memory_bytes: Some(512 << 20),
            ..Limits::default()
        };
        let mut process = Process::spawn(
            &sh("ulimit -St; ulimit -Ht; ulimit -Sv; ulimit -Hv"),
            &CStrings::default(),
            Path::new("/"),
            Input::None,
            &script_rlimits(&limits),
        )
        .unwrap();
        let mut out = String::new();
        process.stdout.read_to_string(&mut out).await.unwrap();
        process.exited().await.unwrap();
        process.reap().unwrap();
        // dash prints seconds and KiB.
        assert_eq!(out, "7\n8\n524288\n524288\n");
        assert!(script_rlimits(&Limits::default()).is_empty());
    }

    #[tokio::test]
    async fn exec_failure_is_reported_as_an_error() {
        let err = Process::spawn(
            &["/nonexistent/script".into()],
            &CStrings::default(),
            Path::new("/"),
            Input::None,
            &[],
        )
        .err()
        .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = Process::spawn(
            &sh("true"),
            &CStrings::default(),
            Path::new("/nonexistent"),
            Input::None,
            &[],
        )
        .err()
        .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn terminate_ends_the_whole_group() {
        let mut process = Process::spawn(
            &sh("sleep 100 & sleep 100"),
            &CStrings::default(),
            Path::new("/"),
            Input::None,
            &[],
        )
        .unwrap();
        let pgid = process.pid() as libc::pid_t;
        let exit = process.terminate(Duration::from_millis(200)).await.unwrap();
        assert_eq!(exit.status, ExitStatus::Signal(libc::SIGTERM));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            live_members(pgid),
            Vec::<String>::new(),
            "the background sleep survived"
        );
    }

    #[tokio::test]
    async fn an_exit_seen_early_leaves_the_leader_unreaped_so_its_group_can_be_ended() {
        for (script, status) in [
            (
                "sleep 100 </dev/null >/dev/null 2>&1 & exit 3",
                ExitStatus::Code(3),
            ),
            (
                "sleep 100 </dev/null >/dev/null 2>&1 & kill -9 $$",
                ExitStatus::Signal(libc::SIGKILL),
            ),
        ] {
            let mut process = Process::spawn(
                &sh(script),
                &CStrings::default(),
                Path::new("/"),
                Input::None,
                &[],
            )
            .unwrap();
            let pgid = process.pid() as libc::pid_t;
            process.exited().await.unwrap();
            assert_eq!(process.peek_exit().unwrap(), Some(status), "{script}");
            assert_eq!(process.peek_exit().unwrap(), Some(status), "still unreaped");
            assert_eq!(
                live_members(pgid).len(),
                1,
                "{script}: the background sleep"
            );
            let exit = process.terminate(Duration::from_millis(200)).await.unwrap();
            assert_eq!(exit.status, status, "{script}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(live_members(pgid), Vec::<String>::new(), "{script}");
        }
    }

    /// Processes of the group that are not zombies (an orphan's zombie waits for init).
    fn live_members(pgid: libc::pid_t) -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(") ")
                    .map_or(vec![], |(_, rest)| rest.split(' ').collect());
                fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .collect()
    }
}
