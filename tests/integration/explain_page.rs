//! The teaching page over HTTP: off unless `[explain] enabled`; for loopback clients and
//! its own form only; the terminal's explanation as a page, for a POST with its body too;
//! Portico's own answer where no program runs; the config in force after a reload; one
//! explanation at a time. `pages` renders it in Chromium.

use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Fixture, PORTICO, Portico, wait_until};
use crate::http::Request;

const ON: &str = "[explain]\nenabled = true\n";

/// A CGI mount of `cgi-bin` and the hello WSGI app at `/wsgi`, with `extra` tables.
fn serve(fx: &Fixture, extra: &str) -> Portico {
    fx.serve_config(&crate::wsgi::config(1, extra), &[])
}

/// The page's answer to the form's fields, given as a query string.
fn explain(portico: &Portico, query: &str) -> crate::http::Response {
    portico.get(&format!("/portico-explain?{query}"))
}

/// What the page shows as text: `&`, `<` and `>` escaped.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn the_explain_page_is_off_unless_enabled_and_answers_at_its_path() {
    let fx = Fixture::new();
    let off = serve(&fx, "");
    assert_eq!(off.get("/portico-explain").status, 404);
    drop(off);

    let on = serve(&fx, "[explain]\nenabled = true\npath = '/learn'\n");
    let form = on.get("/learn");
    assert_eq!(form.status, 200, "{}", on.log());
    assert_eq!(
        form.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(form.header("Cache-Control"), Some("no-store"));
    let csp = form.header("Content-Security-Policy").unwrap_or("");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = form.text();
    for field in ["name=method", "name=url", "name=headers", "name=body"] {
        assert!(html.contains(field), "no {field} in\n{html}");
    }
    assert!(
        html.contains("<form method=get action=\"/learn\">"),
        "{html}"
    );
    assert!(
        html.contains("<code>/cgi-bin</code> CGI · <code>/wsgi</code> WSGI"),
        "{html}"
    );
}

/// The page's status for a request that a browser says came from `site`, and that a
/// trusted proxy says came from `client`.
fn status_from(portico: &Portico, site: Option<&str>, client: Option<&str>) -> u16 {
    let mut request = Request::get("/portico-explain?url=/cgi-bin/hello.sh");
    if let Some(site) = site {
        request = request.header("Sec-Fetch-Site", site);
    }
    if let Some(client) = client {
        request = request.header("X-Forwarded-For", client);
    }
    portico.send(&request).status
}

#[test]
fn the_explain_page_is_for_loopback_clients_and_its_own_form_only() {
    let fx = Fixture::new();
    let trusted = "trusted_proxies = ['127.0.0.1']\n";
    let portico = fx.serve_config(&(trusted.to_owned() + &crate::wsgi::config(1, ON)), &[]);
    let remote = Some("203.0.113.7");
    assert_eq!(status_from(&portico, None, remote), 403);
    assert_eq!(status_from(&portico, Some("cross-site"), None), 403);
    assert_eq!(status_from(&portico, Some("same-site"), None), 403);
    assert_eq!(status_from(&portico, Some("same-origin"), None), 200);
    assert_eq!(status_from(&portico, Some("none"), None), 200);
    drop(portico);

    let anyone = "[explain]\nenabled = true\nallow_remote = true\n";
    let config = trusted.to_owned() + &crate::wsgi::config(1, anyone);
    let portico = fx.serve_config(&config, &[]);
    assert_eq!(
        status_from(&portico, None, remote),
        200,
        "{}",
        portico.log()
    );
}

#[test]
fn the_explain_page_shows_what_the_terminal_shows_for_a_post_and_its_body() {
    let fx = Fixture::new();
    let portico = serve(&fx, ON);
    let body = format!("a=1&b={}", "x".repeat(100));
    let query = format!(
        "method=POST&url=%2Fcgi-bin%2Fecho.py%2Fp%3Fq%3D1&headers=X-Note%3A+%3Ci%3E&body={}",
        body.replace('&', "%26")
    );
    let page = explain(&portico, &query);
    assert_eq!(page.status, 200, "{}", portico.log());
    let html = page.text();

    let config = fx.path("portico.toml");
    let output = Command::new(PORTICO)
        .args(["explain", "--json", "--config"])
        .arg(&config)
        .args(["POST", "/cgi-bin/echo.py/p?q=1", "-H", "X-Note: <i>"])
        .args(["--data", &body])
        .output()
        .expect("portico explain runs");
    assert!(output.status.success(), "{output:?}");
    let terminal: Value = serde_json::from_slice(&output.stdout).unwrap();

    let route = &terminal["route"];
    assert!(
        html.contains(&format!(
            "1. Route: a cgi mount at /cgi-bin</h3><table><col class=name><col>\
             <tr><th>SCRIPT_NAME</th><td>{}</td></tr><tr><th>PATH_INFO</th><td>{}</td></tr>",
            route["script_name"].as_str().unwrap(),
            route["path_info"].as_str().unwrap()
        )),
        "{html}"
    );
    // Every meta-variable, in the same order, with the same definition; the values that
    // name the connection or the request differ from one server to the other.
    let mut at = 0;
    for var in terminal["meta_variables"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        let value = match name {
            "SERVER_PORT" | "REMOTE_PORT" | "UNIQUE_ID" => String::new(),
            _ => escaped(var["value"].as_str().unwrap()),
        };
        let row = format!("<tr><td>{name}</td><td>{value}");
        let found = html[at..].find(&row);
        let found = found.unwrap_or_else(|| panic!("no {row} after byte {at} in\n{html}"));
        at += found;
        let source = format!("<td>{}</td></tr>", var["source"].as_str().unwrap());
        assert!(html[at..].contains(&source), "{name}: no {source}");
    }
    let cgi = &terminal["cgi"];
    for part in [
        format!(
            "<pre id=response-head>{}",
            cgi["response_head"]
                .as_str()
                .unwrap()
                .lines()
                .next()
                .unwrap()
        ),
        format!(
            "<b id=response-type>{}</b>",
            cgi["response_type"].as_str().unwrap()
        ),
        // The body went to the script, as FCGI_STDIN would carry it, and came back.
        format!(
            "<tr><td>FCGI_STDIN</td><td>1</td><td>{}</td></tr>",
            body.len()
        ),
        format!("<tr><th>body</th><td>{} bytes</td></tr>", body.len()),
        "<tr><td>HTTP_X_NOTE</td><td>&lt;i&gt;</td>".to_owned(),
        "<tr><td>wsgi.input</td>".to_owned(),
        "6. Time (status 200)".to_owned(),
    ] {
        assert!(html.contains(&part), "no {part} in\n{html}");
    }
    assert_eq!(terminal["response_body_bytes"], body.len());
}

#[test]
fn a_request_no_program_answers_is_explained_as_portico_s_own_answer() {
    let fx = Fixture::new();
    let portico = serve(&fx, ON);
    let page = explain(&portico, "url=/nowhere");
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("Portico answers this request itself with <b>404 Not Found</b>"),
        "{}",
        page.text()
    );
    let bad = explain(&portico, "url=/cgi-bin/hello.sh&headers=no+colon+here");
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("header `no colon here`"),
        "{}",
        bad.text()
    );
    // A URL naming the page itself is a path like any other to the server that runs it.
    let itself = explain(
        &portico,
        "url=/portico-explain%3Furl%3D%2Fcgi-bin%2Fhello.sh",
    );
    assert_eq!(itself.status, 200);
    assert!(itself.text().contains("404 Not Found"), "{}", itself.text());
}

#[test]
fn the_explain_page_runs_the_request_with_the_config_in_force() {
    let fx = Fixture::new();
    let mounted_at = |mount: &str| format!("{ON}[[cgi]]\nmount = '{mount}'\ndir = 'cgi-bin'\n");
    let portico = fx.serve_config(&mounted_at("/cgi-bin"), &[]);
    let route = |path: &str| {
        let html = explain(&portico, &format!("url={path}")).text();
        html.contains("1. Route: a cgi mount at ")
    };
    assert!(route("/cgi-bin/hello.sh"), "{}", portico.log());
    assert!(!route("/scripts/hello.sh"));
    fx.config(&mounted_at("/scripts"));
    portico.signal(libc::SIGHUP);
    portico.wait_for_log_line(&["config reloaded"], Duration::from_secs(5));
    assert!(route("/scripts/hello.sh"));
    assert!(!route("/cgi-bin/hello.sh"));
}

#[test]
fn one_explanation_runs_at_a_time_and_another_meanwhile_is_told_to_retry() {
    let fx = Fixture::new();
    let started = fx.slow_script("2");
    let portico = serve(&fx, ON);
    let addr = portico.addr();
    let slow = thread::spawn(move || {
        crate::http::send(addr, &Request::get("/portico-explain?url=/cgi-bin/slow"))
    });
    crate::harness::wait_for_file(&started, Duration::from_secs(10));
    let busy = explain(&portico, "url=/cgi-bin/hello.sh");
    assert_eq!(busy.status, 503);
    assert!(busy.header("Retry-After").is_some());
    let slow = slow.join().unwrap();
    assert_eq!(slow.status, 200);
    assert!(
        slow.text().contains("6. Time (status 200)"),
        "{}",
        slow.text()
    );
    assert_eq!(explain(&portico, "url=/cgi-bin/hello.sh").status, 200);
}

/// The explanation's own server starts the workers of the request's app and of no other:
/// a launched app that notes each start of its workers is started again only by an
/// explanation of a request to it.
#[test]
fn an_explanation_starts_only_the_workers_of_its_own_app() {
    let fx = Fixture::new();
    fx.c_examples();
    let starts = fx.path("starts");
    let app = fx.file(
        "noted-app",
        &format!(
            "#!/bin/sh\necho $$ >> '{}'\nexec '{}'\n",
            starts.display(),
            fx.path("cgi-bin/hello-fcgi-c").display()
        ),
        0o755,
    );
    let portico = fx.serve_config(
        &format!(
            "{ON}[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\n\
             launch = {{ command = ['{}'], workers = 2 }}\n",
            app.display()
        ),
        &[],
    );
    let lines = || {
        std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(wait_until(Duration::from_secs(10), || lines() == 2));

    for _ in 0..3 {
        let cgi = explain(&portico, "url=/cgi-bin/hello.sh");
        assert_eq!(cgi.status, 200);
        assert!(
            cgi.text().contains("6. Time (status 200)"),
            "{}",
            cgi.text()
        );
    }
    assert_eq!(lines(), 2, "{}", portico.log());

    let app = explain(&portico, "url=/app/");
    assert!(
        app.text().contains("6. Time (status 200)"),
        "{}",
        app.text()
    );
    assert_eq!(lines(), 4, "{}", portico.log());
}
