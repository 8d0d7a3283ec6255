//! The test harness: runs the real `portico` binary and the directories it serves.
//!
//! It owns the Portico process (start on 127.0.0.1:0, drain and keep its log, signal it,
//! kill it on drop), the bookkeeping of its child processes (zombies, strays left behind
//! by a script), and throwaway fixture directories holding scripts. It does not speak
//! HTTP; that is `http.rs`.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, Connection, Request, Response};

/// The binary under test, built by cargo for this test target.
pub const PORTICO: &str = env!("CARGO_BIN_EXE_portico");

/// How long Portico may take to print its `listening on` lines.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a just-exited script may stay unreaped before it counts as a zombie.
const REAP_GRACE: Duration = Duration::from_secs(3);

/// A running `portico serve`, killed (SIGKILL) and waited for on drop.
///
/// Dropping it also asserts that Portico left no zombie children behind
/// (STYLE rule 6), unless the test is already failing.
pub struct Portico {
    child: Child,
    addrs: Vec<SocketAddr>,
    log: Arc<Mutex<String>>,
}

/// How to start Portico when `Portico::start` is not enough.
pub struct Launch {
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    default_listen: bool,
    listeners: usize,
    wrapper: Vec<OsString>,
}

impl Launch {
    pub fn arg(mut self, arg: impl Into<OsString>) -> Launch {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets a variable in Portico's own environment.
    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// Starts Portico through `argv` (a command that ends by exec'ing the rest of its
    /// arguments, so Portico keeps its pid), e.g. `unshare` to give it a mount of its own.
    pub fn wrapped(mut self, argv: &[&str]) -> Launch {
        self.wrapper = argv.iter().map(OsString::from).collect();
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Launch {
        self.current_dir = Some(dir.to_path_buf());
        self
    }

    /// Leaves out `--listen 127.0.0.1:0`, so the config file decides, and waits
    /// for this many `listening on` lines.
    pub fn listen_from_config(mut self, listeners: usize) -> Launch {
        self.default_listen = false;
        self.listeners = listeners;
        self
    }

    pub fn start(self) -> Portico {
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(PORTICO);
                command
            }
            None => Command::new(PORTICO),
        };
        command.arg("serve");
        if self.default_listen {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(&self.args)
            .env_remove("RUST_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so cleaning up after it never signals the test runner.
            .process_group(0);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PORTICO}: {e}"));

        let log = Arc::new(Mutex::new(String::new()));
        let (listening, addrs_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&log);
        // Drains stderr for Portico's whole life so it never blocks on a full pipe.
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                sink.lock().unwrap().push_str(&text);
                if let Some(addr) = listening_addr(&text) {
                    let _ = listening.send(addr);
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let mut addrs = Vec::new();
        while addrs.len() < self.listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            match addrs_rx.recv_timeout(left) {
                Ok(addr) => addrs.push(addr),
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    // Give the drain thread a moment to store the last lines.
                    thread::sleep(Duration::from_millis(100));
                    panic!(
                        "portico did not print {} `listening on` line(s) (exit: {status:?}); log:\n{}",
                        self.listeners,
                        log.lock().unwrap()
                    );
                }
            }
        }
        Portico { child, addrs, log }
    }
}

/// The address in a `listening on http://ADDR` line (text, or the message of a JSON line),
/// if this is one.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let line = strip_ansi(line);
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))?;
    let addr = rest.split(|c: char| c.is_whitespace() || c == '"').next()?;
    addr.trim_end_matches(['/', ',']).parse().ok()
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Portico {
    /// `portico serve --listen 127.0.0.1:0 ARGS...`, returned once it is listening.
    pub fn start(args: &[&str]) -> Portico {
        Portico::launch().args(args).start()
    }

    pub fn launch() -> Launch {
        Launch {
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
            default_listen: true,
            listeners: 1,
            wrapper: Vec::new(),
        }
    }

    /// The first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Portico's own peak resident memory so far (VmHWM), in KiB; its scripts not included.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("/proc/{}/status: {e}", self.pid()));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Everything Portico wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` and returns the log; panics with the log on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        if wait_until(timeout, || self.log().contains(needle)) {
            return self.log();
        }
        panic!(
            "portico's log has no {needle:?} after {timeout:?}; log:\n{}",
            self.log()
        );
    }

    /// The first log line containing every one of `needles`, waiting up to `timeout`.
    pub fn wait_for_log_line(&self, needles: &[&str], timeout: Duration) -> String {
        let find = || {
            self.log()
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_owned)
        };
        if wait_until(timeout, || find().is_some()) {
            return find().unwrap_or_default();
        }
        panic!(
            "portico's log has no line with all of {needles:?} after {timeout:?}; log:\n{}",
            self.log()
        );
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for Portico to exit by itself; panics with the log if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on portico") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "portico did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Direct children of Portico (its scripts), in any state.
    pub fn children(&self) -> Vec<ProcessStat> {
        processes()
            .into_iter()
            .filter(|p| p.ppid == self.pid())
            .collect()
    }

    /// Pids of Portico's children that exited and were never waited for.
    pub fn zombie_children(&self) -> Vec<i32> {
        self.children()
            .into_iter()
            .filter(|p| p.state == 'Z')
            .map(|p| p.pid)
            .collect()
    }

    /// Zombie children still unreaped after a grace period.
    ///
    /// A script that has just closed its stdout may still be exiting: it turns into a
    /// zombie a moment later and Portico reaps it a moment after that. So only zombies
    /// present both at the end of the grace period and a little later count.
    pub fn lingering_zombies(&self) -> Vec<i32> {
        if wait_until(REAP_GRACE, || self.zombie_children().is_empty()) {
            return Vec::new();
        }
        let before = self.zombie_children();
        thread::sleep(Duration::from_millis(500));
        let after = self.zombie_children();
        before
            .into_iter()
            .filter(|pid| after.contains(pid))
            .collect()
    }

    /// Panics unless every exited child is reaped within a short grace period.
    pub fn assert_no_zombies(&self) {
        let zombies = self.lingering_zombies();
        if !zombies.is_empty() {
            panic!(
                "portico left zombie children {:?}; log:\n{}",
                describe(&zombies),
                self.log()
            );
        }
    }

    pub fn connect(&self) -> Connection {
        Connection::open(self.addr())
    }

    /// A plain socket to Portico, for clients that misbehave.
    pub fn connect_raw(&self) -> std::net::TcpStream {
        std::net::TcpStream::connect(self.addr()).unwrap()
    }

    pub fn send(&self, request: &Request) -> Response {
        http::send(self.addr(), request)
    }

    pub fn get(&self, target: &str) -> Response {
        self.send(&Request::get(target))
    }

    /// Kills what is left of the scripts' process groups, so a failing test leaves nothing behind.
    fn kill_script_groups(&self) {
        for child in self.children() {
            let target = if child.pgrp == child.pid {
                -child.pid
            } else {
                child.pid
            };
            // SAFETY: kill(2) has no memory-safety preconditions; the pids are Portico's children.
            unsafe {
                libc::kill(target, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Portico {
    fn drop(&mut self) {
        let zombies = if self.is_running() && !thread::panicking() {
            self.lingering_zombies()
        } else {
            Vec::new()
        };
        // Described while Portico still owns them.
        let described = describe(&zombies);
        let log = self.log();
        self.kill_script_groups();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !zombies.is_empty() {
            panic!(
                "portico (pid {}) left zombie children {described:?}; log:\n{log}",
                self.pid()
            );
        }
    }
}

/// One line of `/proc/PID/stat`, the fields the tests need.
#[derive(Clone, Debug)]
pub struct ProcessStat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
}

fn process_stat(pid: i32) -> Option<ProcessStat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcessStat {
        pid,
        state,
        ppid,
        pgrp,
    })
}

/// `/proc/PID/stat` of each pid, for failure messages.
fn describe(pids: &[i32]) -> Vec<String> {
    pids.iter()
        .map(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| stat.trim_end().to_owned())
                .unwrap_or_else(|_| format!("{pid} (gone)"))
        })
        .collect()
}

fn pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

pub fn processes() -> Vec<ProcessStat> {
    pids().into_iter().filter_map(process_stat).collect()
}

/// Live processes with `marker` as one of their arguments.
pub fn processes_with_arg(marker: &str) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| {
                    cmdline
                        .split(|b| *b == 0)
                        .any(|arg| arg == marker.as_bytes())
                })
                .unwrap_or(false)
        })
        .filter(|pid| process_stat(*pid).is_some_and(|p| p.state != 'Z'))
        .collect()
}

/// Panics unless a process carrying `marker` shows up within `timeout`, which proves a
/// later check for survivors can see it at all.
pub fn assert_process_with_arg_runs(marker: &str, timeout: Duration) {
    assert!(
        wait_until(timeout, || !processes_with_arg(marker).is_empty()),
        "no process with argument {marker} within {timeout:?}"
    );
}

/// Panics unless no process carrying `marker` survives `timeout`; survivors are killed first.
pub fn assert_no_process_with_arg(marker: &str, timeout: Duration, log: &str) {
    if wait_until(timeout, || processes_with_arg(marker).is_empty()) {
        return;
    }
    let survivors = processes_with_arg(marker);
    for pid in &survivors {
        // SAFETY: kill(2) has no memory-safety preconditions; these carry this test's marker.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    panic!("processes {survivors:?} with argument {marker} survived {timeout:?}; log:\n{log}");
}

/// A name no other test (or test run) uses, to mark files and processes.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "portico-test-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `done` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_for_file(path: &Path, timeout: Duration) {
    assert!(
        wait_until(timeout, || path.exists()),
        "{} did not appear within {timeout:?}",
        path.display()
    );
}

/// Writes `body` to `dir/name` (creating parent directories) with mode 0755.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    write_file(&dir.join(name), body.as_bytes(), 0o755)
}

fn write_file(path: &Path, body: &[u8], mode: u32) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.is_dir() {
            fs::remove_dir_all(path).unwrap();
        } else {
            fs::remove_file(path).unwrap();
        }
    }
    fs::write(path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// A throwaway directory: `cgi-bin/` (a copy of the repository's examples plus the
/// scripts a test writes) and room next to it for configs, outside scripts and markers.
pub struct Fixture {
    root: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let root = tempfile::Builder::new()
            .prefix("portico-test-")
            .tempdir()
            .expect("create a temporary directory");
        let cgi_dir = root.path().join("cgi-bin");
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("cgi-bin");
        if examples.is_dir() {
            copy_tree(&examples, &cgi_dir);
        } else {
            fs::create_dir(&cgi_dir).unwrap();
        }
        Fixture { root }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory mounted at `/cgi-bin`.
    pub fn cgi_dir(&self) -> PathBuf {
        self.root().join("cgi-bin")
    }

    /// `root/rel`; the file need not exist.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// `/cgi-bin/slow`: touches the returned file when it starts, then answers after `seconds`.
    pub fn slow_script(&self, seconds: &str) -> PathBuf {
        let started = self.path("started");
        let body = crate::scripts::fill(
            crate::scripts::SLOW,
            &[
                ("STARTED", &started.display().to_string()),
                ("SECONDS", seconds),
            ],
        );
        self.script("slow", &body);
        started
    }

    /// `cgi-bin/name` from `template` (`scripts::SILENT_WITH_CHILD` and the like), its
    /// background child marked with a fresh marker. Returns the marker, and the file the
    /// script touches once that child is started.
    pub fn script_with_child(&self, name: &str, template: &str) -> (String, PathBuf) {
        let marker = unique(name);
        let started = self.path(&format!("{name}.started"));
        let body = crate::scripts::fill(
            template,
            &[
                ("MARKER", &marker),
                ("STARTED", &started.display().to_string()),
            ],
        );
        self.script(name, &body);
        (marker, started)
    }

    /// An executable script at `cgi-bin/name`.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        write_script(&self.cgi_dir(), name, body)
    }

    /// Any file relative to the fixture root, with the given mode.
    pub fn file(&self, rel: &str, body: &str, mode: u32) -> PathBuf {
        write_file(&self.path(rel), body.as_bytes(), mode)
    }

    pub fn dir(&self, rel: &str) -> PathBuf {
        let dir = self.path(rel);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A symlink at `link` (relative to the root) pointing at `target`, written as given.
    pub fn symlink(&self, target: impl AsRef<Path>, link: &str) {
        let link = self.path(link);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        symlink(target.as_ref(), &link).unwrap();
    }

    /// Writes `portico.toml` at the fixture root; its relative paths resolve from there.
    pub fn config(&self, toml: &str) -> PathBuf {
        write_file(&self.path("portico.toml"), toml.as_bytes(), 0o644)
    }

    /// Writes `toml` as the config and runs `portico check --config <it>`.
    pub fn check(&self, toml: &str) -> Outcome {
        let config = self.config(toml);
        let config = config.to_str().expect("temporary paths are UTF-8");
        run_portico(
            &["check", "--config", config],
            self.root(),
            Duration::from_secs(10),
        )
    }

    /// Compiles a C program from `source` into `cgi-bin/name`.
    pub fn c_program(&self, name: &str, source: &str) -> PathBuf {
        let src = write_file(&self.path(&format!("{name}.c")), source.as_bytes(), 0o644);
        let out = self.cgi_dir().join(name);
        let status = Command::new("cc")
            .arg("-O1")
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("cannot run cc to build {name}: {e}"));
        assert!(status.success(), "cc failed to build {name}");
        out
    }

    /// Makes sure every `cgi-bin/src/NAME.c` example exists as `cgi-bin/NAME-c`.
    ///
    /// `scripts/build-examples` normally built them before the tests; a plain `cargo test`
    /// gets them compiled here, into this fixture only.
    pub fn c_examples(&self) {
        let Ok(sources) = fs::read_dir(self.cgi_dir().join("src")) else {
            return;
        };
        for source in sources {
            let source = source.unwrap().path();
            if source.extension().is_none_or(|ext| ext != "c") {
                continue;
            }
            let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
            let program = self.cgi_dir().join(format!("{stem}-c"));
            if program.exists() {
                continue;
            }
            let mut cc = Command::new("cc");
            cc.arg("-O2").arg("-o").arg(&program).arg(&source);
            // The FastCGI examples link libfcgi, as scripts/build-examples does.
            if stem.ends_with("-fcgi") {
                cc.arg("-lfcgi");
            }
            let status = cc
                .status()
                .unwrap_or_else(|e| panic!("cannot run cc for {}: {e}", source.display()));
            assert!(status.success(), "cc failed on {}", source.display());
        }
    }

    /// `portico serve --cgi-dir <cgi-bin> FLAGS...` (quick mode, mount `/cgi-bin`).
    pub fn serve(&self, flags: &[&str]) -> Portico {
        let cgi_dir = self.cgi_dir();
        let cgi_dir = cgi_dir.to_str().expect("temporary paths are UTF-8");
        Portico::start(&[&["--cgi-dir", cgi_dir], flags].concat())
    }

    /// Writes `toml` as the config and runs `portico serve --config <it> FLAGS...`.
    pub fn serve_config(&self, toml: &str, flags: &[&str]) -> Portico {
        let config = self.config(toml);
        Portico::launch()
            .arg("--config")
            .arg(config)
            .args(flags)
            .start()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            symlink(fs::read_link(&source).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&source, &target);
        } else {
            fs::copy(&source, &target).unwrap();
        }
    }
}

/// What a one-shot `portico` command (like `check`) printed and how it exited.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `portico ARGS...` in `cwd`, killing it if it outlives `timeout`.
pub fn run_portico(args: &[&str], cwd: &Path, timeout: Duration) -> Outcome {
    let mut child = Command::new(PORTICO)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PORTICO}: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let outcome = Outcome {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        status.is_some(),
        "`portico {}` still ran after {timeout:?}: {outcome:?}",
        args.join(" ")
    );
    outcome
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[test]
fn harness_sees_an_unreaped_child_as_a_zombie() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    let seen = wait_until(REAP_GRACE, || {
        processes()
            .iter()
            .any(|p| p.pid == pid && p.state == 'Z' && p.ppid == std::process::id() as i32)
    });
    child.wait().unwrap();
    assert!(seen, "process {pid} never showed up as our zombie");
}
