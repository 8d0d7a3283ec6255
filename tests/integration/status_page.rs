//! The status page as an operator reads it: the scoreboard of the CGI scripts and the
//! FastCGI and WSGI requests running now, each with its URL, client, request id, pid and
//! an age that grows, gone once it ends; per-mount counts, last-minute rates and latency
//! percentiles after a known number of requests; the same data in JSON and in HTML; and
//! the HTML as headless Chromium renders it.

use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::chromium::Chromium;
use crate::harness::{Fixture, Portico, wait_until};
use crate::http::Request;
use crate::launch::{APP, status};

/// A WSGI app that answers after QUERY_STRING seconds.
const SLOW_WSGI: &str = r#"import time

def app(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done\n"]
"#;

/// A CGI mount, the fixture FastCGI app at `/app` and `SLOW_WSGI` at `/wsgi`, one worker
/// each; 127.0.0.1 is a trusted proxy so that the tests choose their request ids.
fn serve(fx: &Fixture) -> Portico {
    fx.file("apps/slow_wsgi.py", SLOW_WSGI, 0o644);
    let apps = fx.path("apps");
    let apps = apps.display();
    fx.serve_config(
        &format!(
            "trusted_proxies = ['127.0.0.1']\n\
             [status]\nenabled = true\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{APP}'], workers = 1 }}\n\
             [[wsgi]]\nmount = '/wsgi'\napp = 'slow_wsgi:app'\npath = ['{apps}']\nworkers = 1\n"
        ),
        &[],
    )
}

/// Sends `target` with the request id `id` from a thread of its own; joins to its status.
fn in_background(portico: &Portico, target: &str, id: &str) -> thread::JoinHandle<u16> {
    let (addr, request) = (
        portico.addr(),
        Request::get(target).header("X-Request-Id", id),
    );
    thread::spawn(move || crate::http::send(addr, &request).status)
}

/// The row of `rows` whose request id is `id`, once the page shows one.
fn row_of(portico: &Portico, rows: impl Fn(&Value) -> Value, id: &str) -> Value {
    let mut found = Value::Null;
    let shown = wait_until(Duration::from_secs(10), || {
        let page = rows(&status(portico));
        found = page
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["request_id"] == id).cloned())
            .unwrap_or(Value::Null);
        !found.is_null()
    });
    assert!(shown, "no row for {id}; log:\n{}", portico.log());
    found
}

fn mount<'a>(page: &'a Value, list: &str, name: &str) -> &'a Value {
    page[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mount"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}: {page}"))
}

#[test]
fn a_running_script_is_on_the_scoreboard_with_a_growing_age_until_it_ends() {
    let fx = Fixture::new();
    let started = fx.slow_script("5");
    let portico = serve(&fx);
    let slow = in_background(&portico, "/cgi-bin/slow", "script-1");
    crate::harness::wait_for_file(&started, Duration::from_secs(10));

    let scripts = |page: &Value| page["cgi_scripts"].clone();
    let row = row_of(&portico, scripts, "script-1");
    assert_eq!(
        (&row["method"], &row["path"], &row["script"], &row["client"]),
        (
            &"GET".into(),
            &"/cgi-bin/slow".into(),
            &"/cgi-bin/slow".into(),
            &"127.0.0.1".into()
        ),
        "{row}"
    );
    let pid = row["pid"].as_i64().unwrap() as i32;
    assert!(
        portico.children().iter().any(|c| c.pid == pid),
        "pid {pid} is no child of Portico's"
    );
    let first_age = row["age_seconds"].as_f64().unwrap();
    thread::sleep(Duration::from_millis(300));
    let row = row_of(&portico, scripts, "script-1");
    assert!(row["age_seconds"].as_f64().unwrap() > first_age, "{row}");

    let html = portico.get("/portico-status").text();
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    for cell in [
        "<td class=url>GET /cgi-bin/slow</td>".to_owned(),
        format!("<td>{pid}</td>"),
        "<td>127.0.0.1</td>".to_owned(),
        "<td>script-1</td>".to_owned(),
    ] {
        assert!(html.contains(&cell), "no {cell} in\n{html}");
    }
    // The age cell follows the pid's.
    let html_age = || {
        let html = portico.get("/portico-status").text();
        let after = format!("<td>{pid}</td><td>");
        let start = html.find(&after).map(|i| i + after.len());
        let age = start.and_then(|i| html[i..].split("</td>").next()?.parse::<f64>().ok());
        age.unwrap_or_else(|| panic!("no age after pid {pid} in\n{html}"))
    };
    let first_age = html_age();
    thread::sleep(Duration::from_millis(300));
    assert!(html_age() > first_age);

    // Past a few seconds the row is marked slow, in both forms.
    assert!(
        wait_until(Duration::from_secs(4), || row_of(
            &portico, scripts, "script-1"
        )["slow"]
            == true),
        "never marked slow"
    );
    let html = portico.get("/portico-status").text();
    assert!(
        html.contains("<tr class=slow><td class=url>GET /cgi-bin/slow</td>"),
        "{html}"
    );

    assert_eq!(slow.join().unwrap(), 200);
    assert!(
        wait_until(Duration::from_secs(3), || status(&portico)["cgi_scripts"]
            .as_array()
            .unwrap()
            .is_empty()),
        "the script stayed on the scoreboard: {}",
        status(&portico)
    );
    assert!(!portico.get("/portico-status").text().contains("script-1"));
}

#[test]
fn fastcgi_and_wsgi_requests_in_flight_name_their_worker_until_they_end() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    assert_eq!(portico.get("/wsgi/?0").status, 200, "{}", portico.log());
    let fastcgi = in_background(&portico, "/app/sleep?2", "fcgi-1");
    let wsgi = in_background(&portico, "/wsgi/?2", "wsgi-1");

    for (name, id, path) in [
        ("/app", "fcgi-1", "/app/sleep"),
        ("/wsgi", "wsgi-1", "/wsgi/"),
    ] {
        let in_flight = |page: &Value| mount(page, "fastcgi", name)["in_flight"].clone();
        let row = row_of(&portico, in_flight, id);
        assert_eq!(
            (&row["method"], &row["path"], &row["client"]),
            (&"GET".into(), &path.into(), &"127.0.0.1".into()),
            "{row}"
        );
        let page = status(&portico);
        let app = mount(&page, "fastcgi", name);
        assert_eq!(row["upstream"], app["endpoints"][0]["address"], "{app}");
        assert_eq!(row["pid"], app["workers"][0]["pid"], "{app}");
        assert!(row["pid"].as_u64().is_some(), "{app}");
        let age = row["age_seconds"].as_f64().unwrap();
        thread::sleep(Duration::from_millis(200));
        let later = row_of(&portico, in_flight, id);
        assert!(later["age_seconds"].as_f64().unwrap() > age, "{later}");
        let html = portico.get("/portico-status").text();
        let pid = row["pid"].as_u64().unwrap();
        let cells = format!("<td class=url>GET {path}</td>");
        assert!(html.contains(&cells), "no {cells} in\n{html}");
        assert!(html.contains(&format!("<td>{id}</td>")), "{html}");
        assert!(html.contains(&format!("<td>{pid}</td></tr>")), "{html}");
    }
    let page = status(&portico);
    assert_eq!(mount(&page, "fastcgi", "/wsgi")["app"], "slow_wsgi:app");

    assert_eq!(fastcgi.join().unwrap(), 200);
    assert_eq!(wsgi.join().unwrap(), 200);
    let idle = || {
        let page = status(&portico);
        ["/app", "/wsgi"].iter().all(|name| {
            mount(&page, "fastcgi", name)["in_flight"]
                .as_array()
                .unwrap()
                .is_empty()
        })
    };
    assert!(
        wait_until(Duration::from_secs(3), idle),
        "{}",
        status(&portico)
    );
}

#[test]
fn per_mount_counts_rates_and_percentiles_match_the_requests_sent() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let portico = serve(&fx);
    let mut cgi_bytes = 0;
    for _ in 0..5 {
        let response = portico.get("/cgi-bin/hello");
        assert_eq!(response.status, 200);
        cgi_bytes += response.body.len() as u64;
    }
    for _ in 0..3 {
        assert_eq!(portico.get("/app/hello").text(), "hello\n");
    }
    assert_eq!(portico.get("/nowhere").status, 404);

    let page = status(&portico);
    let cases = [
        ("/cgi-bin", "cgi", 5, cgi_bytes),
        ("/app", "fastcgi", 3, 18),
        ("/wsgi", "wsgi", 0, 0),
        ("", "none", 1, 0),
    ];
    for (name, kind, requests, bytes) in cases {
        let m = mount(&page, "mounts", name);
        assert_eq!(m["kind"], kind, "{m}");
        assert_eq!(
            (m["requests"].as_u64(), m["bytes"].as_u64()),
            (Some(requests), Some(bytes)),
            "{m}"
        );
        let minute = &m["last_minute"];
        assert_eq!(minute["requests"].as_u64(), Some(requests), "{m}");
        assert_eq!(minute["bytes"].as_u64(), Some(bytes), "{m}");
        let seconds = minute["seconds"].as_f64().unwrap();
        assert!((1.0..=60.0).contains(&seconds), "{m}");
        let rate = minute["requests_per_second"].as_f64().unwrap();
        assert!((rate - requests as f64 / seconds).abs() < 1e-6, "{m}");
        let latency = &m["latency_ms"];
        if requests == 0 {
            assert!(latency.is_null(), "{m}");
            continue;
        }
        assert_eq!(latency["samples"].as_u64(), Some(requests), "{m}");
        let p = |name: &str| latency[name].as_f64().unwrap();
        assert!(
            0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99"),
            "{m}"
        );
    }
    assert_eq!(page["requests"], 9, "{page}");
    assert_eq!(page["last_minute"]["requests"], 9, "{page}");
    assert_eq!(page["bytes"].as_u64(), Some(cgi_bytes + 18), "{page}");

    let html = portico.get("/portico-status").text();
    let row = format!("<tr><td>/cgi-bin</td><td>CGI</td><td>5</td><td>{cgi_bytes} B</td>");
    assert!(html.contains(&row), "no {row} in\n{html}");
}

/// The page as a browser renders it: Chromium's DOM has the scoreboard's rows and the
/// WSGI label. Skipped, saying so, where Chromium is not installed (scripts/test installs it).
#[test]
fn the_status_page_renders_its_scoreboard_in_headless_chromium() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let fx = Fixture::new();
    let started = fx.slow_script("6");
    let portico = serve(&fx);
    let script = in_background(&portico, "/cgi-bin/slow", "browser-script");
    let wsgi = in_background(&portico, "/wsgi/?6", "browser-wsgi");
    crate::harness::wait_for_file(&started, Duration::from_secs(10));
    let wsgi_rows = |page: &Value| mount(page, "fastcgi", "/wsgi")["in_flight"].clone();
    let wsgi_row = row_of(&portico, wsgi_rows, "browser-wsgi");
    let script_row = row_of(
        &portico,
        |page| page["cgi_scripts"].clone(),
        "browser-script",
    );

    let url = format!("http://{}/portico-status", portico.addr());
    let page = chromium.render(&fx, &url);
    assert!(page.console.is_empty(), "{:?}", page.console);
    let dom = page.dom;
    let script_pid = script_row["pid"].as_i64().unwrap();
    let wsgi_pid = wsgi_row["pid"].as_u64().unwrap();
    for needle in [
        "<table id=\"scripts\">".to_owned(),
        "<td class=\"url\">GET /cgi-bin/slow</td>".to_owned(),
        format!("<td>{script_pid}</td>"),
        "<td>browser-script</td>".to_owned(),
        "<table class=\"in-flight\" data-mount=\"/wsgi\">".to_owned(),
        "<td class=\"url\">GET /wsgi/</td>".to_owned(),
        "<td>browser-wsgi</td>".to_owned(),
        format!("<td>{wsgi_pid}</td></tr>"),
        "WSGI /wsgi (slow_wsgi:app)".to_owned(),
        "FastCGI /app".to_owned(),
        "<meta http-equiv=\"refresh\" content=\"5\">".to_owned(),
    ] {
        assert!(dom.contains(&needle), "no {needle} in the DOM:\n{dom}");
    }
    assert_eq!(script.join().unwrap(), 200);
    assert_eq!(wsgi.join().unwrap(), 200);
}

/// The workers no URL routes to are on the page too, named and labelled as what they
/// are: the runners of a mount's persistent CGI scripts and a mount's authorizer, with
/// the requests each served, and their gauges in `/metrics`.
#[test]
fn persistent_runners_and_authorizers_are_on_the_page_with_their_workers() {
    let fx = Fixture::new();
    let authorizer = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fcgi_authorizer.py"
    );
    let portico = fx.serve_config(
        &format!(
            "[status]\nenabled = true\n[metrics]\nenabled = true\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             persistent = {{ perl = ['*.pl'], workers = 2 }}\n\
             authorizer = {{ launch = {{ command = ['{authorizer}'], workers = 1 }} }}\n"
        ),
        &[],
    );
    let hello = Request::get("/cgi-bin/hello.pl").header("Authorization", "Bearer good");
    for _ in 0..3 {
        let response = portico.send(&hello);
        assert_eq!(response.status, 200, "{}", portico.log());
    }

    let served = |m: &Value| -> u64 {
        let endpoints = m["endpoints"].as_array().unwrap();
        endpoints
            .iter()
            .map(|e| e["served"].as_u64().unwrap())
            .sum()
    };
    // The endpoints count a request served as its exchange ends, which may follow the
    // answer by a moment.
    let runner_served = || {
        served(mount(
            &status(&portico),
            "fastcgi",
            "/cgi-bin (persistent perl)",
        ))
    };
    assert!(wait_until(Duration::from_secs(5), || runner_served() == 3));
    let page = status(&portico);
    let runner = mount(&page, "fastcgi", "/cgi-bin (persistent perl)");
    assert_eq!(runner["kind"], "persistent", "{runner}");
    assert_eq!(runner["launched"], true);
    let workers = runner["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{runner}");
    assert!(workers.iter().all(|w| w["pid"].is_u64()), "{runner}");
    assert_eq!(served(runner), 3, "{runner}");
    let guard = mount(&page, "fastcgi", "/cgi-bin (authorizer)");
    assert_eq!(guard["kind"], "authorizer", "{guard}");
    assert_eq!(served(guard), 3, "{guard}");

    let html = portico.get("/portico-status").text();
    for heading in [
        "<h2>Persistent CGI /cgi-bin (persistent perl)</h2>",
        "<h2>FastCGI Authorizer /cgi-bin (authorizer)</h2>",
    ] {
        assert!(html.contains(heading), "no {heading} in\n{html}");
    }
    // A worker is shown busy until its request's access line is written, a moment after
    // the answer: both idle once the last line is out.
    let idle = r#"portico_workers{mount="/cgi-bin (persistent perl)",state="idle"} 2"#;
    let both_idle = || portico.get("/metrics").text().contains(idle);
    assert!(
        wait_until(Duration::from_secs(5), both_idle),
        "no {idle} in\n{}",
        portico.get("/metrics").text()
    );
}
