//! PEP 3333 conformance of Portico's WSGI adapter (`src/wsgi/portico_wsgi.py`).
//!
//! The app, `tests/fixtures/wsgi_conformance.py`, is wrapped in `wsgiref.validate`, which
//! checks the environ, start_response, write(), wsgi.input, the iterable and its close()
//! as each is used; its warnings are errors. A broken rule is then a 500 or a line in the
//! app's record file, and every test ends by checking that neither happened.
//!
//! Every test runs twice: in `one_thread`, on a worker of one thread (the default), and in
//! `four_threads`, on a worker serving its connections in four threads (`threads = 4`).

use std::time::Duration;

use crate::harness::{Fixture, Portico};
use crate::http::{Framing, Request};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The tests below, each run on a worker of one thread and on one of four.
macro_rules! on_one_and_four_threads {
    ($($test:ident),* $(,)?) => {
        mod one_thread {
            $(#[test] fn $test() { super::$test(1) })*
        }
        mod four_threads {
            $(#[test] fn $test() { super::$test(4) })*
        }
    };
}

on_one_and_four_threads!(
    a_get_passes_the_validator,
    a_post_body_is_read_whole_through_wsgi_input,
    a_generator_streams_every_chunk,
    close_is_called_once_per_response,
    the_write_callable_and_the_iterable_make_one_body,
    exc_info_before_the_head_is_sent_replaces_the_status,
    exc_info_after_the_head_is_sent_re_raises_and_cuts_the_response,
    an_apps_own_connection_error_is_a_500_with_its_traceback_logged,
    a_non_ascii_path_arrives_as_its_bytes_in_latin_1,
);

/// Portico serving the validated app at `/wsgi/app`, and the file the app records in.
struct Validated {
    portico: Portico,
    record: std::path::PathBuf,
}

impl Validated {
    /// One worker of `threads` threads; one is the key left unset, the default.
    fn start(fx: &Fixture, threads: usize) -> Validated {
        let record = fx.path("record");
        let threads = match threads {
            1 => String::new(),
            n => format!("threads = {n}"),
        };
        let toml = format!(
            r#"
[[wsgi]]
mount = "/wsgi/app"
app = "wsgi_conformance:application"
path = ["{FIXTURES}"]
workers = 1
{threads}
env = {{ CONFORMANCE_RECORD = "{}" }}
"#,
            record.display()
        );
        Validated {
            portico: fx.serve_config(&toml, &[]),
            record,
        }
    }

    fn recorded(&self) -> String {
        std::fs::read_to_string(&self.record).unwrap_or_default()
    }

    /// Nothing the validator could only report outside a request, and no failed check or
    /// warning in the log. `traceback` names the one exception a test provoked on purpose.
    fn assert_conformant(&self, traceback: Option<&str>) {
        let recorded = self.recorded();
        assert!(
            !recorded.contains("unraisable"),
            "{recorded}\nlog:\n{}",
            self.portico.log()
        );
        let log = self.portico.log();
        for needle in ["AssertionError", "WSGIWarning", "without being closed"] {
            assert!(!log.contains(needle), "{needle} in the log:\n{log}");
        }
        if traceback.is_none() {
            assert!(!log.contains("Traceback"), "{log}");
        }
    }
}

fn a_get_passes_the_validator(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    let response = app.portico.get("/wsgi/app/get?a=1&b=2");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "GET /get a=1&b=2")
    );
    // PEP 3333 requires QUERY_STRING-less requests to pass too (the validator warns if the
    // key is missing, and a warning is an error here).
    assert_eq!(app.portico.get("/wsgi/app/get").text(), "GET /get ");
    app.assert_conformant(None);
}

fn a_post_body_is_read_whole_through_wsgi_input(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    // Larger than a FastCGI record (64 KiB) and than the adapter's read buffer.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let response = app.portico.send(
        &Request::post("/wsgi/app/post", body.clone())
            .header("Content-Type", "application/octet-stream"),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let want = format!("{} {}", body.len(), sha256_hex(&body));
    assert_eq!(response.text(), want);
    app.assert_conformant(None);
}

fn a_generator_streams_every_chunk(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    let response = app.portico.get("/wsgi/app/stream?n=8");
    assert_eq!(response.status, 200);
    assert!(response.complete, "{response:?}");
    // The chunks were written as the generator yielded them, 20 ms apart: no length
    // was known when the head went out.
    assert_eq!(response.framing, Framing::Chunked);
    let want: String = (0..8).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(response.text(), want);
    app.assert_conformant(None);
}

fn close_is_called_once_per_response(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    for id in ["a", "b", "c"] {
        let response = app.portico.get(&format!("/wsgi/app/close?id={id}"));
        assert_eq!(response.text(), format!("closing {id}"));
    }
    // PEP 3333: "the server must call close() ... upon completion of the current request".
    // The adapter drops the iterable before END_REQUEST, so the record is complete here.
    let closes: Vec<String> = app
        .recorded()
        .lines()
        .filter(|l| l.starts_with("close "))
        .map(str::to_owned)
        .collect();
    assert_eq!(closes, ["close a", "close b", "close c"]);
    app.assert_conformant(None);
}

fn the_write_callable_and_the_iterable_make_one_body(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    let response = app.portico.get("/wsgi/app/write");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "one two three")
    );
    app.assert_conformant(None);
}

fn exc_info_before_the_head_is_sent_replaces_the_status(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    let response = app.portico.get("/wsgi/app/exc-before");
    assert_eq!(
        (response.status, response.text().as_str()),
        (503, "replaced")
    );
    app.assert_conformant(None);
}

fn exc_info_after_the_head_is_sent_re_raises_and_cuts_the_response(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    let mut conn = app.portico.connect();
    let request = Request::get("/wsgi/app/exc-after");
    conn.send(&request);
    let head = conn
        .read_head()
        .expect("the head went out before the error");
    assert_eq!(head.status, 200);
    let mut body = Vec::new();
    let complete = conn
        .read_body_with(head.framing("GET"), &mut |b| body.extend_from_slice(b))
        .unwrap_or(false);
    let body = String::from_utf8_lossy(&body);
    // PEP 3333: start_response re-raises, so the app never sends its last chunk, and the
    // client must not take the part it got for the whole response.
    assert!(!body.contains("did not re-raise"), "{body}");
    assert!(!complete, "a failed response arrived as whole: {body:?}");
    app.portico.wait_for_log_line(
        &["ValueError: conformance: failed after the head was sent"],
        Duration::from_secs(5),
    );
    // The worker goes on serving.
    assert_eq!(app.portico.get("/wsgi/app/get").status, 200);
    app.assert_conformant(Some("ValueError"));
}

fn an_apps_own_connection_error_is_a_500_with_its_traceback_logged(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    let response = app.portico.get("/wsgi/app/refused");
    assert_eq!(response.status, 500, "{}", response.text());
    app.portico.wait_for_log_line(
        &["ConnectionRefusedError: conformance: the database refused"],
        Duration::from_secs(5),
    );
    app.assert_conformant(Some("ConnectionRefusedError"));
}

fn a_non_ascii_path_arrives_as_its_bytes_in_latin_1(threads: usize) {
    let fx = Fixture::new();
    let app = Validated::start(&fx, threads);
    let response = app.portico.get("/wsgi/app/caf%C3%A9?q=%C3%A9");
    assert_eq!(response.status, 200, "{}", response.text());
    // PEP 3333 (unicode issues): environ values are native strings holding the bytes
    // decoded as latin-1, so PATH_INFO is '/caf\xc3\xa9', which encoded back as latin-1 is
    // the UTF-8 of '/café'; the query stays percent-encoded and decodes to 'é'.
    assert_eq!(response.text(), "/café\n'/caf\\xc3\\xa9'\né");
    app.assert_conformant(None);
}

#[test]
fn flask_routes_a_non_ascii_path() {
    let fx = Fixture::new();
    let python = crate::wsgi::venv_python();
    fx.file(
        "apps/cafe.py",
        "from flask import Flask, request\n\napp = Flask(__name__)\n\n\n\
         @app.route(\"/café\")\ndef cafe():\n    return \"café \" + request.args[\"q\"]\n",
        0o644,
    );
    let portico = fx.serve_config(
        &format!(
            "[[wsgi]]\nmount = \"/flask\"\napp = \"cafe:app\"\npython = \"{}\"\npath = [\"apps\"]\nworkers = 1\n",
            python.display()
        ),
        &[],
    );
    // Werkzeug undoes PEP 3333's latin-1 and decodes the path as UTF-8.
    let response = portico.get("/flask/caf%C3%A9?q=%C3%A9");
    assert_eq!((response.status, response.text().as_str()), (200, "café é"));
}

/// SHA-256 by the Python the tests run anyway, so the tests need no hashing crate.
pub fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
