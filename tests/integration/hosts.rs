//! Pools across hosts (issue 17): network namespaces stand for hosts, joined by veth pairs
//! on addresses only these tests make (10.231.N.0/24, each namespace with its own routes, so
//! tests running at once cannot clash). Portico on one host balances a FastCGI mount over
//! apps on two others, php-fpm and a libfcgi app, both over TCP: round-robin shares the
//! load evenly by the apps' own counts, and an app host that dies under load costs only the
//! requests it had taken, is left out within `fail_timeout_seconds` and gets traffic again
//! once it is back. Two Portico instances behind nginx on a fourth host are drained one at a
//! time with SIGTERM under load without a failed request: nothing ties a client to an
//! instance.
//!
//! Making namespaces needs root (CI is root); elsewhere the tests say why and pass.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Fixture, Portico, unique, wait_for_file, wait_until};
use crate::http::{Connection, Request};

/// Where `ip netns add` puts a namespace's handle (iproute2).
const NETNS_DIR: &str = "/run/netns";

/// The prefix of every namespace these tests make; the test binary's pid follows it.
const PREFIX: &str = "portico-test-hosts-";

/// A few hosts, each a network namespace, deleted with whatever runs in them on drop.
struct Net {
    /// Host name to namespace name.
    hosts: BTreeMap<&'static str, String>,
}

impl Net {
    /// The namespaces for `names`, or why they cannot be made here (not root, no `ip`).
    fn create(names: &[&'static str]) -> Result<Net, String> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("making network namespaces needs root".to_owned());
        }
        sweep_dead_runs();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let run = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            hosts: BTreeMap::new(),
        };
        for &name in names {
            let ns = format!("{run}-{name}");
            ip(&["netns", "add", &ns]).map_err(|e| format!("`ip netns add` failed: {e}"))?;
            net.hosts.insert(name, ns);
            net.ip(name, &["link", "set", "lo", "up"]);
        }
        Ok(net)
    }

    /// `create`, or `None` after saying on stderr why the test is skipped.
    fn create_or_skip(names: &[&'static str]) -> Option<Net> {
        match Net::create(names) {
            Ok(net) => Some(net),
            Err(why) => {
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    fn ns(&self, host: &str) -> &str {
        &self.hosts[host]
    }

    /// `ip ARGS...` run on `host`.
    fn ip(&self, host: &str, args: &[&str]) {
        let ns = self.ns(host);
        ip(&[&["-n", ns], args].concat()).unwrap_or_else(|e| panic!("on {host}: {e}"));
    }

    /// A veth pair between `a` (10.231.`subnet`.1) and `b` (10.231.`subnet`.2). Both ends
    /// are made inside their namespaces, so the test runner's own network is never touched.
    fn link(&self, a: &str, b: &str, subnet: u8) {
        let (to_b, to_a) = (format!("to-{b}"), format!("to-{a}"));
        ip(&[
            "link",
            "add",
            "name",
            &to_b,
            "netns",
            self.ns(a),
            "type",
            "veth",
            "peer",
            "name",
            &to_a,
            "netns",
            self.ns(b),
        ])
        .unwrap_or_else(|e| panic!("veth {a} - {b}: {e}"));
        for (host, dev, end) in [(a, &to_b, 1), (b, &to_a, 2)] {
            let addr = format!("10.231.{subnet}.{end}/24");
            self.ip(host, &["addr", "add", &addr, "dev", dev]);
            self.ip(host, &["link", "set", dev, "up"]);
        }
    }

    /// `argv` run on `host` (`ip netns exec` execs it, so the child's pid is its own), in a
    /// process group of its own.
    fn command(&self, host: &str, argv: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.ns(host)])
            .args(argv)
            .stdin(Stdio::null())
            .process_group(0);
        command
    }

    /// Runs `f` on a thread inside `host`'s network: the sockets it opens are that host's.
    fn within<T: Send>(&self, host: &str, f: impl FnOnce() -> T + Send) -> T {
        let ns = self.ns(host).to_owned();
        thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter(&ns);
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Waits until something on `host` accepts connections at `addr`.
    fn wait_listening(&self, host: &str, addr: SocketAddr, what: &str) {
        let up = self.within(host, || {
            wait_until(Duration::from_secs(10), || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            })
        });
        assert!(up, "{what} does not listen on {addr} within 10 s");
    }

    /// SIGKILL to every process on `host`, as when its machine dies; returns once they
    /// are all gone from the namespace (a zombie still waiting for its parent counts as gone).
    fn kill_all(&self, host: &str) {
        let ns = self.ns(host).to_owned();
        kill_namespace(&ns);
        let gone = wait_until(Duration::from_secs(5), || {
            namespace_pids(&ns).iter().all(|&pid| is_zombie(pid))
        });
        assert!(gone, "processes on {host} survived SIGKILL");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.hosts.values() {
            kill_namespace(ns);
            // A namespace's veths go with it.
            let _ = ip(&["netns", "delete", ns]);
        }
    }
}

/// `ip ARGS...`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Moves the calling thread into the network namespace `ns` (setns(2) acts per thread).
fn enter(ns: &str) {
    let handle =
        File::open(Path::new(NETNS_DIR).join(ns)).unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
    // SAFETY: setns(2) on an open namespace file; it changes only this thread's network.
    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// The processes in namespace `ns` (`ip netns pids`).
fn namespace_pids(ns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill_namespace(ns: &str) {
    for pid in namespace_pids(ns) {
        // SAFETY: kill(2) has no memory-safety preconditions; everything in a namespace
        // these tests made was started by them.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Deletes the namespaces of earlier runs that died before their drop could (a test
/// binary killed outright): those whose pid is gone.
fn sweep_dead_runs() {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            kill_namespace(&name);
            let _ = ip(&["netns", "delete", &name]);
        }
    }
}

/// A program started on a host, killed (with its process group) and reaped on drop.
struct Daemon {
    /// `None` once reaped, when its pid may already be another process's.
    child: Option<Child>,
}

impl Daemon {
    fn spawn(mut command: Command, what: &str) -> Daemon {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Daemon { child: Some(child) }
    }

    /// Reaps it once something else killed it.
    fn reap(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the process group this test started it in, not yet reaped.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        let _ = child.wait();
    }
}

/// The PHP app: its worker's pid and that worker's own count of requests, after waiting
/// QUERY_STRING seconds (so requests are in flight when its host dies).
const WHO_PHP: &str = r#"<?php
$delay = (float)($_SERVER["QUERY_STRING"] ?? "0");
if ($delay > 0) usleep((int)($delay * 1000000));
$file = "COUNTS/php-" . getmypid();
$n = (int)@file_get_contents($file) + 1;
file_put_contents($file, $n);
header("Content-Type: text/plain");
echo "app=php pid=", getmypid(), " n=", $n, "\n";
"#;

/// The libfcgi app: binds the TCP address it is given itself (FCGX_OpenSocket) and forks
/// workers that accept on it, as spawn-fcgi would start hello-fcgi; each answers with its
/// pid and its own count of requests.
const WHO_C: &str = r#"
#include <fcgiapp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    FCGX_Request req;
    char buf[4096];
    unsigned long n = 0;
    int sock, i;

    if (argc != 3 || FCGX_Init() != 0 || (sock = FCGX_OpenSocket(argv[1], 64)) < 0)
        return 1;
    for (i = 1; i < atoi(argv[2]); i++)
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            break;
        }
    if (FCGX_InitRequest(&req, sock, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&req) >= 0) {
        const char *query = FCGX_GetParam("QUERY_STRING", req.envp);
        while (FCGX_GetStr(buf, sizeof buf, req.in) > 0)
            ;
        if (query && *query)
            usleep((useconds_t)(atof(query) * 1e6));
        n++;
        FCGX_FPrintF(req.out, "Content-Type: text/plain\r\n\r\napp=c pid=%d n=%lu\n",
                     (int)getpid(), n);
        FCGX_Finish_r(&req);
    }
    return 0;
}
"#;

/// Debian's php-fpm, named for its PHP version (`php-fpm8.2`).
fn php_fpm_binary() -> String {
    fs::read_dir("/usr/sbin")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("php-fpm"))
        })
        .map(|p| p.display().to_string())
        .expect("php-fpm is installed (scripts/test installs Debian's php-fpm)")
}

/// php-fpm on `host`, listening on `listen`, with a static pool of `children`.
fn start_php_fpm(net: &Net, host: &str, fx: &Fixture, listen: &str, children: usize) -> Daemon {
    let dir = fx.dir(&format!("php-{}", unique("fpm")));
    let config = dir.join("php-fpm.conf");
    fs::write(
        &config,
        format!(
            "[global]\nerror_log = {log}\ndaemonize = no\n[www]\nlisten = {listen}\n\
             pm = static\npm.max_children = {children}\n",
            log = dir.join("php-fpm.log").display(),
        ),
    )
    .unwrap();
    let fpm = php_fpm_binary();
    let config = config.to_str().expect("temporary paths are UTF-8");
    // -R: the tests run as root, which php-fpm refuses without it.
    let mut command = net.command(host, &[&fpm, "-F", "-R", "-n", "-y", config]);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    Daemon::spawn(command, "php-fpm")
}

/// The libfcgi app of `WHO_C` on `host`, listening on `listen` with `workers` processes.
fn start_c_app(net: &Net, host: &str, fx: &Fixture, listen: &str, workers: usize) -> Daemon {
    let source = fx.file("who-fcgi.c", WHO_C, 0o644);
    let program = fx.path("who-fcgi");
    let status = Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .arg("-lfcgi")
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc failed on who-fcgi.c (libfcgi-dev?)");
    let program = program.to_str().expect("temporary paths are UTF-8");
    let workers = workers.to_string();
    Daemon::spawn(net.command(host, &[program, listen, &workers]), "who-fcgi")
}

/// One request of a load run.
#[derive(Clone, Debug)]
struct Answer {
    sent: Instant,
    done: Instant,
    /// The status, or why no response came at all.
    status: Result<u16, String>,
    body: String,
}

impl Answer {
    fn is_ok(&self) -> bool {
        self.status == Ok(200)
    }

    /// `NAME=value` from the body.
    fn field(&self, name: &str) -> Option<&str> {
        self.body
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    }
}

/// Clients on a host sending GET `target` one after another, each on a fresh connection.
struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(net: &Net, host: &str, addr: SocketAddr, target: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|_| {
                let (ns, target) = (net.ns(host).to_owned(), target.to_owned());
                let (stop, answers) = (stop.clone(), answers.clone());
                thread::spawn(move || {
                    enter(&ns);
                    while !stop.load(Ordering::Relaxed) {
                        let answer = send(addr, &target);
                        answers.lock().unwrap().push(answer);
                    }
                })
            })
            .collect();
        Load {
            stop,
            answers,
            clients,
        }
    }

    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        let mut answers = self.answers.lock().unwrap().clone();
        answers.sort_by_key(|a| a.sent);
        answers
    }
}

/// GET `target` on a fresh connection; any failure is recorded, never a panic.
fn send(addr: SocketAddr, target: &str) -> Answer {
    let sent = Instant::now();
    let status = Connection::try_open(addr).and_then(|mut conn| {
        conn.try_send_raw(&Request::get(target).to_bytes())?;
        conn.try_read_response("GET")
    });
    let (status, body) = match status {
        Ok(r) if r.complete => (Ok(r.status), r.text()),
        Ok(r) => (Err(format!("cut body after status {}", r.status)), r.text()),
        Err(e) => (Err(e.to_string()), String::new()),
    };
    Answer {
        sent,
        done: Instant::now(),
        status,
        body,
    }
}

/// How many good answers named each value of `field` (`app`, `server`).
fn count_by(answers: &[Answer], field: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for answer in answers.iter().filter(|a| a.is_ok()) {
        let value = answer.field(field).unwrap_or("?").to_owned();
        *counts.entry(value).or_insert(0) += 1;
    }
    counts
}

fn by_app(answers: &[Answer]) -> BTreeMap<String, usize> {
    count_by(answers, "app")
}

/// Each app's own count of the requests it served: the sum over its processes of the
/// highest `n` one of them answered with.
fn own_counts(answers: &[Answer]) -> BTreeMap<String, u64> {
    let mut highest: BTreeMap<(String, String), u64> = BTreeMap::new();
    for answer in answers.iter().filter(|a| a.is_ok()) {
        let (Some(app), Some(pid), Some(n)) =
            (answer.field("app"), answer.field("pid"), answer.field("n"))
        else {
            continue;
        };
        let n = n.parse().unwrap_or(0);
        let entry = highest.entry((app.to_owned(), pid.to_owned())).or_insert(0);
        *entry = (*entry).max(n);
    }
    let mut counts = BTreeMap::new();
    for ((app, _), n) in highest {
        *counts.entry(app).or_insert(0) += n;
    }
    counts
}

/// `/portico-status?json` of the Portico at `addr`, from a thread on its host.
fn status_at(addr: SocketAddr) -> Value {
    let response = crate::http::send(addr, &Request::get("/portico-status?json"));
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_str(&response.text()).expect("the status page is JSON")
}

/// The status page's entry for the endpoint at `address`.
fn endpoint(page: &Value, address: &str) -> Value {
    page["fastcgi"][0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["address"] == address)
        .unwrap_or_else(|| panic!("no endpoint {address} in {page}"))
        .clone()
}

const PHP_HOST: &str = "10.231.1.2:9000";
const C_HOST: &str = "10.231.2.2:9000";
/// Requests each app host takes at once (php-fpm children, libfcgi processes).
const APP_CAPACITY: usize = 4;
const FAIL_TIMEOUT: Duration = Duration::from_secs(2);

/// Portico on host `portico` with `/app` balanced round-robin over php-fpm on host `php`
/// and the libfcgi app on host `c`. Fields drop in order: the programs, then the hosts.
struct AppHosts {
    portico: Portico,
    php: Option<Daemon>,
    _c: Daemon,
    fx: Fixture,
    net: Net,
}

impl AppHosts {
    fn start() -> Option<AppHosts> {
        let net = Net::create_or_skip(&["portico", "php", "c"])?;
        net.link("portico", "php", 1);
        net.link("portico", "c", 2);
        let fx = Fixture::new();
        let counts = fx.dir("counts");
        let who = WHO_PHP.replace("COUNTS", counts.to_str().unwrap());
        fx.file("docroot/who.php", &who, 0o644);
        let php = start_php_fpm(&net, "php", &fx, PHP_HOST, APP_CAPACITY);
        let c = start_c_app(&net, "c", &fx, C_HOST, APP_CAPACITY);
        net.wait_listening("portico", PHP_HOST.parse().unwrap(), "php-fpm");
        net.wait_listening("portico", C_HOST.parse().unwrap(), "the libfcgi app");
        let config = fx.config(&format!(
            r#"
[[fastcgi]]
mount = "/app"
upstreams = ["tcp:{PHP_HOST}", "tcp:{C_HOST}"]
script = "docroot/who.php"
balance = "round-robin"
max_connections = {APP_CAPACITY}
fail_timeout_seconds = {fail}
connect_timeout_seconds = 1

[status]
enabled = true
"#,
            fail = FAIL_TIMEOUT.as_secs()
        ));
        let portico = Portico::launch()
            .wrapped(&["ip", "netns", "exec", net.ns("portico")])
            .arg("--config")
            .arg(&config)
            .start();
        Some(AppHosts {
            portico,
            php: Some(php),
            _c: c,
            fx,
            net,
        })
    }

    fn status(&self) -> Value {
        let addr = self.portico.addr();
        self.net.within("portico", || status_at(addr))
    }

    /// `clients` send requests that each take 50 ms at the app; the php host dies under
    /// them and comes back. Only requests it had taken may fail: each a 502, sent before
    /// it was gone, at most as many as it takes at once. It is shown down within the fail
    /// timeout, and is sent requests again once it is back.
    fn kill_php_under_load(&mut self, clients: usize) {
        let (net, portico) = (&self.net, &self.portico);
        let addr = portico.addr();
        let load = Load::start(net, "portico", addr, "/app/who?0.05", clients);
        let health = {
            let (ns, stop) = (net.ns("portico").to_owned(), load.stop.clone());
            let address = format!("tcp:{PHP_HOST}");
            thread::spawn(move || {
                enter(&ns);
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let page = status_at(addr);
                    seen.push((Instant::now(), endpoint(&page, &address)["healthy"] == true));
                    thread::sleep(Duration::from_millis(20));
                }
                seen
            })
        };
        thread::sleep(Duration::from_secs(1));
        let killed = Instant::now();
        net.kill_all("php");
        let dead = Instant::now();
        if let Some(php) = self.php.take() {
            php.reap();
        }
        // Past the fail timeout, so Portico tries the dead host again at least once.
        thread::sleep(FAIL_TIMEOUT + Duration::from_secs(1));

        let revived = Instant::now();
        self.php = Some(start_php_fpm(net, "php", &self.fx, PHP_HOST, APP_CAPACITY));
        let php_again = |a: &Answer| a.sent > revived && a.field("app") == Some("php");
        let back = wait_until(FAIL_TIMEOUT + Duration::from_secs(5), || {
            load.answers().iter().any(php_again)
        });
        thread::sleep(Duration::from_millis(500));
        let answers = load.finish();
        let health = health.join().unwrap();

        let failed: Vec<&Answer> = answers.iter().filter(|a| !a.is_ok()).collect();
        let marked_down = health
            .iter()
            .find(|(at, healthy)| *at > killed && !healthy)
            .map(|(at, _)| *at - killed);
        let served_again = answers
            .iter()
            .find(|a| php_again(a))
            .map(|a| a.done - revived);
        let late: Vec<&&Answer> = failed.iter().filter(|a| a.sent >= dead).collect();
        eprintln!(
            "{clients} clients, php host killed: {} requests, {:?} ok, {} failed ({} of them \
             sent after it was gone); shown down {marked_down:?} after the kill; php served \
             again {served_again:?} after its restart",
            answers.len(),
            by_app(&answers),
            failed.len(),
            late.len(),
        );
        assert!(
            back,
            "the revived php host got no request; log:\n{}",
            portico.log()
        );
        assert!(
            late.is_empty() && failed.len() <= APP_CAPACITY,
            "{} failed, {} of them sent after the host was gone: {:?}; log:\n{}",
            failed.len(),
            late.len(),
            late.iter().take(5).collect::<Vec<_>>(),
            portico.log()
        );
        for answer in &failed {
            assert_eq!(answer.status, Ok(502), "{answer:?}");
        }
        let marked_down = marked_down.expect("the dead host was never shown unhealthy");
        assert!(
            marked_down <= FAIL_TIMEOUT,
            "shown down after {marked_down:?}"
        );
        portico.wait_for_log_line(&["cannot connect", PHP_HOST], Duration::from_secs(1));
        let healthy_again = health.iter().any(|(at, healthy)| *at > revived && *healthy);
        assert!(healthy_again, "the revived host was never shown healthy");
    }
}

#[test]
fn a_pool_over_two_app_hosts_balances_and_outlives_one_of_them() {
    let Some(mut hosts) = AppHosts::start() else {
        return;
    };
    let addr = hosts.portico.addr();

    // Round-robin, one request at a time: the apps take turns.
    let one_by_one: Vec<Answer> = hosts.net.within("portico", || {
        (0..100).map(|_| send(addr, "/app/who")).collect()
    });
    let shares = by_app(&one_by_one);
    eprintln!("one by one: {shares:?}");
    assert!(one_by_one.iter().all(Answer::is_ok), "{one_by_one:?}");
    assert_eq!((shares["php"], shares["c"]), (50, 50), "{shares:?}");

    // Eight at once, more than one host takes: still an even split, by the apps' own
    // counts and by the status page alike.
    let load = Load::start(
        &hosts.net,
        "portico",
        addr,
        "/app/who?0.01",
        2 * APP_CAPACITY,
    );
    thread::sleep(Duration::from_secs(2));
    let mut answers = load.finish();
    assert!(answers.iter().all(Answer::is_ok), "{answers:?}");
    answers.extend(one_by_one);
    let shares = by_app(&answers);
    let total = answers.len();
    eprintln!("in all: {total} requests, {shares:?}");
    for app in ["php", "c"] {
        let share = shares[app] as f64 / total as f64;
        assert!((0.4..=0.6).contains(&share), "{app}: {shares:?} of {total}");
    }
    let counted: BTreeMap<String, u64> =
        shares.iter().map(|(k, v)| (k.clone(), *v as u64)).collect();
    assert_eq!(
        own_counts(&answers),
        counted,
        "what the apps counted and what the clients got"
    );
    let page = hosts.status();
    for (address, app) in [(PHP_HOST, "php"), (C_HOST, "c")] {
        let served = &endpoint(&page, &format!("tcp:{address}"))["served"];
        assert_eq!(served, shares[app], "{page}");
    }

    // As many clients as the surviving host takes at once.
    hosts.kill_php_under_load(APP_CAPACITY);
}

/// More clients than the surviving host takes at once: a request whose connect to the
/// dead host is refused has not reached any app, so it should wait in line for the other
/// (`queue_timeout_seconds`) rather than get a 502 because that one is busy right now.
#[test]
fn an_app_host_dying_under_more_load_than_the_other_takes_loses_no_request() {
    let Some(mut hosts) = AppHosts::start() else {
        return;
    };
    hosts.kill_php_under_load(2 * APP_CAPACITY);
}

/// nginx on `host`, at 127.0.0.1:8080 there, in front of `backends` with kept connections.
/// A request that meets a refused or broken connection before its response head goes to
/// the next backend (`proxy_next_upstream`, nginx's default made explicit).
fn start_nginx(net: &Net, host: &str, dir: &Path, backends: &[&str]) -> Daemon {
    let d = dir.display();
    let servers: String = backends
        .iter()
        .map(|b| format!("  server {b} max_fails=1 fail_timeout=10s;\n"))
        .collect();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{}}\nhttp {{\n access_log off;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         upstream porticos {{\n{servers}  keepalive 16;\n }}\n\
         server {{\n  listen 127.0.0.1:8080;\n  location / {{\n\
           proxy_pass http://porticos;\n\
           proxy_http_version 1.1;\n\
           proxy_set_header Connection \"\";\n\
           proxy_next_upstream error timeout;\n\
           proxy_connect_timeout 1s;\n  }}\n }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, conf).unwrap();
    let (prefix, path) = (d.to_string(), path.display().to_string());
    let mut command = net.command(host, &["nginx", "-p", &prefix, "-c", &path]);
    command.stderr(Stdio::null());
    Daemon::spawn(command, "nginx (scripts/test installs it)")
}

#[test]
fn two_porticos_behind_nginx_drain_one_with_sigterm_without_a_failed_request() {
    let Some(net) = Net::create_or_skip(&["edge", "one", "two"]) else {
        return;
    };
    net.link("edge", "one", 1);
    net.link("edge", "two", 2);

    let fx = Fixture::new();
    // 50 ms, so requests are in flight on the instance when it is told to stop; `?slow`
    // says when it starts and takes a second.
    let started = fx.path("slow.started");
    fx.script(
        "who",
        &format!(
            "#!/bin/sh\ncase $QUERY_STRING in\n  slow) : > '{}'; sleep 1 ;;\n  *) sleep 0.05 ;;\nesac\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\nserver=%s\\n' \"$SERVER_ADDR\"\n",
            started.display()
        ),
    );
    let config = fx.config(
        "[limits]\nshutdown_timeout_seconds = 5\n\n[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"cgi-bin\"\n",
    );
    let start = |host: &str, listen: &str| {
        Portico::launch()
            .wrapped(&["ip", "netns", "exec", net.ns(host)])
            .listen_from_config(1)
            .arg("--config")
            .arg(&config)
            .args(["--listen", listen])
            .start()
    };
    let (one_addr, two_addr) = ("10.231.1.2:8080", "10.231.2.2:8080");
    let mut one = start("one", one_addr);
    let _two = start("two", two_addr);
    let nginx_dir = fx.dir("nginx");
    let _nginx = start_nginx(&net, "edge", &nginx_dir, &[one_addr, two_addr]);
    let front: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    net.wait_listening("edge", front, "nginx");

    let load = Load::start(&net, "edge", front, "/cgi-bin/who", 8);
    thread::sleep(Duration::from_millis(500));
    // A client of instance one's own, on a kept-alive connection, mid-request at SIGTERM:
    // it gets its whole response, then the connection closes without a reset.
    let kept = {
        let (ns, addr) = (net.ns("edge").to_owned(), one_addr.parse().unwrap());
        thread::spawn(move || {
            enter(&ns);
            let mut conn = Connection::open(addr);
            conn.send(&Request::get("/cgi-bin/who?slow").keep_alive());
            let response = conn.try_read_response("GET");
            (response, conn.read_to_end_raw())
        })
    };
    wait_for_file(&started, Duration::from_secs(10));
    thread::sleep(Duration::from_millis(300));
    let told = Instant::now();
    one.sigterm();
    let exit = one.wait_exit(Duration::from_secs(10));
    let exited = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let answers = load.finish();
    let (kept_response, kept_end) = kept.join().unwrap();

    let failed: Vec<&Answer> = answers.iter().filter(|a| !a.is_ok()).collect();
    let before: Vec<Answer> = answers.iter().filter(|a| a.done < told).cloned().collect();
    let draining: Vec<Answer> = answers
        .iter()
        .filter(|a| a.done >= told && a.sent < exited)
        .cloned()
        .collect();
    let after: Vec<Answer> = answers
        .iter()
        .filter(|a| a.sent >= exited)
        .cloned()
        .collect();
    // When the latest request one served was sent, in ms from SIGTERM: one that it took
    // after handling the signal would show here.
    let last_taken = answers
        .iter()
        .filter(|a| a.is_ok() && a.field("server") == Some("10.231.1.2"))
        .map(|a| match a.sent.checked_duration_since(told) {
            Some(after) => after.as_secs_f64() * 1000.0,
            None => -(told - a.sent).as_secs_f64() * 1000.0,
        })
        .fold(f64::NEG_INFINITY, f64::max);
    let nginx_log = fs::read_to_string(nginx_dir.join("error.log")).unwrap_or_default();
    let upstream_errors: Vec<&str> = nginx_log
        .lines()
        .filter(|l| l.contains("upstream") && (l.contains("[error]") || l.contains("[warn]")))
        .collect();
    eprintln!(
        "drain under load: {} requests, {} failed; before SIGTERM {:?}; while draining ({:?}) \
         {:?}; after exit {:?}; one's last request sent at {last_taken:.1} ms from SIGTERM; \
         nginx logged {} upstream errors:",
        answers.len(),
        failed.len(),
        count_by(&before, "server"),
        exited - told,
        count_by(&draining, "server"),
        count_by(&after, "server"),
        upstream_errors.len(),
    );
    for line in &upstream_errors {
        eprintln!("  {line}");
    }
    assert!(
        failed.is_empty(),
        "failed requests: {failed:?}\nnginx:\n{nginx_log}\nportico one:\n{}",
        one.log()
    );
    assert_eq!(exit.code(), Some(0), "exit {exit:?}; log:\n{}", one.log());
    let kept_response = kept_response.expect("the in-flight request's response");
    assert_eq!(
        (kept_response.status, kept_response.complete),
        (200, true),
        "{kept_response:?}"
    );
    assert!(
        exited - told >= Duration::from_millis(500),
        "one exited {:?} after SIGTERM, before its slow request could end",
        exited - told
    );
    let kept_end = kept_end.expect("the kept connection closed without a reset");
    assert!(
        kept_end.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&kept_end)
    );
    let before = count_by(&before, "server");
    assert_eq!(before.len(), 2, "both instances served before: {before:?}");
    let after = count_by(&after, "server");
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["10.231.2.2"],
        "{after:?}"
    );
    assert!(
        last_taken < 250.0,
        "one took a request sent {last_taken:.1} ms after SIGTERM"
    );
}
