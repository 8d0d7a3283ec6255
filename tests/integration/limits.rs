//! How much a client may send: a request body over `max_body_bytes` is 413 before any
//! script runs, whether announced by Content-Length or found out while reading chunks,
//! and one of exactly that size is served; a header section over `max_header_bytes` is
//! 431, from the default limit or the config file's. How long a client may take to send
//! its head is `clients.rs`; how long a script may take is `deadlines.rs`.

use crate::harness::{Fixture, Portico};
use crate::http::Request;
use crate::scripts::{HELLO, LENGTH_AND_ECHO};

#[test]
fn body_over_max_body_bytes_is_413_and_runs_no_script() {
    let fx = Fixture::new();
    let ran = fx.path("ran");
    fx.script(
        "upload",
        &format!(
            "#!/bin/sh\n: > '{}'\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec head -c \"${{CONTENT_LENGTH:-0}}\"\n",
            ran.display()
        ),
    );
    let portico = fx.serve(&["--max-body-bytes", "1000"]);
    let cases = [
        (
            "Content-Length of 5000",
            Request::post("/cgi-bin/upload", vec![b'x'; 5000]),
        ),
        (
            "three chunks of 1000",
            Request::new("POST", "/cgi-bin/upload").chunked(vec![
                vec![b'a'; 1000],
                vec![b'b'; 1000],
                vec![b'c'; 1000],
            ]),
        ),
    ];
    for (case, request) in cases {
        let response = portico.send(&request);
        assert_eq!(response.status, 413, "{case}; log:\n{}", portico.log());
        assert!(
            !ran.exists(),
            "{case}: the script ran for a body over the limit"
        );
    }
}

#[test]
fn body_of_exactly_max_body_bytes_is_accepted() {
    let fx = Fixture::new();
    fx.script("length-and-echo", LENGTH_AND_ECHO);
    let portico = fx.serve(&["--max-body-bytes", "1000"]);
    let response = portico.send(&Request::post("/cgi-bin/length-and-echo", vec![b'x'; 1000]));
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.body.len(), "length=1000\n".len() + 1000);
}

#[test]
fn header_section_over_max_header_bytes_is_431() {
    // A configured 9000 lies between the floor of 8192 and the default of 16384, so a
    // header of 8500 or 9500 bytes tells the configured limit from both.
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let default = fx.serve(&[]);
    let configured = fx.serve_config(
        r#"
[limits]
max_header_bytes = 9000

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let cases: [(&str, &Portico, usize, u16); 4] = [
        ("default limit, 20000 bytes", &default, 20_000, 431),
        ("default limit, 6000 bytes", &default, 6_000, 200),
        ("configured 9000, 9500 bytes", &configured, 9_500, 431),
        ("configured 9000, 8500 bytes", &configured, 8_500, 200),
    ];
    for (case, portico, size, status) in cases {
        let request = Request::get("/cgi-bin/hello").header("X-Big", &"a".repeat(size));
        let response = portico.send(&request);
        assert_eq!(response.status, status, "{case}; log:\n{}", portico.log());
        if status == 200 {
            assert_eq!(response.text(), "hello\n", "{case}");
        }
    }
}
