//! `portico explain`: one request shown as CGI, FastCGI records and a WSGI environ.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Fixture, PORTICO};

fn explain(fx: &Fixture, args: &[&str]) -> (bool, String) {
    let config = fx.config(&crate::wsgi::config(1, ""));
    let output = Command::new(PORTICO)
        .arg("explain")
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .expect("portico explain runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn a_cgi_request_is_shown_in_all_six_parts_with_secrets_masked() {
    let fx = Fixture::new();
    let (ok, text) = explain(
        &fx,
        &[
            "GET",
            "/cgi-bin/printenv.sh/a/b?x=1",
            "-H",
            "Cookie: session=s3cret",
        ],
    );
    assert!(ok, "{text}");
    for part in [
        "1. Route: a cgi mount at /cgi-bin",
        "SCRIPT_NAME     = /cgi-bin/printenv.sh",
        "PATH_INFO       = /a/b",
        "2. Meta-variables",
        "RFC 3875 §4.1.7",
        "3. As CGI",
        "| Content-Type: text/plain",
        "response type: document response (RFC 3875 §6.2.1)",
        "4. As FastCGI records",
        "FCGI_BEGIN_REQUEST  request id 1  8 bytes",
        "5. As a WSGI environ (PEP 3333)",
        "wsgi.version       (1, 0)",
        "/cgi-bin/printenv.sh spawned by Portico's CGI backend as pid",
        "6. Time (status 200)",
        "last byte",
    ] {
        assert!(text.contains(part), "{part:?} missing from\n{text}");
    }
    assert!(!text.contains("s3cret"), "the cookie is masked:\n{text}");
    let (_, shown) = explain(
        &fx,
        &[
            "--show-secrets",
            "GET",
            "/cgi-bin/printenv.sh",
            "-H",
            "Cookie: session=s3cret",
        ],
    );
    assert!(shown.contains("session=s3cret"), "{shown}");
}

#[test]
fn each_response_type_is_named() {
    let fx = Fixture::new();
    fx.script(
        "away",
        "#!/bin/sh\nprintf 'Location: http://example.invalid/\\n\\n'\n",
    );
    for (path, kind) in [
        ("/cgi-bin/hello.sh", "document response (RFC 3875 §6.2.1)"),
        (
            "/cgi-bin/redirect.sh",
            "local redirect response (RFC 3875 §6.2.2)",
        ),
        (
            "/cgi-bin/away",
            "client redirect response (RFC 3875 §6.2.3)",
        ),
        (
            "/cgi-bin/client-redirect.sh",
            "client redirect response with document (RFC 3875 §6.2.4)",
        ),
        (
            "/cgi-bin/nph-hello.sh",
            "NPH: the script's own HTTP response (RFC 3875 §5)",
        ),
    ] {
        let (ok, text) = explain(&fx, &["GET", path]);
        assert!(
            ok && text.contains(kind),
            "{path}: {kind:?} missing from\n{text}"
        );
    }
}

#[test]
fn a_posted_body_becomes_content_length_and_fcgi_stdin() {
    let fx = Fixture::new();
    let (ok, text) = explain(
        &fx,
        &["--json", "POST", "/cgi-bin/echo.py", "--data", "a=1&b=22"],
    );
    assert!(ok, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let var = |name: &str| {
        json["meta_variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .map(|v| v["value"].clone())
    };
    assert_eq!(var("CONTENT_LENGTH"), Some(Value::from("8")));
    assert_eq!(var("REQUEST_METHOD"), Some(Value::from("POST")));
    let stdin: Vec<u64> = json["fastcgi_records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "FCGI_STDIN")
        .map(|r| r["content_length"].as_u64().unwrap())
        .collect();
    assert_eq!(
        stdin,
        [8, 0],
        "the body, then the empty record that ends the stream"
    );
}

#[test]
fn a_wsgi_route_runs_on_its_workers() {
    let fx = Fixture::new();
    let (ok, text) = explain(&fx, &["--json", "GET", "/wsgi/env"]);
    assert!(ok, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(json["route"]["kind"], "wsgi");
    assert_eq!(json["route"]["script_name"], "/wsgi");
    assert_eq!(json["route"]["path_info"], "/env");
    assert_eq!(json["status"], 200);
    assert!(json["cgi"].is_null());
    let timing = &json["timing_ms"];
    assert!(
        timing["first_byte"].as_f64() <= timing["last_byte"].as_f64(),
        "{timing}"
    );
    let environ = json["wsgi_environ"].as_array().unwrap();
    assert!(
        environ
            .iter()
            .any(|p| p[0] == "wsgi.multiprocess" && p[1] == "True")
    );
}

#[test]
fn a_path_without_a_script_is_an_error() {
    let fx = Fixture::new();
    let (ok, text) = explain(&fx, &["GET", "/cgi-bin/no-such-script"]);
    assert!(!ok);
    assert!(text.contains("no script at this path"), "{text}");
}

#[test]
fn a_body_of_several_mib_that_the_script_echoes_does_not_deadlock() {
    // The script writes its output while it reads its input: a client that wrote the whole
    // body before reading would wait on a full pipe that the script waits on too.
    let fx = Fixture::new();
    let config = fx.config(&crate::wsgi::config(1, ""));
    let length = 6 << 20;
    let body = fx.path("body.bin");
    std::fs::write(
        &body,
        (0..length).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    let out = fx.path("explain.json");
    let mut child = Command::new(PORTICO)
        .arg("explain")
        .arg("--config")
        .arg(&config)
        .args(["--json", "POST", "/cgi-bin/echo.py", "--data-file"])
        .arg(&body)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("portico explain runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("explain still running after 60 s: deadlocked");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(status.success(), "{text}");
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(json["status"], 200);
    assert_eq!(
        json["response_body_bytes"], length,
        "the whole body came back"
    );
    assert_eq!(json["response_complete"], true);
    let stdin: u64 = json["fastcgi_records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "FCGI_STDIN")
        .map(|r| r["content_length"].as_u64().unwrap())
        .sum();
    assert_eq!(stdin, length, "the body as FCGI_STDIN records");
}

#[test]
fn a_local_redirect_names_the_path_that_answered() {
    let fx = Fixture::new();
    let (ok, text) = explain(&fx, &["--json", "GET", "/cgi-bin/redirect.sh"]);
    assert!(ok, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let cgi = &json["cgi"];
    assert!(
        cgi["response_type"]
            .as_str()
            .unwrap()
            .ends_with("Portico served /cgi-bin/hello.sh instead"),
        "{cgi}"
    );
    assert_eq!(cgi["script"]["script_name"], "/cgi-bin/hello.sh", "{cgi}");
    assert!(cgi["script"]["pid"].as_u64().unwrap() > 0, "{cgi}");
}
