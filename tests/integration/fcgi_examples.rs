//! The repository's FastCGI hello examples, `cgi-bin/hello-fcgi-c` (libfcgi),
//! `hello-fcgi.py` (standard library) and `hello-fcgi.pl` (Perl's FCGI module), as their
//! header comments say: launched by Portico they serve every request on the same two
//! workers, read a request body to its end so a kept connection survives it, and run as
//! plain CGI too. Also the default `conf/portico.toml`, which launches `hello-fcgi.py`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Fixture, Portico, wait_until};
use crate::http::{Request, Response};
use crate::launch::status;

/// Portico with `cgi-bin/PROGRAM` launched as two workers under `/hello`.
fn serve_launched(program: &str) -> (Fixture, Portico) {
    let fx = Fixture::new();
    fx.c_examples();
    let command = fx.cgi_dir().join(program);
    let config = format!(
        r#"
[[fastcgi]]
mount = "/hello"
launch = {{ command = ["{}"], workers = 2 }}

[status]
enabled = true
"#,
        command.display()
    );
    let portico = fx.serve_config(&config, &[]);
    (fx, portico)
}

fn assert_hello(response: &Response, what: &str, portico: &Portico) {
    assert_eq!(
        response.status,
        200,
        "{what}: {}; log:\n{}",
        response.text(),
        portico.log()
    );
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain"),
        "{what}"
    );
    assert_eq!(response.text(), "hello\n", "{what}");
}

/// The launched mount's endpoints, by address: requests served, exactly.
fn served(page: &Value) -> BTreeMap<String, u64> {
    page["fastcgi"][0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                e["served"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The workers' pids, sorted, after checking that none was restarted.
fn worker_pids(page: &Value) -> Vec<u64> {
    let workers = page["fastcgi"][0]["workers"].as_array().expect("workers");
    for worker in workers {
        assert_eq!(worker["restarts"], 0, "{worker}");
    }
    let mut pids: Vec<u64> = workers.iter().filter_map(|w| w["pid"].as_u64()).collect();
    pids.sort_unstable();
    pids
}

/// 50 requests in a row are all answered, spread over both workers, and the same two
/// processes answer them all: the example loops in FCGX_Accept_r (or its equivalent)
/// instead of exiting after one request.
fn serves_every_request_on_the_same_two_workers(program: &str) {
    let (_fx, portico) = serve_launched(program);
    let before = worker_pids(&status(&portico));
    assert_eq!(before.len(), 2, "{program}: {before:?}");
    for i in 0..50 {
        assert_hello(
            &portico.get("/hello"),
            &format!("{program}, request {i}"),
            &portico,
        );
    }
    let page = status(&portico);
    let served = served(&page);
    assert_eq!(served.len(), 2, "{program}: {page}");
    assert_eq!(served.values().sum::<u64>(), 50, "{program}: {page}");
    assert!(
        served.values().all(|&n| n >= 10),
        "{program}: requests are spread over both workers: {served:?}"
    );
    assert_eq!(
        worker_pids(&page),
        before,
        "{program}: the same two workers"
    );
    let mut processes: Vec<u64> = portico
        .children()
        .iter()
        .filter(|p| p.state != 'Z')
        .map(|p| p.pid as u64)
        .collect();
    processes.sort_unstable();
    assert_eq!(processes, before, "{program}: Portico's only children");
    // The workers' own counts are published on the supervisor's tick.
    let counted = || {
        status(&portico)["fastcgi"][0]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w["requests"].as_u64())
            .sum::<u64>()
    };
    assert!(
        wait_until(Duration::from_secs(5), || counted() == 50),
        "{program}: workers' requests add up to {}, not 50",
        counted()
    );
}

/// The sockets a worker holds besides its listening socket (fd 0): its connections
/// from Portico, each named by inode.
fn connections(pid: u64) -> BTreeSet<String> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.filter_map(|fd| {
        let fd = fd.ok()?;
        if fd.file_name() == "0" {
            return None;
        }
        let target = fs::read_link(fd.path()).ok()?;
        let target = target.to_str()?;
        target.starts_with("socket:").then(|| target.to_owned())
    })
    .collect()
}

/// The pid of the worker serving endpoint `address`.
fn worker_at(page: &Value, address: &str) -> u64 {
    page["fastcgi"][0]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["address"] == address)
        .and_then(|w| w["pid"].as_u64())
        .unwrap_or_else(|| panic!("no worker at {address}: {page}"))
}

/// A 100 kB POST is answered, and the next request on the same worker comes on the same
/// kept connection: the example read FCGI_STDIN to its end (libfcgi closes a connection
/// whose request left input unread, FastCGI spec §5.1 FCGI_KEEP_CONN notwithstanding).
fn reads_the_body_and_keeps_its_connection(program: &str) {
    let (_fx, portico) = serve_launched(program);
    let pids = worker_pids(&status(&portico));
    // Both workers serve a GET first, so each holds a kept connection.
    let warm = wait_until(Duration::from_secs(5), || {
        assert_hello(&portico.get("/hello"), program, &portico);
        served(&status(&portico)).values().all(|&n| n > 0)
    });
    assert!(
        warm,
        "{program}: a worker never served: {}",
        status(&portico)
    );
    let page = status(&portico);
    let before = served(&page);
    let held: BTreeMap<u64, BTreeSet<String>> =
        pids.iter().map(|&pid| (pid, connections(pid))).collect();
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    assert_hello(
        &portico.send(&Request::post("/hello", body)),
        &format!("{program}, POST"),
        &portico,
    );
    let after_post = served(&status(&portico));
    let address = after_post
        .iter()
        .find(|(address, n)| **n == before[*address] + 1)
        .map(|(address, _)| address.clone())
        .unwrap_or_else(|| panic!("{program}: which worker took the POST? {after_post:?}"));
    let worker = worker_at(&page, &address);
    assert_eq!(held[&worker].len(), 1, "{program}: one kept connection");
    // Requests take turns over the idle workers; one soon reaches the POST's worker again.
    let reached = wait_until(Duration::from_secs(5), || {
        assert_hello(&portico.get("/hello"), program, &portico);
        served(&status(&portico))[&address] > after_post[&address]
    });
    assert!(
        reached,
        "{program}: no GET reached {address} after the POST"
    );
    assert_eq!(
        connections(worker),
        held[&worker],
        "{program}: the connection that carried the POST was closed"
    );
    assert_eq!(worker_pids(&status(&portico)), pids, "{program}");
}

#[test]
fn c_libfcgi_example_serves_every_request_on_the_same_two_workers() {
    serves_every_request_on_the_same_two_workers("hello-fcgi-c");
}

#[test]
fn python_example_serves_every_request_on_the_same_two_workers() {
    serves_every_request_on_the_same_two_workers("hello-fcgi.py");
}

#[test]
fn perl_fcgi_example_serves_every_request_on_the_same_two_workers() {
    serves_every_request_on_the_same_two_workers("hello-fcgi.pl");
}

#[test]
fn c_libfcgi_example_reads_a_posted_body_and_keeps_its_connection() {
    reads_the_body_and_keeps_its_connection("hello-fcgi-c");
}

#[test]
fn perl_fcgi_example_reads_a_posted_body_and_keeps_its_connection() {
    reads_the_body_and_keeps_its_connection("hello-fcgi.pl");
}

#[test]
fn python_example_reads_a_posted_body_and_keeps_its_connection() {
    reads_the_body_and_keeps_its_connection("hello-fcgi.py");
}

#[test]
fn the_same_files_run_as_plain_cgi_next_to_the_launched_app() {
    let fx = Fixture::new();
    fx.c_examples();
    let config = r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"

[[fastcgi]]
mount = "/fcgi/hello"
launch = { command = ["cgi-bin/hello-fcgi.py"], workers = 2 }
"#;
    let portico = fx.serve_config(config, &[]);
    for target in [
        "/cgi-bin/hello-fcgi.py",
        "/cgi-bin/hello-fcgi-c",
        "/cgi-bin/hello-fcgi.pl",
        "/fcgi/hello",
    ] {
        assert_hello(&portico.get(target), target, &portico);
    }
    // Under CGI each one was a process that wrote the document once and exited.
    for target in [
        "/cgi-bin/hello-fcgi.py",
        "/cgi-bin/hello-fcgi-c",
        "/cgi-bin/hello-fcgi.pl",
    ] {
        portico.wait_for_log_line(
            &[&format!("path={target} "), "status=200", "exit=0 "],
            Duration::from_secs(5),
        );
    }
    portico.wait_for_log_line(
        &["path=/fcgi/hello ", "status=200", "upstream=unix:"],
        Duration::from_secs(5),
    );
}

#[test]
fn the_default_config_serves_hello_as_cgi_and_from_launched_workers() {
    // As README runs it: from the repository, with the config's relative paths.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let portico = Portico::launch()
        .current_dir(repo)
        .arg("--config")
        .arg("conf/portico.toml")
        .start();
    for target in ["/cgi-bin/hello.py", "/fcgi/hello", "/wsgi/hello/"] {
        assert_hello(&portico.get(target), target, &portico);
    }
    portico.wait_for_log_line(
        &["path=/fcgi/hello", "status=200", "upstream=unix:"],
        Duration::from_secs(5),
    );
}
