//! FastCGI workers that Portico launches and supervises: sockets as fd 0, connection
//! reuse, crash and restart, recycling, hung requests, stopping an app that cannot start,
//! on-demand workers, reload on SIGHUP, drain on SIGTERM, no orphan after SIGKILL, and the
//! status page. The worker is `tests/fixtures/fcgi_app.py`.

use std::collections::{BTreeSet, HashMap};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Fixture, Portico, wait_until};
use crate::http::Request;

pub const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

/// Portico with the fixture app launched under `/app`; `launch` and `mount` are extra
/// keys for the launch table and the mount.
fn serve(fx: &Fixture, launch: &str, mount: &str) -> Portico {
    fx.serve_config(&config(launch, mount), &[])
}

fn config(launch: &str, mount: &str) -> String {
    format!(
        r#"
[[fastcgi]]
mount = "/app"
launch = {{ command = ["{APP}"], {launch} }}
{mount}

[status]
enabled = true
"#
    )
}

/// `/app/conn`'s answer: (pid, connection serial, request number on the connection).
pub fn conn(portico: &Portico) -> (u32, u32, u32) {
    let response = portico.get("/app/conn");
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.text(),
        portico.log()
    );
    let text = response.text();
    let field = |name: &str| -> u32 {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    (field("pid"), field("conn"), field("request"))
}

/// `/portico-status?json`, parsed; `fcgi_examples` and `upstreams` read it too.
pub fn status(portico: &Portico) -> Value {
    let response = portico.get("/portico-status?json");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    serde_json::from_str(&response.text()).expect("the status page is JSON")
}

fn worker_pids(portico: &Portico) -> Vec<u32> {
    status(portico)["fastcgi"][0]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["pid"].as_u64().map(|p| p as u32))
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn launched_workers_keep_one_connection_each_and_reuse_it() {
    let fx = Fixture::new();
    // One request at a time per worker, as for a libfcgi app.
    let portico = serve(&fx, "workers = 2", "max_connections = 1");
    let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
    for _ in 0..20 {
        let (pid, conn, request) = conn(&portico);
        let last = seen.entry((pid, conn)).or_default();
        assert_eq!(
            request,
            *last + 1,
            "requests on one connection come in order"
        );
        *last = request;
    }
    let pids: BTreeSet<u32> = seen.keys().map(|(pid, _)| *pid).collect();
    assert!(seen.len() <= 2, "one connection per worker, got {seen:?}");
    assert!(
        seen.values().any(|&n| n >= 5),
        "connections are reused: {seen:?}"
    );
    assert!(pids.len() <= 2, "{pids:?}");
    let workers = worker_pids(&portico);
    assert_eq!(workers.len(), 2, "{}", portico.log());
    assert!(
        pids.iter().all(|p| workers.contains(p)),
        "{pids:?} {workers:?}"
    );
}

#[test]
fn a_crashed_worker_is_restarted_and_the_others_keep_serving() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 1", "");
    let (before, _, _) = conn(&portico);
    // A POST is never sent twice, so one request is one crash.
    let response = portico.send(&Request::post("/app/crash", "x"));
    assert_eq!(response.status, 502);
    portico.wait_for_log_line(&["worker exited: exit status 3"], Duration::from_secs(5));
    let (after, _, _) = conn(&portico);
    assert_ne!(before, after, "a new worker answers");
    assert!(!alive(before));
    let workers = &status(&portico)["fastcgi"][0]["workers"];
    assert_eq!(workers[0]["restarts"], 1, "{workers}");
    assert_eq!(workers[0]["last_exit"], "exit status 3", "{workers}");
}

#[test]
fn max_requests_recycles_workers_without_a_failed_request() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 1, max_requests = 3", "max_connections = 1");
    let mut pids = Vec::new();
    for _ in 0..10 {
        pids.push(conn(&portico).0);
    }
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "workers replaced every 3 requests: {pids:?}"
    );
    for window in pids.chunk_by(|a, b| a == b) {
        assert!(window.len() <= 3, "no worker served more than 3: {pids:?}");
    }
    portico.wait_for_log_line(
        &["recycling a worker: max_requests"],
        Duration::from_secs(5),
    );
    assert!(!portico.log().contains("status=502"), "{}", portico.log());
}

/// A worker that had served is replaced at once however many crashed before it: only
/// workers that die at start back off, so a mount never sits without workers for seconds.
#[test]
fn workers_that_crash_after_serving_are_restarted_without_growing_backoff() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 1", "");
    for round in 0..6 {
        let (pid, _, _) = conn(&portico);
        let killed = Instant::now();
        // SAFETY: kill(2) on the worker the status page names.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let (next, _, _) = conn(&portico);
        assert_ne!(pid, next, "round {round}");
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "round {round}: a new worker answered after {:?}\n{}",
            killed.elapsed(),
            portico.log()
        );
    }
}

/// A worker that crashes on every request it takes is not restarted at once each time:
/// its restarts back off, as a failing start's do, and a clean answer resets that.
#[test]
fn a_worker_that_crashes_on_every_request_backs_off_and_a_clean_answer_resets_it() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 1", "");
    assert_eq!(portico.get("/app/hello").status, 200);
    let hammering = Instant::now();
    let mut answers = 0;
    while hammering.elapsed() < Duration::from_secs(4) {
        let status = portico.get("/app/crash").status;
        assert!(matches!(status, 502 | 503), "a crash answered {status}");
        answers += 1;
    }
    let app = &status(&portico)["fastcgi"][0];
    let restarts = app["workers"][0]["restarts"].as_u64().unwrap();
    // Backing off from 100 ms and doubling: about 5 restarts in 4 s; one per request
    // would be one each 100 ms or less.
    assert!(
        (2..=8).contains(&restarts),
        "{restarts} restarts for {answers} crashing requests in 4 s\n{}",
        portico.log()
    );
    // Each crash failed the request it took; the supervisor publishes its restarts a
    // moment after the endpoint counts the failure.
    let failed = app["endpoints"][0]["failed"].as_u64().unwrap();
    assert!(
        failed + 1 >= restarts,
        "{failed} failed, {restarts} restarts"
    );
    // The app is not stopped: it answers again once the backoff has passed, and a
    // clean answer makes the next crash a restart at once.
    let recovered = Instant::now();
    assert!(
        wait_until(Duration::from_secs(12), || portico.get("/app/hello").status
            == 200),
        "no clean answer after the crashes\n{}",
        portico.log()
    );
    assert!(recovered.elapsed() < Duration::from_secs(12));
    assert!(matches!(portico.get("/app/crash").status, 502 | 503));
    let crashed = Instant::now();
    assert!(wait_until(Duration::from_secs(1), || portico
        .get("/app/hello")
        .status
        == 200));
    assert!(
        crashed.elapsed() < Duration::from_secs(1),
        "{:?}",
        crashed.elapsed()
    );
}

#[test]
fn a_hung_request_gets_504_and_its_worker_is_replaced() {
    let fx = Fixture::new();
    let portico = serve(
        &fx,
        "workers = 1, request_timeout_seconds = 0.5",
        "max_connections = 1",
    );
    let (before, _, _) = conn(&portico);
    let started = Instant::now();
    let response = portico.get("/app/sleep?30");
    assert_eq!(response.status, 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    portico.wait_for_log_line(
        &["request_timeout: killing the worker"],
        Duration::from_secs(5),
    );
    let (after, _, _) = conn(&portico);
    assert_ne!(before, after);
    assert!(wait_until(Duration::from_secs(5), || !alive(before)));
}

#[test]
fn an_app_that_cannot_start_is_stopped_and_answers_503() {
    let fx = Fixture::new();
    let portico = serve(
        &fx,
        "workers = 2, start_retries = 3, env = { FCGI_APP_EXIT_AT_START = \"1\" }",
        "",
    );
    portico.wait_for_log_line(
        &["application stopped", "3 workers in a row exited at start"],
        Duration::from_secs(10),
    );
    let response = portico.get("/app/hello");
    assert_eq!(response.status, 503);
    assert!(
        !response.text().contains("FCGI_APP"),
        "no details in the body"
    );
    // The worker's stderr is in the log, and nothing restarts any more.
    assert!(
        portico.log().contains("exiting at start"),
        "{}",
        portico.log()
    );
    let starts = portico.log().matches("worker started").count();
    thread::sleep(Duration::from_millis(500));
    assert_eq!(portico.log().matches("worker started").count(), starts);
    let page = status(&portico);
    assert!(
        page["fastcgi"][0]["stopped"]
            .as_str()
            .unwrap()
            .contains("exited at start"),
        "{page}"
    );
}

#[test]
fn busy_workers_bring_more_up_to_max_workers_and_idle_ones_retire() {
    let fx = Fixture::new();
    let portico = serve(
        &fx,
        "min_workers = 1, max_workers = 3, idle_timeout_seconds = 1",
        "max_connections = 1",
    );
    assert_eq!(worker_pids(&portico).len(), 1);
    let addr = portico.addr();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || crate::http::send(addr, &Request::get("/app/sleep?1.5")).status)
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || worker_pids(&portico).len() == 3),
        "{}",
        portico.log()
    );
    for client in clients {
        assert_eq!(client.join().unwrap(), 200);
    }
    assert!(
        wait_until(Duration::from_secs(8), || worker_pids(&portico).len() == 1),
        "idle workers retire down to min_workers: {}",
        portico.log()
    );
}

#[test]
fn all_workers_busy_past_the_queue_timeout_is_503() {
    let fx = Fixture::new();
    let toml =
        config("workers = 1", "max_connections = 1") + "\n[limits]\nqueue_timeout_seconds = 0.3\n";
    let portico = fx.serve_config(&toml, &[]);
    let addr = portico.addr();
    let slow = thread::spawn(move || crate::http::send(addr, &Request::get("/app/sleep?2")).status);
    thread::sleep(Duration::from_millis(300));
    let response = portico.get("/app/hello");
    assert_eq!(response.status, 503);
    assert!(response.header("Retry-After").is_some());
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn sighup_replaces_the_workers_without_a_failed_request() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 2", "max_connections = 1");
    let old = worker_pids(&portico);
    let addr = portico.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    statuses.push(crate::http::send(addr, &Request::get("/app/sleep?0.05")).status);
                }
                statuses
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    portico.signal(libc::SIGHUP);
    portico.wait_for_log_line(&["config reloaded"], Duration::from_secs(5));
    portico.wait_for_log_line(
        &["the replaced config's workers are stopped"],
        Duration::from_secs(10),
    );
    thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(statuses.len() > 10, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 200),
        "{statuses:?}\n{}",
        portico.log()
    );
    let new = worker_pids(&portico);
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|p| !old.contains(p)), "{old:?} -> {new:?}");
    assert!(old.iter().all(|&p| !alive(p)), "old workers are gone");
}

#[test]
fn a_bad_config_on_sighup_keeps_the_running_one() {
    let fx = Fixture::new();
    let path = fx.config(&config("workers = 1", ""));
    let portico = Portico::launch().arg("--config").arg(&path).start();
    let before = worker_pids(&portico);
    std::fs::write(&path, "[[fastcgi]]\nmount = 3\n").unwrap();
    portico.signal(libc::SIGHUP);
    portico.wait_for_log_line(&["config reload refused", "mount"], Duration::from_secs(5));
    assert_eq!(portico.get("/app/hello").status, 200);
    assert_eq!(worker_pids(&portico), before);
}

#[test]
fn sigterm_lets_requests_finish_then_stops_the_workers() {
    let fx = Fixture::new();
    let mut portico = serve(&fx, "workers = 2", "max_connections = 1");
    let pids = worker_pids(&portico);
    let addr = portico.addr();
    let slow = thread::spawn(move || {
        let response = crate::http::send(addr, &Request::get("/app/sleep?1"));
        (response.status, response.text())
    });
    thread::sleep(Duration::from_millis(300));
    portico.sigterm();
    let (status, text) = slow.join().unwrap();
    assert_eq!((status, text.as_str()), (200, "hello\n"));
    let exit = portico.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", portico.log());
    assert!(pids.iter().all(|&p| !alive(p)), "workers stopped: {pids:?}");
}

#[test]
fn workers_die_with_portico_even_on_sigkill() {
    let fx = Fixture::new();
    let mut portico = serve(&fx, "workers = 2", "");
    let pids = worker_pids(&portico);
    assert_eq!(pids.len(), 2);
    portico.signal(libc::SIGKILL);
    portico.wait_exit(Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(5), || pids.iter().all(|&p| !alive(p))),
        "orphan workers {pids:?}"
    );
}

#[test]
fn workers_can_listen_on_loopback_tcp() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 1, socket = \"tcp\"", "");
    assert_eq!(portico.get("/app/hello").text(), "hello\n");
    let page = status(&portico);
    let address = page["fastcgi"][0]["endpoints"][0]["address"]
        .as_str()
        .unwrap();
    assert!(address.starts_with("tcp:127.0.0.1:"), "{address}");
}

#[test]
fn the_status_page_shows_workers_in_html_and_is_off_by_default() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 2", "");
    conn(&portico);
    let page = portico.get("/portico-status");
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text();
    assert!(
        html.contains("FastCGI /app") && html.contains("<th>pid</th>"),
        "{html}"
    );
    for pid in worker_pids(&portico) {
        assert!(html.contains(&format!("<td>{pid}</td>")), "{html}");
    }
    drop(portico);

    let quiet = fx.serve_config(
        &format!(
            "[[fastcgi]]\nmount = \"/app\"\nlaunch = {{ command = [\"{APP}\"], workers = 1 }}\n"
        ),
        &[],
    );
    assert_eq!(quiet.get("/portico-status").status, 404);
}

#[test]
fn clients_that_leave_the_queue_do_not_hold_up_the_next_request() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 1", "max_connections = 1");
    let addr = portico.addr();
    let slow = thread::spawn(move || crate::http::send(addr, &Request::get("/app/sleep?1")).status);
    thread::sleep(Duration::from_millis(200));
    // Queued behind the slow request, then gone.
    for _ in 0..3 {
        let mut client = portico.connect();
        client.send(&Request::get("/app/hello"));
        thread::sleep(Duration::from_millis(50));
        client.shutdown();
    }
    assert_eq!(slow.join().unwrap(), 200);
    // Many clients that leave while their requests wait or run: some leave right after
    // their turn came, which must pass the turn on.
    for _ in 0..5 {
        let clients: Vec<_> = (0..20)
            .map(|_| {
                let mut client = portico.connect();
                client.send(&Request::get("/app/hello"));
                client
            })
            .collect();
        thread::sleep(Duration::from_millis(5));
        drop(clients);
    }
    let started = Instant::now();
    assert_eq!(portico.get("/app/hello").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}: a departed client kept its place in line",
        started.elapsed()
    );
    let page = status(&portico);
    assert_eq!(page["fastcgi"][0]["waiting"], 0, "{page}");
}

/// Portico's peak resident memory (VmHWM), in KiB.
#[test]
fn a_large_response_streams_through_with_flat_memory() {
    let fx = Fixture::new();
    let portico = serve(&fx, "workers = 1", "");
    assert_eq!(portico.get("/app/hello").status, 200);
    let before = portico.peak_rss_kib();
    let size: u64 = 256 << 20;
    let mut connection = portico.connect();
    connection.set_read_timeout(Duration::from_secs(30));
    connection.send(&Request::get(&format!("/app/big?{size}")));
    let head = connection.read_head().unwrap();
    assert_eq!(head.status, 200);
    let mut received = 0u64;
    let complete = connection
        .read_body_with(head.framing("GET"), &mut |bytes| {
            received += bytes.len() as u64
        })
        .unwrap();
    assert!(complete);
    assert_eq!(received, size);
    let growth = portico.peak_rss_kib().saturating_sub(before);
    assert!(
        growth < 32 << 10,
        "peak RSS grew by {growth} KiB while streaming {size} bytes"
    );
}

/// The page says since when Portico serves, how many requests it answered and at what
/// rate, and names a `[[wsgi]]` mount as WSGI, not as the FastCGI it runs on.
#[test]
fn the_status_page_shows_uptime_totals_and_names_wsgi_mounts() {
    let fx = Fixture::new();
    let apps = concat!(env!("CARGO_MANIFEST_DIR"), "/apps");
    let portico = fx.serve_config(
        &format!(
            "[status]\nenabled = true\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{APP}'], workers = 1 }}\n\
             [[wsgi]]\nmount = '/wsgi'\napp = 'hello_wsgi:app'\npath = ['{apps}']\nworkers = 1\n"
        ),
        &[],
    );
    for _ in 0..5 {
        assert_eq!(portico.get("/app/hello").status, 200);
    }
    assert_eq!(portico.get("/wsgi/").status, 200);
    let json = status(&portico);
    assert_eq!(json["requests"], 6, "{json}");
    assert!(json["uptime_seconds"].as_f64().unwrap() > 0.0, "{json}");
    assert!(json["started"].as_str().unwrap().ends_with('Z'), "{json}");
    let kinds: Vec<(&str, &str)> = json["fastcgi"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["mount"].as_str().unwrap(), m["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("/app", "fastcgi"), ("/wsgi", "wsgi")]);
    let html = portico.get("/portico-status").text();
    assert!(
        html.contains("WSGI /wsgi") && html.contains("FastCGI /app") && html.contains("Up since"),
        "{html}"
    );
}
