//! FastCGI mounts to applications Portico does not run: the same meta-variables as
//! FCGI_PARAMS, the body as FCGI_STDIN in full duplex, FCGI_STDOUT through the CGI head
//! parser, FCGI_STDERR to the log. The application is `tests/fixtures/fcgi_app.py`.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{Fixture, Portico};
use crate::http::{Framing, Request};

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

/// The fixture application on `socket`, killed on drop; `upstreams` runs several.
pub struct App(Child);

impl App {
    pub fn start(socket: &Path) -> App {
        App::start_with(socket, &[])
    }

    /// With more of the fixture's flags (`--mpxs`).
    pub fn start_with(socket: &Path, flags: &[&str]) -> App {
        let mut child = Command::new(APP)
            .args(flags)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the FastCGI fixture");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on"),
            "fcgi_app.py said {line:?}"
        );
        App(child)
    }

    /// The application's process, which `/conn` names as `pid=`.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Portico with `/fcgi` (one app for the whole mount) and `/split` (nginx-style
/// `.php` split, SCRIPT_FILENAME under `root`) in front of one running app.
fn serve(fx: &Fixture, extra: &str) -> (App, Portico) {
    let app = App::start(&fx.path("app.sock"));
    fx.dir("docroot");
    let config = format!(
        r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"

[[fastcgi]]
mount = "/fcgi"
upstream = "unix:app.sock"
script = "docroot/app.py"
params = {{ APP_ENV = "test" }}

[[fastcgi]]
mount = "/split"
upstream = "unix:app.sock"
root = "docroot"
split_path_info = ".php"
{extra}
"#
    );
    (app, fx.serve_config(&config, &[]))
}

fn env_lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn hello_through_a_fastcgi_mount() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    let response = portico.get("/fcgi/hello");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("text/plain"));
    assert_eq!(response.text(), "hello\n");
    portico.wait_for_log_line(
        &[
            "path=/fcgi/hello",
            "status=200",
            "upstream=",
            "app_status=0",
        ],
        Duration::from_secs(5),
    );
}

/// A response that is all in hand when its head is (one write from the app) goes out
/// with a Content-Length; one still arriving is streamed, chunked.
#[test]
fn whole_response_gets_a_length_and_a_streamed_one_is_chunked() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    for _ in 0..5 {
        let response = portico.get("/fcgi/whole");
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "hello\n");
        assert_eq!(
            response.framing,
            Framing::Length(6),
            "{:?}",
            response.headers
        );
    }
    let response = portico.get("/fcgi/big?3000000");
    assert_eq!(response.status, 200);
    assert_eq!(response.framing, Framing::Chunked, "{:?}", response.headers);
    assert!(response.complete);
    assert_eq!(response.body.len(), 3_000_000);
}

#[test]
fn params_carry_the_meta_variables_and_the_mounts_extra_params() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    let request = Request::get("/fcgi/env?x=1%202").header("X-Custom", "v");
    let response = portico.send(&request);
    assert_eq!(response.status, 200);
    let text = response.text();
    let lines = env_lines(&text);
    let root = fx.path("docroot").canonicalize().unwrap();
    for want in [
        "GATEWAY_INTERFACE=CGI/1.1".to_owned(),
        "REQUEST_METHOD=GET".to_owned(),
        "SCRIPT_NAME=/fcgi".to_owned(),
        "PATH_INFO=/env".to_owned(),
        "QUERY_STRING=x=1%202".to_owned(),
        "REQUEST_URI=/fcgi/env?x=1%202".to_owned(),
        "HTTP_X_CUSTOM=v".to_owned(),
        "APP_ENV=test".to_owned(),
        format!("SCRIPT_FILENAME={}", root.join("app.py").display()),
    ] {
        assert!(lines.contains(&want.as_str()), "missing {want:?} in {text}");
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("CONTENT_LENGTH=")),
        "{text}"
    );
}

#[test]
fn split_path_info_ends_script_name_at_the_suffix() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    let text = portico.get("/split/sub/page.php/env").text();
    let lines = env_lines(&text);
    let root = fx.path("docroot").canonicalize().unwrap();
    assert!(lines.contains(&"SCRIPT_NAME=/split/sub/page.php"), "{text}");
    assert!(lines.contains(&"PATH_INFO=/env"), "{text}");
    let filename = format!("SCRIPT_FILENAME={}", root.join("sub/page.php").display());
    assert!(lines.contains(&filename.as_str()), "{text}");
}

#[test]
fn traversal_never_reaches_the_application() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    for (target, status) in [
        ("/split/../x.php/env", 403),
        ("/split/%2e%2e/x.php/env", 403),
        ("/split/x.php%00/env", 400),
    ] {
        let mut connection = portico.connect();
        connection.send_raw(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(connection.read_response("GET").status, status, "{target}");
    }
}

#[test]
fn large_body_streams_in_full_duplex() {
    // The app writes each FCGI_STDIN record back before reading the next: a client that
    // sends the whole body first deadlocks here (see tests/fastcgi_client_crate.rs).
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    let body: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut connection = portico.connect();
    connection.set_read_timeout(Duration::from_secs(20));
    let response = connection.round_trip(&Request::post("/fcgi/echo", body.clone()));
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "echoed body differs");
}

#[test]
fn chunked_body_is_spooled_and_sent_with_its_length() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    let mut connection = portico.connect();
    connection.send_raw(
        b"POST /fcgi/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let response = connection.read_response("POST");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello world");
}

#[test]
fn app_stderr_goes_to_the_log_with_the_upstream() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    assert_eq!(portico.get("/fcgi/stderr").status, 200);
    portico.wait_for_log_line(
        &["portico::stderr", "upstream=unix:"],
        Duration::from_secs(5),
    );
}

#[test]
fn unreachable_upstreams_are_502() {
    let fx = Fixture::new();
    let extra = r#"
[[fastcgi]]
mount = "/refused"
upstream = "tcp:127.0.0.1:1"
script = "x"

[[fastcgi]]
mount = "/missing"
upstream = "unix:no-such.sock"
script = "x"
"#;
    let (_app, portico) = serve(&fx, extra);
    for target in ["/refused/x", "/missing/x"] {
        let response = portico.get(target);
        assert_eq!(response.status, 502, "{target}");
        assert!(
            !response.text().contains("sock"),
            "{target}: {}",
            response.text()
        );
    }
    portico.wait_for_log_line(
        &["path=/refused/x", "status=502", "Connection refused"],
        Duration::from_secs(5),
    );
}

#[test]
fn silent_upstream_is_504_after_read_timeout() {
    let fx = Fixture::new();
    // Accepts connections and never answers.
    let listener = UnixListener::bind(fx.path("silent.sock")).unwrap();
    let extra = r#"
[[fastcgi]]
mount = "/silent"
upstream = "unix:silent.sock"
script = "x"
read_timeout_seconds = 0.5
"#;
    let (_app, portico) = serve(&fx, extra);
    let response = portico.get("/silent/x");
    assert_eq!(response.status, 504);
    portico.wait_for_log_line(
        &["path=/silent/x", "status=504", "head deadline"],
        Duration::from_secs(5),
    );
    drop(listener);
}

#[test]
fn bad_upstream_is_a_config_error_naming_the_key() {
    let fx = Fixture::new();
    let config =
        fx.config("[[fastcgi]]\nmount = \"/f\"\nupstream = \"http://x\"\nscript = \"x\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("portico.toml:3: fastcgi[0].upstream"),
        "{stderr}"
    );
}

#[test]
fn client_that_leaves_before_the_head_aborts_the_request() {
    use std::io::Read;
    let fx = Fixture::new();
    let listener = UnixListener::bind(fx.path("slow.sock")).unwrap();
    let extra = r#"
[[fastcgi]]
mount = "/slow"
upstream = "unix:slow.sock"
script = "x"
read_timeout_seconds = 30
"#;
    let (_app, portico) = serve(&fx, extra);
    let mut client = portico.connect();
    client.send(&Request::get("/slow/x"));
    // First Portico asks the app's limits on a connection of its own (FCGI_GET_VALUES);
    // this app does not answer and closes it.
    let (mut probe, _) = listener.accept().unwrap();
    let mut header = [0u8; 8];
    probe.read_exact(&mut header).unwrap();
    assert_eq!(
        &header[..4],
        &[1, 9, 0, 0],
        "FCGI_GET_VALUES on request id 0"
    );
    drop(probe);
    let (mut app_side, _) = listener.accept().unwrap();
    app_side
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The request is under way once its BEGIN_REQUEST record has arrived.
    let mut begin = [0u8; 16];
    app_side.read_exact(&mut begin).unwrap();
    assert_eq!(&begin[..2], &[1, 1], "FCGI_VERSION_1, FCGI_BEGIN_REQUEST");
    client.shutdown();
    drop(client);
    // FCGI_ABORT_REQUEST, then end of file when the app does not end the request within
    // the abort grace: long before the 30 s read timeout.
    let mut received = Vec::new();
    app_side
        .read_to_end(&mut received)
        .unwrap_or_else(|e| panic!("no EOF within 5 s ({e}); log:\n{}", portico.log()));
    assert!(
        received.windows(8).any(|r| r == [1, 2, 0, 1, 0, 0, 0, 0]),
        "no FCGI_ABORT_REQUEST for request 1 in {received:?}"
    );
    portico.wait_for_log_line(&["path=/slow/x", "client gone"], Duration::from_secs(5));
}

#[test]
fn local_redirect_from_an_app_is_followed_inside_portico() {
    let fx = Fixture::new();
    let (_app, portico) = serve(&fx, "");
    let response = portico.get("/fcgi/redirect");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello\n");
    assert!(!portico.log().contains("client gone"), "{}", portico.log());
}
