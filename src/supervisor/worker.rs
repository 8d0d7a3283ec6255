//! One launched worker: its listening socket, its process and the task that owns the process.
//!
//! Each worker gets a socket of its own, passed as fd 0 (FCGI_LISTENSOCK_FILENO, FastCGI
//! spec §2.2), so Portico always knows which process serves a connection: requests are
//! counted per worker, a stuck one is killed by name, a draining one gets no new
//! connections. The socket outlives the process: connections queued in its backlog while a
//! crashed worker is replaced are served by the replacement.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use crate::children;
use crate::config::{LaunchSocket, Upstream};

/// Lines of a worker's stderr kept to explain its exit.
const STDERR_TAIL: usize = 5;

/// A listening socket Portico made for one worker.
pub struct Socket {
    fd: OwnedFd,
    pub address: Upstream,
    path: Option<PathBuf>,
}

impl Socket {
    pub fn bind(kind: LaunchSocket, dir: &Path, name: &str) -> std::io::Result<Socket> {
        match kind {
            LaunchSocket::Unix => {
                let path = dir.join(format!("{name}.sock"));
                let _ = std::fs::remove_file(&path);
                let listener = std::os::unix::net::UnixListener::bind(&path)?;
                Ok(Socket {
                    fd: listener.into(),
                    address: Upstream::Unix(path.clone()),
                    path: Some(path),
                })
            }
            LaunchSocket::Tcp => {
                let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
                let address = Upstream::Tcp(listener.local_addr()?.to_string());
                Ok(Socket {
                    fd: listener.into(),
                    address,
                    path: None,
                })
            }
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How a worker process ended.
pub struct Exit {
    pub slot: usize,
    pub pid: u32,
    pub status: std::io::Result<ExitStatus>,
}

/// A running worker process, owned by a task that reaps it and forwards signals to its
/// process group while it is certainly not reaped yet.
pub struct Process {
    pub pid: u32,
    signals: mpsc::UnboundedSender<i32>,
    pub stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Process {
    /// Starts `command` with `socket` as fd 0 in a process group of its own, killed if
    /// Portico dies (PR_SET_PDEATHSIG), its stdout and stderr going to the log.
    pub fn spawn(
        command: &[OsString],
        env: &[(OsString, OsString)],
        socket: &Socket,
        mount: &str,
        slot: usize,
        exits: mpsc::UnboundedSender<Exit>,
    ) -> std::io::Result<Process> {
        let program = Path::new(&command[0]);
        let mut cmd = std::process::Command::new(program);
        cmd.args(&command[1..])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(socket.fd.try_clone()?))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = program.parent() {
            cmd.current_dir(dir);
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Portico died before prctl: nobody will send the signal.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = tokio::process::Command::from(cmd).spawn()?;
        let pid = child.id().unwrap_or(0);
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(log_lines(out, mount.to_owned(), pid, "stdout", None));
        }
        if let Some(err) = child.stderr.take() {
            let tail = Some(stderr_tail.clone());
            tokio::spawn(log_lines(err, mount.to_owned(), pid, "stderr", tail));
        }
        let (signals, mut signal_rx) = mpsc::unbounded_channel::<i32>();
        let registration = children::register(
            pid as i32,
            children::Role::Worker {
                mount: mount.to_owned(),
            },
        );
        tokio::spawn(async move {
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    Some(signal) = signal_rx.recv() => {
                        // Not reaped yet, so the pid is still this worker's.
                        if let Ok(None) = child.try_wait() {
                            // SAFETY: plain kill(2) on the worker's own process group.
                            unsafe { libc::kill(-(pid as libc::pid_t), signal) };
                        }
                    }
                    else => break child.wait().await,
                }
            };
            drop(registration);
            let _ = exits.send(Exit { slot, pid, status });
        });
        Ok(Process {
            pid,
            signals,
            stderr_tail,
        })
    }

    pub fn signal(&self, signal: i32) {
        let _ = self.signals.send(signal);
    }

    /// Resident set size from /proc, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * page.max(4096) as u64)
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

async fn log_lines(
    stream: impl AsyncRead + Unpin,
    mount: String,
    pid: u32,
    stream_name: &'static str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!(target: "portico::worker", %mount, pid, stream = stream_name, "{line}");
        if let Some(tail) = &tail {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// "exit status 3" or "killed by signal 9".
pub fn describe(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => status.to_string(),
        },
        Err(error) => format!("wait failed: {error}"),
    }
}
