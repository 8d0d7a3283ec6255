//! The access log file: one Combined (or Common) Log Format line per request, whoever ends
//! it (a script, a FastCGI worker, Portico itself for errors before either), written once
//! per request even across a local redirect, and let go of on SIGHUP for log rotation.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::harness::{Fixture, wait_until};
use crate::http::Request;
use crate::scripts::HELLO;

const SECOND: Duration = Duration::from_secs(1);
const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

fn config(access_log: &str) -> String {
    format!(
        "listen = '127.0.0.1:0'\n[limits]\nmax_body_bytes = 100\n[access_log]\n{access_log}\n\
         [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
         [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{APP}'], workers = 1 }}\n"
    )
}

/// The file's lines once there are `count` of them, with each `[time]` field as `[T]`.
fn lines(path: &Path, count: usize) -> Vec<String> {
    let read = || fs::read_to_string(path).unwrap_or_default();
    wait_until(5 * SECOND, || read().lines().count() >= count);
    read()
        .lines()
        .map(|line| {
            let (before, rest) = line.split_once(" [").expect("a [time] field");
            let (_, after) = rest.split_once("] ").expect("a [time] field");
            format!("{before} [T] {after}")
        })
        .collect()
}

#[test]
fn every_request_gets_one_combined_line_whoever_ends_it() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    fx.script("crash", "#!/bin/sh\nexit 3\n");
    fx.script(
        "redirect",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/hello\\r\\n\\r\\n'\n",
    );
    let portico = fx.serve_config(&config("path = 'access.log'"), &[]);
    let tagged = Request::get("/cgi-bin/hello?x=1")
        .header("Referer", "http://ref.test/a")
        .header("User-Agent", "probe \"quoted\"/1");
    assert_eq!(portico.send(&tagged).status, 200);
    assert_eq!(portico.get("/cgi-bin/missing").status, 404);
    assert_eq!(
        portico
            .send(&Request::post("/cgi-bin/hello", vec![b'x'; 200]))
            .status,
        413
    );
    assert_eq!(portico.get("/cgi-bin/redirect").text(), "hello\n");
    assert_eq!(portico.get("/cgi-bin/crash").status, 502);
    assert_eq!(portico.send(&Request::head("/cgi-bin/hello")).status, 200);
    assert_eq!(portico.get("/app/hello").text(), "hello\n");

    let logged = lines(&fx.path("access.log"), 7);
    let expected = [
        r#"127.0.0.1 - - [T] "GET /cgi-bin/hello?x=1 HTTP/1.1" 200 6 "http://ref.test/a" "probe \"quoted\"/1""#,
        r#"127.0.0.1 - - [T] "GET /cgi-bin/missing HTTP/1.1" 404 - "-" "-""#,
        r#"127.0.0.1 - - [T] "POST /cgi-bin/hello HTTP/1.1" 413 - "-" "-""#,
        // The request as the client made it, with the answer of the script it turned into.
        r#"127.0.0.1 - - [T] "GET /cgi-bin/redirect HTTP/1.1" 200 6 "-" "-""#,
        r#"127.0.0.1 - - [T] "GET /cgi-bin/crash HTTP/1.1" 502 - "-" "-""#,
        r#"127.0.0.1 - - [T] "HEAD /cgi-bin/hello HTTP/1.1" 200 - "-" "-""#,
        r#"127.0.0.1 - - [T] "GET /app/hello HTTP/1.1" 200 6 "-" "-""#,
    ];
    for line in expected {
        assert!(
            logged.iter().any(|l| l == line),
            "no {line}\nin:\n{}",
            logged.join("\n")
        );
    }
    assert_eq!(logged.len(), expected.len(), "{}", logged.join("\n"));
}

#[test]
fn common_format_and_the_quick_mode_flag() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let portico = fx.serve_config(&config("path = 'common.log'\nformat = 'common'"), &[]);
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
    assert_eq!(
        lines(&fx.path("common.log"), 1),
        [r#"127.0.0.1 - - [T] "GET /cgi-bin/hello HTTP/1.1" 200 6"#]
    );
    drop(portico);

    let flag_log = fx.path("flag.log");
    let quick = fx.serve(&["--access-log", flag_log.to_str().unwrap()]);
    assert_eq!(quick.get("/cgi-bin/hello").status, 200);
    assert_eq!(
        lines(&flag_log, 1),
        [r#"127.0.0.1 - - [T] "GET /cgi-bin/hello HTTP/1.1" 200 6 "-" "-""#]
    );
}

#[test]
fn sighup_lets_go_of_a_rotated_log() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let portico = fx.serve_config(&config("path = 'access.log'"), &[]);
    assert_eq!(portico.get("/cgi-bin/hello?before").status, 200);
    assert_eq!(lines(&fx.path("access.log"), 1).len(), 1);
    // What logrotate does: move the file, then tell the server.
    fs::rename(fx.path("access.log"), fx.path("access.log.1")).unwrap();
    portico.signal(libc::SIGHUP);
    portico.wait_for_log_line(&["config reloaded"], 5 * SECOND);
    assert_eq!(portico.get("/cgi-bin/hello?after").status, 200);
    let fresh = lines(&fx.path("access.log"), 1);
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0].contains("?after"), "{fresh:?}");
    let rotated = lines(&fx.path("access.log.1"), 1);
    assert_eq!(rotated.len(), 1);
    assert!(rotated[0].contains("?before"), "{rotated:?}");
}

#[test]
fn a_log_with_nowhere_to_go_or_an_unknown_format_is_named() {
    let fx = Fixture::new();
    for (access_log, line_key) in [
        ("path = 'no/such/dir/access.log'", ":5: access_log.path: "),
        (
            "path = 'access.log'\nformat = 'fancy'",
            ":6: access_log.format: ",
        ),
    ] {
        let out = fx.check(&config(access_log));
        assert_eq!(out.code, Some(2), "{access_log}: {out:?}");
        assert!(
            out.stderr.contains(line_key),
            "{access_log}: {}",
            out.stderr
        );
    }
}
