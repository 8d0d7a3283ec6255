//! The repository's `cgi-bin/` examples, served from a copy, answer as their header
//! comments say: the same document in sh, Perl, Python and C, echoes, a CGI.pm form,
//! redirects, cookies, Status, NPH, streaming, and a large body.

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, Portico};
use crate::http::{Framing, Request, contains};
use crate::scripts::parse_env;

fn serve_examples() -> (Fixture, Portico) {
    let fx = Fixture::new();
    fx.c_examples();
    let portico = fx.serve(&[]);
    (fx, portico)
}

#[test]
fn hello_answers_the_same_in_sh_perl_python_and_c() {
    let (_fx, portico) = serve_examples();
    for script in ["hello.sh", "hello.pl", "hello.py", "hello-c"] {
        let response = portico.get(&format!("/cgi-bin/{script}"));
        assert_eq!(response.status, 200, "{script}; log:\n{}", portico.log());
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain"),
            "{script}"
        );
        assert_eq!(response.text(), "hello\n", "{script}");
    }
}

#[test]
fn echo_in_c_and_python_returns_a_1_mib_body_exactly() {
    let (_fx, portico) = serve_examples();
    let body: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    for script in ["echo-c", "echo.py"] {
        let response = portico.send(&Request::post(&format!("/cgi-bin/{script}"), body.clone()));
        assert_eq!(response.status, 200, "{script}; log:\n{}", portico.log());
        assert_eq!(
            response.framing,
            Framing::Length(body.len() as u64),
            "{script}"
        );
        assert!(response.body == body, "{script} echoed different bytes");
    }
}

#[test]
fn perl_cgi_pm_form_greets_the_posted_name_escaped() {
    let (_fx, portico) = serve_examples();
    let form = portico.get("/cgi-bin/form.pl");
    assert_eq!(form.status, 200, "{}", portico.log());
    assert!(form.text().contains("<form"), "{}", form.text());

    let request = Request::post("/cgi-bin/form.pl", "name=%3Cb%3EAda%3C%2Fb%3E")
        .header("Content-Type", "application/x-www-form-urlencoded");
    let response = portico.send(&request);
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains("Hello, &lt;b&gt;Ada&lt;/b&gt;"),
        "{}",
        response.text()
    );
}

#[test]
fn printenv_lists_the_meta_variables() {
    let (fx, portico) = serve_examples();
    let target = "/cgi-bin/printenv.sh/extra/path?x=1&y=two";
    let mut connection = portico.connect();
    let client = connection.local_addr();
    let response = connection.round_trip(&Request::get(target));
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.header("Content-Type"), Some("text/plain"));
    let env = parse_env(&response.text());
    let server_port = portico.addr().port().to_string();
    let remote_port = client.port().to_string();
    let expected = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "portico.test"),
        ("SERVER_PORT", &server_port),
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", "x=1&y=two"),
        ("SCRIPT_NAME", "/cgi-bin/printenv.sh"),
        ("PATH_INFO", "/extra/path"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", &remote_port),
        ("REQUEST_URI", target),
    ];
    for (name, value) in expected {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert!(
        env.get("SERVER_SOFTWARE").is_some_and(|s| !s.is_empty()),
        "SERVER_SOFTWARE in {env:?}"
    );
    let filename = env.get("SCRIPT_FILENAME").expect("SCRIPT_FILENAME is set");
    assert_eq!(
        fs::canonicalize(filename).unwrap(),
        fs::canonicalize(fx.cgi_dir().join("printenv.sh")).unwrap()
    );
}

#[test]
fn redirect_example_is_served_as_hello_inside_portico() {
    let (_fx, portico) = serve_examples();
    let response = portico.get("/cgi-bin/redirect.sh");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello\n");
}

#[test]
fn client_redirect_example_is_302_with_its_page() {
    let (_fx, portico) = serve_examples();
    let response = portico.get("/cgi-bin/client-redirect.sh");
    assert_eq!(response.status, 302);
    assert_eq!(response.header("Location"), Some("http://example.invalid/"));
    assert!(response.text().contains("Moved"), "{}", response.text());
}

#[test]
fn cookies_example_sets_two_cookies() {
    let (_fx, portico) = serve_examples();
    let response = portico.get("/cgi-bin/cookies.sh");
    assert_eq!(
        response.header_values("Set-Cookie"),
        ["flavour=oatmeal; Path=/", "count=1; Path=/; HttpOnly"]
    );
}

#[test]
fn status_example_is_418_with_its_reason_phrase() {
    let (_fx, portico) = serve_examples();
    let response = portico.get("/cgi-bin/status.sh");
    assert_eq!(response.status, 418);
    assert_eq!(response.reason, "I'm a teapot");
    assert_eq!(response.text(), "I'm a teapot\n");
}

#[test]
fn nph_example_writes_its_own_status_line() {
    let (_fx, portico) = serve_examples();
    let mut connection = portico.connect();
    connection.send(&Request::get("/cgi-bin/nph-hello.sh"));
    let raw = connection.read_to_end_raw().unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(contains(&raw, b"\r\nX-NPH: yes\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\nhello from nph\n"), "{text:?}");
}

#[test]
fn stream_example_sends_every_line() {
    let (_fx, portico) = serve_examples();
    let response = portico.get("/cgi-bin/stream.sh?n=3&delay=0.1");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "line 1\nline 2\nline 3\n");
}

#[test]
fn stream_example_line_reaches_the_client_before_the_script_ends() {
    // Three lines a second apart: were the body held back until the script ended, the
    // first line would come two seconds late, together with the last.
    let (_fx, portico) = serve_examples();
    let request = Request::get("/cgi-bin/stream.sh?n=3&delay=1");
    let mut connection = portico.connect();
    let sent = Instant::now();
    connection.send(&request);
    let head = connection.read_head().unwrap();
    assert_eq!(head.status, 200, "{}", portico.log());
    let mut body = Vec::new();
    let mut first_line = None;
    let complete = connection
        .read_body_with(head.framing(request.method()), &mut |bytes| {
            body.extend_from_slice(bytes);
            if first_line.is_none() && contains(&body, b"line 1\n") {
                first_line = Some(sent.elapsed());
            }
        })
        .unwrap();
    let whole = sent.elapsed();
    assert!(complete);
    assert_eq!(String::from_utf8_lossy(&body), "line 1\nline 2\nline 3\n");
    let first_line = first_line.expect("the first line arrived");
    assert!(
        first_line < Duration::from_secs(1),
        "first line after {first_line:?}"
    );
    assert!(
        whole >= Duration::from_secs(2),
        "whole response after {whole:?}"
    );
}

#[test]
fn big_c_example_streams_the_requested_size() {
    let (_fx, portico) = serve_examples();
    let response = portico.get("/cgi-bin/big-c?bytes=3000000");
    assert_eq!(response.status, 200);
    assert_eq!(response.framing, Framing::Chunked);
    assert!(response.complete);
    assert_eq!(response.body.len(), 3_000_000);
    assert!(response.body.iter().all(|b| *b == b'x'));
}
