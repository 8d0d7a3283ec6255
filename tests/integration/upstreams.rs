//! FastCGI upstreams Portico does not run: balancing over several (round-robin and
//! least-busy), leaving out one that refuses connections and taking it back after
//! `fail_timeout_seconds`, a 502 when none is left, kept-open connections, and sizing an
//! upstream from its FCGI_GET_VALUES answer, with several requests on one connection when
//! it says FCGI_MPXS_CONNS=1. The applications are
//! `tests/fixtures/fcgi_app.py` started with `--listen unix:PATH`; php-fpm is in `php`.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fastcgi::App;
use crate::harness::{Fixture, Portico, wait_until};
use crate::http::Request;
use crate::launch::{conn, status};

/// Portico with `/app` in front of `upstreams` (relative to the fixture root); `extra`
/// holds more keys for the mount.
fn serve(fx: &Fixture, upstreams: &[&str], extra: &str) -> Portico {
    let list: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    let config = format!(
        r#"
[[fastcgi]]
mount = "/app"
upstreams = [{}]
script = "app"
{extra}

[status]
enabled = true
"#,
        list.join(", ")
    );
    fx.serve_config(&config, &[])
}

/// The status page's entry for the endpoint whose address ends with `/name`.
fn endpoint(page: &Value, name: &str) -> Value {
    let suffix = format!("/{name}");
    page["fastcgi"][0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["address"].as_str().is_some_and(|a| a.ends_with(&suffix)))
        .unwrap_or_else(|| panic!("no endpoint {name} in {page}"))
        .clone()
}

#[test]
fn round_robin_takes_turns_between_two_upstreams() {
    let fx = Fixture::new();
    let a = App::start(&fx.path("a.sock"));
    let b = App::start(&fx.path("b.sock"));
    let portico = serve(
        &fx,
        &["unix:a.sock", "unix:b.sock"],
        r#"balance = "round-robin""#,
    );
    let pids: Vec<u32> = (0..20).map(|_| conn(&portico).0).collect();
    for app in [&a, &b] {
        let n = pids.iter().filter(|&&p| p == app.pid()).count();
        assert!(n >= 5, "pid {} answered {n} of 20: {pids:?}", app.pid());
    }
    assert!(
        pids.iter().all(|p| [a.pid(), b.pid()].contains(p)),
        "{pids:?}"
    );
}

/// One slow request holds an upstream; quick requests meanwhile all go to the other one
/// at once instead of queueing behind it or sharing its load.
fn quick_requests_go_past_the_busy_upstream(max_connections: usize) {
    let fx = Fixture::new();
    let a = App::start(&fx.path("a.sock"));
    let b = App::start(&fx.path("b.sock"));
    let portico = serve(
        &fx,
        &["unix:a.sock", "unix:b.sock"],
        &format!("balance = \"least-busy\"\nmax_connections = {max_connections}"),
    );
    let addr = portico.addr();
    let slow = thread::spawn(move || crate::http::send(addr, &Request::get("/app/sleep?3")));
    let busy = || {
        ["a.sock", "b.sock"]
            .into_iter()
            .find(|name| endpoint(&status(&portico), name)["busy"] == 1)
    };
    assert!(
        wait_until(Duration::from_secs(5), || busy().is_some()),
        "the slow request never started; log:\n{}",
        portico.log()
    );
    let (busy_pid, idle_pid) = match busy() {
        Some("a.sock") => (a.pid(), b.pid()),
        _ => (b.pid(), a.pid()),
    };
    for i in 0..5 {
        let started = Instant::now();
        let (pid, _, _) = conn(&portico);
        assert_eq!(
            pid, idle_pid,
            "quick request {i} went to the busy upstream (pid {busy_pid})"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "quick request {i} took {:?}",
            started.elapsed()
        );
    }
    assert!(
        !slow.is_finished(),
        "the slow request ended before the quick ones did"
    );
    let slow = slow.join().unwrap();
    assert_eq!((slow.status, slow.text().as_str()), (200, "hello\n"));
}

#[test]
fn least_busy_sends_quick_requests_past_an_upstream_at_capacity() {
    quick_requests_go_past_the_busy_upstream(1);
}

#[test]
fn least_busy_prefers_the_idle_upstream_to_a_half_busy_one() {
    // With room for two on each, the busy upstream could take them: only its share of
    // capacity in use (1/2 against 0/2) sends them to the other.
    quick_requests_go_past_the_busy_upstream(2);
}

#[test]
fn a_refusing_upstream_is_left_out_then_taken_back_after_fail_timeout() {
    let fx = Fixture::new();
    let live = App::start(&fx.path("live.sock"));
    // Nothing listens on dead.sock yet.
    let portico = serve(
        &fx,
        &["unix:dead.sock", "unix:live.sock"],
        "fail_timeout_seconds = 1",
    );
    for i in 0..10 {
        let (pid, _, _) = conn(&portico);
        assert_eq!(pid, live.pid(), "request {i}");
    }
    let page = status(&portico);
    let dead = endpoint(&page, "dead.sock");
    assert_eq!(dead["healthy"], false, "{page}");
    assert!(dead["connect_failures"].as_u64().unwrap() >= 1, "{page}");
    assert_eq!(endpoint(&page, "live.sock")["served"], 10, "{page}");
    portico.wait_for_log_line(&["cannot connect", "dead.sock"], Duration::from_secs(5));

    let revived = App::start(&fx.path("dead.sock"));
    let mut pids = Vec::new();
    let reached = wait_until(Duration::from_secs(5), || {
        pids.push(conn(&portico).0);
        pids.contains(&revived.pid())
    });
    assert!(reached, "no request reached the revived upstream: {pids:?}");
    assert!(
        pids.iter().all(|p| [live.pid(), revived.pid()].contains(p)),
        "{pids:?}"
    );
    let page = status(&portico);
    assert_eq!(endpoint(&page, "dead.sock")["healthy"], true, "{page}");
}

#[test]
fn a_lone_refusing_upstream_is_502_at_once_without_paths() {
    let fx = Fixture::new();
    let portico = serve(&fx, &["unix:dead.sock"], "fail_timeout_seconds = 10");
    // The second request comes while the upstream is left out: with no other to try it
    // is tried anyway, rather than waiting out the queue timeout for a 503.
    for i in 0..2 {
        let started = Instant::now();
        let response = portico.get("/app/hello");
        assert_eq!(response.status, 502, "request {i}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "request {i} took {:?}",
            started.elapsed()
        );
        let text = response.text();
        let root = fx.root().display().to_string();
        assert!(
            !text.contains("dead.sock") && !text.contains(&root),
            "request {i}: {text}"
        );
    }
    // Both requests really tried it, and the log says why they failed.
    let page = status(&portico);
    let failures = endpoint(&page, "dead.sock")["connect_failures"].as_u64();
    assert!(failures >= Some(2), "{page}");
    portico.wait_for_log_line(
        &["path=/app/hello", "status=502", "No such file"],
        Duration::from_secs(5),
    );
}

#[test]
fn sequential_requests_reuse_one_kept_connection() {
    let fx = Fixture::new();
    let app = App::start(&fx.path("app.sock"));
    let portico = serve(&fx, &["unix:app.sock"], "max_connections = 1");
    let answers: Vec<(u32, u32, u32)> = (0..10).map(|_| conn(&portico)).collect();
    let (_, first_conn, _) = answers[0];
    let expected: Vec<(u32, u32, u32)> = (1..=10).map(|n| (app.pid(), first_conn, n)).collect();
    assert_eq!(answers, expected, "one connection, FCGI_KEEP_CONN honoured");
}

/// fcgi_app.py's FCGI_GET_VALUES answer for `name`, read from its `VALUES` table.
fn fixture_value(name: &str) -> u64 {
    let source = include_str!("../fixtures/fcgi_app.py");
    let key = format!("b\"{name}\": b\"");
    let start = source
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in VALUES"))
        + key.len();
    let rest = &source[start..];
    rest[..rest.find('"').unwrap()].parse().unwrap()
}

#[test]
fn an_upstream_without_max_connections_is_sized_by_fcgi_get_values() {
    let fx = Fixture::new();
    let _app = App::start(&fx.path("app.sock"));
    let portico = serve(&fx, &["unix:app.sock"], "");
    // FastCGI spec §4.1: the smaller of FCGI_MAX_CONNS and FCGI_MAX_REQS.
    let said = fixture_value("FCGI_MAX_CONNS").min(fixture_value("FCGI_MAX_REQS"));
    let before = endpoint(&status(&portico), "app.sock")["capacity"].clone();
    // Until it has been asked, the documented default for an upstream (conf/portico.toml).
    assert_eq!(before, 8);
    assert_ne!(said, 8, "the fixture's answer must differ from the default");
    assert_eq!(portico.get("/app/hello").status, 200);
    let page = status(&portico);
    assert_eq!(endpoint(&page, "app.sock")["capacity"], said, "{page}");
}

#[test]
fn an_app_that_multiplexes_gets_concurrent_requests_on_one_connection() {
    let fx = Fixture::new();
    let _app = App::start_with(&fx.path("m.sock"), &["--mpxs"]);
    let portico = serve(&fx, &["unix:m.sock"], "");
    // The first request learns FCGI_MPXS_CONNS=1.
    assert_eq!(portico.get("/app/hello").status, 200);
    let addr = portico.addr();
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let response = crate::http::send(addr, &Request::get("/app/conn?0.5"));
                assert_eq!(response.status, 200);
                response.text()
            })
        })
        .collect();
    let answers: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let elapsed = started.elapsed();
    let field = |text: &str, name: &str| -> String {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
            .to_owned()
    };
    let conns: std::collections::BTreeSet<String> =
        answers.iter().map(|a| field(a, "conn")).collect();
    let ids: std::collections::BTreeSet<String> = answers.iter().map(|a| field(a, "id")).collect();
    assert_eq!(conns.len(), 1, "one shared connection: {answers:?}");
    assert_eq!(ids.len(), 4, "a request id each: {answers:?}");
    assert!(
        elapsed < Duration::from_millis(1500),
        "served at once, not in turn: {elapsed:?}"
    );
    // Ids are reused once their requests end: the connection keeps serving.
    for _ in 0..10 {
        assert_eq!(portico.get("/app/hello").status, 200);
    }
    let page = status(&portico);
    assert_eq!(endpoint(&page, "m.sock")["capacity"], 64, "{page}");
}
