//! `[metrics]`: Prometheus metrics at `/metrics`, scraped after a known mix of requests and
//! checked exactly: requests by mount, method class and status class, their durations,
//! CGI spawns and deadline kills, FastCGI connections opened and reused, and the gauges
//! read as they are scraped (scripts running, requests waiting, workers by state).

use std::collections::HashMap;

use std::time::Duration;

use crate::harness::{Fixture, wait_until};
use crate::http::Request;

/// The samples of an OpenMetrics text exposition: `name{labels}` -> value. Every line
/// that is not a comment must be `NAME[{LABELS}] VALUE`.
fn samples(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a value: {line:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

#[test]
fn metrics_count_a_known_mix_of_requests_exactly() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    fx.script("echo", crate::scripts::ECHO);
    fx.script("silent", "#!/bin/sh\nsleep 30\n");
    let app = crate::launch::APP;
    let portico = fx.serve_config(
        &format!(
            "[limits]\nscript_head_timeout_seconds = 0.5\n\
             [metrics]\nenabled = true\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{app}'], workers = 1 }}\n"
        ),
        &[],
    );
    for _ in 0..3 {
        assert_eq!(portico.get("/cgi-bin/hello").status, 200);
    }
    for _ in 0..2 {
        let response = portico.send(&Request::post("/cgi-bin/echo", b"abc".to_vec()));
        assert_eq!(response.status, 200);
    }
    assert_eq!(portico.get("/cgi-bin/missing").status, 404);
    assert_eq!(portico.get("/cgi-bin/silent").status, 504);
    for _ in 0..4 {
        assert_eq!(portico.get("/app/hello").status, 200);
    }

    let scraped = portico.get("/metrics");
    assert_eq!(scraped.status, 200);
    assert!(
        scraped
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{scraped:?}"
    );
    let s = samples(&scraped.text());
    let get = |series: &str| {
        *s.get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", scraped.text()))
    };
    let requests = |mount: &str, method: &str, status: &str| {
        get(&format!(
            r#"portico_requests_total{{mount="{mount}",method="{method}",status="{status}"}}"#
        ))
    };
    assert_eq!(requests("/cgi-bin", "GET", "2xx"), 3.0);
    assert_eq!(requests("/cgi-bin", "POST", "2xx"), 2.0);
    assert_eq!(requests("/cgi-bin", "GET", "5xx"), 1.0);
    assert_eq!(requests("/cgi-bin", "GET", "4xx"), 0.0);
    // No mount took the missing script's path.
    assert_eq!(requests("", "GET", "4xx"), 1.0);
    assert_eq!(requests("/app", "GET", "2xx"), 4.0);
    assert_eq!(
        get(r#"portico_request_duration_seconds_count{mount="/cgi-bin"}"#),
        6.0
    );
    assert_eq!(
        get(r#"portico_request_duration_seconds_count{mount="/app"}"#),
        4.0
    );
    assert_eq!(get("portico_cgi_spawns_total"), 6.0);
    assert_eq!(get("portico_cgi_spawn_failures_total"), 0.0);
    assert_eq!(
        get(r#"portico_cgi_deadline_kills_total{deadline="head"}"#),
        1.0
    );
    let connections: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("portico_fastcgi_connections_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(connections, 4.0, "{}", scraped.text());
    let opened: f64 = s
        .iter()
        .filter(|(k, _)| {
            k.starts_with("portico_fastcgi_connections_total{") && k.contains("opened")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(opened, 1.0, "one worker, one kept connection");
    // Gauges, read as the metrics are scraped.
    assert_eq!(get("portico_cgi_running"), 0.0);
    assert_eq!(get(r#"portico_queue_waiting{mount="/app"}"#), 0.0);
    assert_eq!(get(r#"portico_workers{mount="/app",state="idle"}"#), 1.0);
    assert_eq!(get(r#"portico_workers{mount="/app",state="busy"}"#), 0.0);
    let down: Vec<f64> = s
        .iter()
        .filter(|(k, _)| k.starts_with("portico_upstream_down{"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(down, [0.0], "the one worker's socket, up");
}

#[test]
fn recycled_workers_are_counted_by_reason() {
    let fx = Fixture::new();
    let app = crate::launch::APP;
    let portico = fx.serve_config(
        &format!(
            "[metrics]\nenabled = true\n\
             [[fastcgi]]\nmount = '/app'\n\
             launch = {{ command = ['{app}'], workers = 1, max_requests = 2 }}\n"
        ),
        &[],
    );
    for _ in 0..6 {
        assert_eq!(portico.get("/app/hello").status, 200);
    }
    let series = r#"portico_worker_recycles_total{mount="/app",reason="max_requests"}"#;
    let recycled = || {
        samples(&portico.get("/metrics").text())
            .get(series)
            .copied()
    };
    assert!(
        wait_until(Duration::from_secs(10), || recycled()
            .is_some_and(|n| n >= 2.0)),
        "{:?}",
        recycled()
    );
}

#[test]
fn metrics_are_off_unless_enabled() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/metrics").status, 404);
}

const SLOW_WSGI: &str = r#"import time

def app(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done\n"]
"#;

/// `queue_wait_seconds` observes each request that found the mount's one worker busy, as
/// it leaves the line: one served once the worker is free, one that timed out with a 503.
/// A request that met a free worker is not in it.
#[test]
fn queue_waits_are_observed_for_the_requests_that_waited_in_line() {
    let fx = Fixture::new();
    fx.file("apps/slow_wsgi.py", SLOW_WSGI, 0o644);
    let apps = fx.path("apps");
    let portico = fx.serve_config(
        &format!(
            "[limits]\nqueue_timeout_seconds = 0.7\n\
             [metrics]\nenabled = true\n\
             [[wsgi]]\nmount = '/wsgi'\napp = 'slow_wsgi:app'\npath = ['{}']\nworkers = 1\n",
            apps.display()
        ),
        &[],
    );
    assert_eq!(portico.get("/wsgi/").status, 200);
    let scrape = || samples(&portico.get("/metrics").text());
    let busy = r#"portico_workers{mount="/wsgi",state="busy"}"#;
    let in_background = |query: &'static str| {
        // The worker of the request before may be shown busy a moment after its answer,
        // until its access line is written: idle first, then busy with this one.
        let idle = || scrape().get(busy) == Some(&0.0);
        assert!(wait_until(Duration::from_secs(5), idle));
        let addr = portico.addr();
        let handle = std::thread::spawn(move || {
            crate::http::send(addr, &Request::get(&format!("/wsgi/?{query}"))).status
        });
        let taken = || scrape().get(busy) == Some(&1.0);
        assert!(wait_until(Duration::from_secs(5), taken));
        handle
    };

    let first = in_background("0.4");
    assert_eq!(portico.get("/wsgi/").status, 200, "waited for the worker");
    assert_eq!(first.join().unwrap(), 200);
    let long = in_background("2");
    assert_eq!(portico.get("/wsgi/").status, 503, "waited past the timeout");
    assert_eq!(long.join().unwrap(), 200);
    assert_eq!(portico.get("/wsgi/").status, 200, "met a free worker");

    let s = scrape();
    let series = |suffix: &str, le: Option<&str>| {
        s.iter()
            .filter(|(k, _)| {
                k.starts_with(&format!("portico_queue_wait_seconds_{suffix}{{"))
                    && k.contains(r#"mount="/wsgi""#)
                    && le.is_none_or(|le| k.contains(&format!("le=\"{le}\"")))
            })
            .map(|(_, v)| *v)
            .collect::<Vec<f64>>()
    };
    assert_eq!(series("count", None), [2.0]);
    let sum = series("sum", None)[0];
    assert!((0.7..2.0).contains(&sum), "{sum}");
    assert_eq!(series("bucket", Some("+Inf")), [2.0]);
    assert_eq!(series("bucket", Some("1.024")), [2.0]);
    // The 503 waited the whole 0.7 s.
    assert!(series("bucket", Some("0.512"))[0] <= 1.0);
}
