//! What the fastcgi-client crate does with a request body larger than the socket buffers.
//!
//! DESIGN.md weighs fastcgi-client 0.12 against an own FastCGI codec. These tests run the
//! crate (tokio flavour) against `tests/fixtures/fcgi_app.py` over a unix socket: first to
//! show the two agree on the protocol, even for a large body the app reads before answering,
//! then to show the crate cannot stream a body in full duplex. Its `handle_request` writes
//! every FCGI_STDIN record before `handle_response` reads the first FCGI_STDOUT record (its
//! `src/client.rs`), so an application that answers as it reads, as the fixture's `/echo`
//! does, deadlocks once both socket buffers are full.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fastcgi_client::{Client, Params, Request, Response};
use tempfile::TempDir;
use tokio::net::UnixStream;

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

/// Far more than a unix socket's send and receive buffers hold together.
const LARGE_BODY_BYTES: usize = 8 << 20;

/// Small enough to sit in the socket buffers while the crate is still writing.
const SMALL_BODY_BYTES: usize = 16 << 10;

/// How long the large echo gets; on loopback it would take well under a second.
const STALL: Duration = Duration::from_secs(5);

/// The fixture application on a unix socket in its own directory, killed on drop.
struct App {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl App {
    fn start() -> App {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("app.sock");
        let mut child = Command::new(APP)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The app prints this line once it is listening.
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("listening on"),
            "fcgi_app.py said {line:?}"
        );
        App {
            child,
            socket,
            _dir: dir,
        }
    }

    /// One request over a fresh connection, without FCGI_KEEP_CONN.
    async fn execute(&self, params: Params<'_>, body: &[u8]) -> Response {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        Client::new_tokio(stream)
            .execute_once(Request::new_tokio(params, body))
            .await
            .unwrap()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(script_name: &'static str, body: &[u8]) -> Params<'static> {
    Params::default()
        .request_method("POST")
        .script_name(script_name)
        .content_length(body.len())
}

/// The crate and the fixture agree: a document, a large body the app reads before it
/// answers, and an echo that fits in the buffers.
#[tokio::test]
async fn crate_works_when_the_app_reads_all_stdin_first_or_the_echo_fits_in_buffers() {
    let app = App::start();

    let hello = app.execute(post("/hello", b""), b"").await;
    assert_eq!(
        hello.stdout.unwrap(),
        b"Content-Type: text/plain\r\n\r\nhello\n"
    );

    let large = vec![b'x'; LARGE_BODY_BYTES];
    let hello = app.execute(post("/hello", &large), &large).await;
    assert!(hello.stdout.unwrap().ends_with(b"hello\n"));

    let body = vec![b'x'; SMALL_BODY_BYTES];
    let echo = app.execute(post("/echo", &body), &body).await;
    let mut expected = b"Content-Type: application/octet-stream\r\n\r\n".to_vec();
    expected.extend_from_slice(&body);
    assert_eq!(echo.stdout, Some(expected));
}

/// fastcgi-client writes all of FCGI_STDIN before it reads any FCGI_STDOUT, so an app that
/// answers as it reads deadlocks once both socket buffers fill: the app blocks writing
/// output nobody reads, the crate blocks writing input the app no longer reads. This is why
/// Portico has its own FastCGI codec.
#[tokio::test]
async fn crate_writes_all_stdin_before_reading_stdout_so_a_large_echo_deadlocks() {
    let app = App::start();

    let body = vec![b'x'; LARGE_BODY_BYTES];
    let echo = tokio::time::timeout(STALL, app.execute(post("/echo", &body), &body)).await;
    assert!(echo.is_err(), "the crate echoed 8 MiB in full duplex");

    // The app is stuck on that one connection only; it still answers on another. (The
    // crate may still be writing its last empty record when the app, its answer sent,
    // closes the connection: a busy machine sees EPIPE for an answered request, so that
    // one is asked again.)
    let mut hello = None;
    for _ in 0..5 {
        let stream = UnixStream::connect(&app.socket).await.unwrap();
        match Client::new_tokio(stream)
            .execute_once(Request::new_tokio(post("/hello", b""), &b""[..]))
            .await
        {
            Ok(response) => {
                hello = Some(response);
                break;
            }
            Err(e) => eprintln!("asking again: {e}"),
        }
    }
    let hello = hello.expect("an answer on another connection");
    assert!(hello.stdout.unwrap().ends_with(b"hello\n"));
}
