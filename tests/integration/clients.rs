//! What a slow or vanishing client can cost: one that trickles its header lines is cut
//! after the header read timeout; one that goes away, before the script's head or in the
//! middle of its body, has the script's whole process group killed; one that stops
//! reading is cut after the send timeout, and its script ended or its FastCGI request
//! aborted, so that it holds no worker. How much a client may send is `limits.rs`; a
//! client that reads slowly but does read is `streaming.rs`.

use std::time::{Duration, Instant};

use crate::harness::{
    Fixture, assert_no_process_with_arg, assert_process_with_arg_runs, unique, wait_for_file,
    wait_until,
};
use crate::http::Request;
use crate::scripts::{SILENT_WITH_CHILD, TICKING_WITH_CHILD};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn slow_header_sender_is_cut_after_the_header_read_timeout() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let portico = fx.serve(&["--header-read-timeout-seconds", "1"]);
    let mut connection = portico.connect();
    connection.set_read_timeout(Duration::from_millis(200));
    let start = Instant::now();
    connection.send_raw(b"GET /cgi-bin/hello HTTP/1.1\r\nHost: portico.test\r\n");
    let cut_at = loop {
        // One more header line every 200 ms: never idle, never finished.
        if connection.try_send_raw(b"X-Slow: y\r\n").is_err() || connection.is_closed_by_server() {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < 6 * SECOND,
            "still reading headers after {:?}",
            start.elapsed()
        );
    };
    assert!(
        cut_at >= Duration::from_millis(800) && cut_at < 4 * SECOND,
        "connection cut after {cut_at:?}, expected about 1 s"
    );
}

#[test]
fn client_disconnect_kills_the_script_group() {
    // (case, also the script's name; script; whether the head arrives before the client goes)
    let cases = [
        ("gone-before-the-head", SILENT_WITH_CHILD, false),
        ("gone-mid-body", TICKING_WITH_CHILD, true),
    ];
    for (case, template, head_first) in cases {
        // A Portico of its own, so the "client gone" in its log is this case's.
        let fx = Fixture::new();
        let (marker, started) = fx.script_with_child(case, template);
        let portico = fx.serve(&[]);
        let mut connection = portico.connect();
        connection.send(&Request::get(&format!("/cgi-bin/{case}")));
        if head_first {
            let head = connection
                .read_head()
                .unwrap_or_else(|e| panic!("{case}: no head: {e}"));
            assert_eq!(head.status, 200, "{case}");
        }
        wait_for_file(&started, 5 * SECOND);
        assert_process_with_arg_runs(&marker, 2 * SECOND);
        connection.shutdown();
        drop(connection);
        portico.wait_for_log("client gone", 5 * SECOND);
        assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
    }
}

#[test]
fn client_that_stops_reading_holds_the_script_only_until_the_total_deadline() {
    // The script writes far more than the socket buffers hold; the client never reads.
    let fx = Fixture::new();
    let marker = unique("stalled-client");
    fx.script(
        "flood",
        &format!(
            "#!/bin/sh\nperl -e 'sleep 1000' '{marker}' </dev/null >/dev/null 2>&1 &\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec yes portico-flood\n"
        ),
    );
    let portico = fx.serve(&["--script-total-timeout-seconds", "1"]);
    let mut connection = portico.connect();
    connection.send(&Request::get("/cgi-bin/flood"));
    portico.wait_for_log_line(&["path=/cgi-bin/flood", "deadline=total"], 5 * SECOND);
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
    drop(connection);
}

/// A client that stops reading a response far larger than the socket buffers: after
/// `send_timeout_seconds` of taking nothing its connection closes and the program behind
/// it is ended; the script's whole group for CGI, the request for a launched FastCGI app
/// with one worker, which then serves the next client at once.
#[test]
fn client_that_stops_reading_is_cut_after_the_send_timeout_and_holds_no_program() {
    let fx = Fixture::new();
    let marker = unique("stalled-reader");
    fx.script(
        "flood",
        &format!(
            "#!/bin/sh\nperl -e 'sleep 1000' '{marker}' </dev/null >/dev/null 2>&1 &\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec yes portico-flood\n"
        ),
    );
    let app = crate::launch::APP;
    let portico = fx.serve_config(
        &format!(
            "[limits]\nsend_timeout_seconds = 1\nqueue_timeout_seconds = 30\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\n\
             launch = {{ command = ['{app}'], workers = 1, max_workers = 1 }}\n\
             [status]\nenabled = true\n"
        ),
        &[],
    );
    assert_eq!(portico.get("/app/hello").status, 200);

    // CGI: the script and its child are ended once the client is cut off.
    let mut stalled = portico.connect();
    stalled.send(&Request::get("/cgi-bin/flood"));
    assert_process_with_arg_runs(&marker, 5 * SECOND);
    let start = Instant::now();
    portico.wait_for_log_line(&["path=/cgi-bin/flood", "client gone"], 10 * SECOND);
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
    let cut_after = start.elapsed();
    assert!(cut_after < 5 * SECOND, "script ended after {cut_after:?}");
    assert!(
        portico.log().contains("send_timeout_seconds"),
        "{}",
        portico.log()
    );

    // FastCGI: the request is aborted and the worker's connection given back.
    let busy = || -> u64 {
        crate::launch::status(&portico)["fastcgi"][0]["endpoints"][0]["busy"]
            .as_u64()
            .expect("the endpoint's busy count")
    };
    for round in 0..3 {
        let mut stalled = portico.connect();
        stalled.send(&Request::get(&format!("/app/big?{}", 1u64 << 30)));
        let head = stalled.read_head().expect("the big response's head");
        assert_eq!(head.status, 200);
        let start = Instant::now();
        assert_eq!(
            busy(),
            1,
            "round {round}: the stalled request holds the worker"
        );
        assert!(
            wait_until(5 * SECOND, || busy() == 0),
            "round {round}: still busy"
        );
        let freed = start.elapsed();
        assert!(
            freed >= Duration::from_millis(800) && freed < 5 * SECOND,
            "round {round}: the worker was freed after {freed:?}"
        );
        assert_eq!(portico.get("/app/hello").status, 200);
        drop(stalled);
    }
}
