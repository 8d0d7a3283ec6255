//! FastCGI applications that fail: kept connections closed as they are reused, a listen
//! queue that overflows, a connection dropped before the head or in the middle of the
//! body, an app that crashes or is stopped while requests wait for it. Every answer is
//! checked: the right body, or the status the contract gives (502 when the app failed
//! the request, 503 when it is stopped), never a hang, never a cut body that looks whole.
//! The application is `tests/fixtures/fcgi_faults.py`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, Portico};
use crate::http::{Connection, Framing, Request, Response};

const FAULTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_faults.py");

/// How long any one answer may take: far below the 30 s read deadline a lost request
/// would wait for.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The fault application on `socket` with `flags`, killed on drop.
pub struct Faults(Child);

impl Faults {
    pub fn start(socket: &Path, flags: &[&str]) -> Faults {
        let mut child = Command::new(FAULTS)
            .args(flags)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the fault fixture");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the fixture says where it listens");
        assert!(
            line.starts_with("listening on"),
            "fcgi_faults.py said {line:?}"
        );
        Faults(child)
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, signal) };
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Portico with `/app` in front of the fault app on `app.sock`.
fn serve(fx: &Fixture) -> Portico {
    fx.serve_config(
        r#"
[[fastcgi]]
mount = "/app"
upstream = "unix:app.sock"
script = "app"
"#,
        &[],
    )
}

/// One request on a connection of its own, answered within `ANSWER_WITHIN`.
fn ask(portico: &Portico, request: &Request) -> Response {
    let mut conn = Connection::open(portico.addr());
    conn.set_read_timeout(ANSWER_WITHIN);
    conn.send(request);
    conn.try_read_response(request.method())
        .unwrap_or_else(|e| panic!("no answer to {request:?}: {e}\n{}", portico.log()))
}

/// `n` requests at once, each from its own thread; the answers in order.
fn burst(portico: &Portico, requests: Vec<Request>) -> Vec<Response> {
    thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|request| scope.spawn(move || ask(portico, request)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    })
}

fn hello(round: usize, i: usize) -> (Request, String) {
    let id = format!("{round}-{i}");
    (
        Request::get(&format!("/app/hello?{id}")),
        format!("hello {id}\n"),
    )
}

/// The right body, whole.
fn assert_hello(response: &Response, expected: &str, portico: &Portico) {
    assert!(
        response.status == 200 && response.complete && response.text() == expected,
        "wanted {expected:?}, got {} {:?} (complete: {})\n{}",
        response.status,
        response.text(),
        response.complete,
        portico.log()
    );
}

#[test]
fn bursts_to_an_app_that_closes_kept_connections_lose_no_request() {
    let fx = Fixture::new();
    let _app = Faults::start(&fx.path("app.sock"), &["--close-kept", "0.3"]);
    let portico = serve(&fx);
    let (mut posts_ok, mut posts_502) = (0, 0);
    for round in 0..20 {
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        for i in 0..100 {
            let (request, body) = hello(round, i);
            requests.push(request);
            expected.push(body);
        }
        for i in 0..20 {
            requests.push(Request::post("/app/echo", format!("post {round}-{i}")));
        }
        let answers = burst(&portico, requests);
        for (answer, expected) in answers.iter().zip(&expected) {
            assert_hello(answer, expected, &portico);
        }
        // A POST whose kept connection ended under it may have been processed: it is never
        // sent twice, so it gets its echo or a 502, nothing else.
        for (i, answer) in answers[100..].iter().enumerate() {
            match answer.status {
                200 => {
                    assert_eq!(answer.text(), format!("post {round}-{i}"));
                    posts_ok += 1;
                }
                502 => posts_502 += 1,
                other => panic!("POST got {other}\n{}", portico.log()),
            }
        }
    }
    assert!(posts_ok > posts_502, "{posts_ok} echoed, {posts_502} 502");
}

#[test]
fn a_keep_alive_client_gets_every_answer_from_an_app_that_closes_kept_connections() {
    let fx = Fixture::new();
    let _app = Faults::start(&fx.path("app.sock"), &["--close-kept", "0.3"]);
    let portico = serve(&fx);
    let mut conn = Connection::open(portico.addr());
    conn.set_read_timeout(ANSWER_WITHIN);
    for i in 0..600 {
        let (request, expected) = hello(0, i);
        conn.send(&request.keep_alive());
        let response = conn
            .try_read_response("GET")
            .unwrap_or_else(|e| panic!("request {i} unanswered: {e}\n{}", portico.log()));
        assert_hello(&response, &expected, &portico);
    }
}

#[test]
fn a_burst_past_the_app_s_listen_queue_waits_for_it_instead_of_failing() {
    for round in 0..8 {
        // Portico afresh each round: no kept connection, every request connects.
        let fx = Fixture::new();
        let _app = Faults::start(&fx.path("app.sock"), &["--backlog", "4"]);
        let portico = serve(&fx);
        let (requests, expected): (Vec<_>, Vec<_>) = (0..100).map(|i| hello(round, i)).unzip();
        for (answer, expected) in burst(&portico, requests).iter().zip(&expected) {
            assert_hello(answer, expected, &portico);
        }
    }
}

#[test]
fn an_app_that_dies_mid_response_never_ends_it_as_complete() {
    let fx = Fixture::new();
    let _app = Faults::start(&fx.path("app.sock"), &[]);
    let portico = serve(&fx);
    for path in [
        "/app/drop-body?4400",
        "/app/drop-late?4400",
        "/app/drop-body?200000",
    ] {
        let (mut cut, mut bad_gateway) = (0, 0);
        for _ in 0..30 {
            let response = ask(&portico, &Request::get(path));
            match response.status {
                // The head had gone out: the body must end visibly short.
                200 => {
                    assert_eq!(response.framing, Framing::Chunked, "{path}");
                    assert!(!response.complete, "{path} ended as if whole");
                    cut += 1;
                }
                // Nothing had gone out yet: a plain 502.
                502 => {
                    assert!(response.complete);
                    bad_gateway += 1;
                }
                other => panic!("{path}: {other}\n{}", portico.log()),
            }
        }
        if path.starts_with("/app/drop-late") {
            assert_eq!(cut, 30, "the head was out 50 ms before the close");
        }
        assert_eq!(cut + bad_gateway, 30);
    }
    assert!(
        portico.log().contains("upstream closed before END_REQUEST"),
        "{}",
        portico.log()
    );
}

#[test]
fn an_app_that_fails_before_its_head_is_a_502_with_the_reason_logged() {
    let fx = Fixture::new();
    let _app = Faults::start(&fx.path("app.sock"), &[]);
    let portico = serve(&fx);
    for path in ["/app/drop-head", "/app/no-head", "/app/stderr-drop"] {
        for _ in 0..10 {
            let response = ask(&portico, &Request::post(path, "x"));
            assert_eq!(response.status, 502, "{path}");
            assert!(
                !response.text().contains("fcgi_faults"),
                "no stderr in the body"
            );
        }
    }
    let log = portico.log();
    assert!(log.contains("fcgi_faults: going down"), "{log}");
    assert!(
        log.contains("the FastCGI upstream closed the connection before FCGI_END_REQUEST"),
        "{log}"
    );
}

/// The request ids the app saw begin, from its record.
fn begins(record: &Path) -> usize {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("begin "))
        .count()
}

#[test]
fn a_request_on_a_kept_connection_that_ends_unanswered_is_sent_again_only_if_idempotent() {
    let fx = Fixture::new();
    let record = fx.path("record.txt");
    let record_arg = record.to_str().expect("utf-8 path");
    let _app = Faults::start(&fx.path("app.sock"), &["--record", record_arg]);
    let portico = serve(&fx);
    // (method, sends the app sees): a GET goes once more on a new connection; a POST,
    // which the app may have acted on, never does.
    for (request, sends) in [
        (Request::get("/app/drop-head"), 2),
        (Request::post("/app/drop-head", "x"), 1),
        (Request::new("DELETE", "/app/drop-head"), 2),
    ] {
        // A first request leaves a kept connection for the one under test.
        assert_hello(&ask(&portico, &hello(0, 0).0), "hello 0-0\n", &portico);
        let before = begins(&record);
        let response = ask(&portico, &request);
        assert_eq!(response.status, 502, "{request:?}");
        assert_eq!(begins(&record) - before, sends, "{request:?}");
    }
}

#[test]
fn dropping_every_connection_mid_burst_leaves_no_request_waiting() {
    let fx = Fixture::new();
    let app = Faults::start(&fx.path("app.sock"), &[]);
    let portico = serve(&fx);
    for round in 0..5 {
        let started = Instant::now();
        let answers = thread::scope(|scope| {
            let answers = scope.spawn(|| {
                let requests = (0..60).map(|_| Request::get("/app/slow?0.3")).collect();
                burst(&portico, requests)
            });
            thread::sleep(Duration::from_millis(150));
            app.signal(libc::SIGUSR1);
            answers.join().expect("burst")
        });
        for answer in &answers {
            match answer.status {
                200 => assert_eq!(answer.text(), "hello\n"),
                502 => {}
                other => panic!("round {round}: {other}\n{}", portico.log()),
            }
        }
        assert!(started.elapsed() < ANSWER_WITHIN);
    }
}

#[test]
fn requests_sent_to_an_app_that_is_then_stopped_get_503_at_once() {
    let fx = Fixture::new();
    let portico = fx.serve_config(
        &format!(
            r#"
[[fastcgi]]
mount = "/app"
read_timeout_seconds = 30
launch = {{ command = ["{FAULTS}", "--exit-at-start", "0.4"], workers = 1, start_retries = 2 }}
"#
        ),
        &[],
    );
    let started = Instant::now();
    let answers = burst(&portico, (0..5).map(|i| hello(0, i).0).collect());
    for answer in &answers {
        assert_eq!(answer.status, 503, "{}", portico.log());
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after {:?}\n{}",
        started.elapsed(),
        portico.log()
    );
    portico.wait_for_log_line(&["application stopped"], Duration::from_secs(1));
}

#[test]
fn a_burst_to_an_app_that_takes_few_connections_queues_for_them() {
    let fx = Fixture::new();
    let record = fx.path("record.txt");
    let record_arg = record.to_str().expect("utf-8 path");
    let _app = Faults::start(
        &fx.path("app.sock"),
        &["--max-conns", "4", "--record", record_arg],
    );
    let portico = serve(&fx);
    for round in 0..5 {
        let (requests, expected): (Vec<_>, Vec<_>) = (0..150).map(|i| hello(round, i)).unzip();
        for (answer, expected) in burst(&portico, requests).iter().zip(&expected) {
            assert_hello(answer, expected, &portico);
        }
    }
    // FCGI_MAX_CONNS=4: never more requests at once than that.
    let (mut running, mut most) = (0i32, 0i32);
    for event in std::fs::read_to_string(&record).unwrap_or_default().lines() {
        match event.split(' ').next() {
            Some("begin") => running += 1,
            Some("end") => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    assert!((1..=4).contains(&most), "{most} requests at once");
}

#[test]
fn a_burst_to_an_app_that_multiplexes_gets_each_answer_on_the_shared_connection() {
    let fx = Fixture::new();
    let _app = crate::fastcgi::App::start_with(&fx.path("app.sock"), &["--mpxs"]);
    let portico = serve(&fx);
    for round in 0..10 {
        let requests = (0..100)
            .map(|i| Request::get(&format!("/app/env?{round}-{i}")))
            .collect();
        for (i, answer) in burst(&portico, requests).iter().enumerate() {
            let line = format!("QUERY_STRING={round}-{i}\n");
            assert!(
                answer.status == 200 && answer.complete && answer.text().contains(&line),
                "{i}: {} {:?}\n{}",
                answer.status,
                answer.text(),
                portico.log()
            );
        }
    }
}
