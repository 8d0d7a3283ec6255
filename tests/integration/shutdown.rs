//! Graceful shutdown on SIGTERM or SIGINT: Portico stops accepting, lets the requests in
//! flight finish, kills the process groups of scripts still running once
//! `shutdown_timeout_seconds` has passed, and exits 0, even when signalled the moment it
//! reports ready. Deadlines of single requests are `deadlines.rs`.

use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    Fixture, assert_no_process_with_arg, assert_process_with_arg_runs, wait_for_file, wait_until,
};
use crate::http::{self, Connection, Request};
use crate::scripts::{HELLO, SILENT_WITH_CHILD};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn sigterm_lets_the_in_flight_request_finish_and_exits_0() {
    let fx = Fixture::new();
    let started = fx.slow_script("1.5");
    let mut portico = fx.serve(&[]);
    let addr = portico.addr();
    let in_flight = thread::spawn(move || http::send(addr, &Request::get("/cgi-bin/slow")));
    wait_for_file(&started, 5 * SECOND);
    portico.sigterm();
    let response = in_flight.join().unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "finished\n")
    );
    assert!(response.complete);
    let status = portico.wait_exit(10 * SECOND);
    assert_eq!(
        status.code(),
        Some(0),
        "exit {status:?}; log:\n{}",
        portico.log()
    );
}

#[test]
fn sigterm_stops_accepting_new_requests() {
    let fx = Fixture::new();
    let started = fx.slow_script("2");
    fx.script("hello", HELLO);
    let mut portico = fx.serve(&[]);
    let addr = portico.addr();
    let in_flight = thread::spawn(move || http::send(addr, &Request::get("/cgi-bin/slow")));
    wait_for_file(&started, 5 * SECOND);
    portico.sigterm();
    thread::sleep(Duration::from_millis(300));

    let late = Connection::try_open(addr).and_then(|mut connection| {
        connection.try_send_raw(&Request::get("/cgi-bin/hello").to_bytes())?;
        connection.try_read_response("GET")
    });
    if let Ok(response) = &late {
        assert_ne!(response.status, 200, "a request after SIGTERM was served");
    }
    assert_eq!(in_flight.join().unwrap().status, 200);
    assert_eq!(portico.wait_exit(10 * SECOND).code(), Some(0));
}

#[test]
fn sigterm_kills_scripts_still_running_after_the_shutdown_timeout() {
    let fx = Fixture::new();
    let (marker, started) = fx.script_with_child("sleeper", SILENT_WITH_CHILD);
    let mut portico = fx.serve(&["--shutdown-timeout-seconds", "1"]);
    let addr = portico.addr();
    let in_flight = thread::spawn(move || {
        let _ = Connection::try_open(addr).and_then(|mut connection| {
            connection.try_send_raw(&Request::get("/cgi-bin/sleeper").to_bytes())?;
            connection.try_read_response("GET")
        });
    });
    wait_for_file(&started, 5 * SECOND);
    assert_process_with_arg_runs(&marker, 2 * SECOND);
    let start = Instant::now();
    portico.sigterm();
    let status = portico.wait_exit(8 * SECOND);
    let took = start.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit {status:?}; log:\n{}",
        portico.log()
    );
    assert!(
        took >= Duration::from_millis(900) && took < 5 * SECOND,
        "exited {took:?} after SIGTERM with shutdown_timeout_seconds = 1"
    );
    assert_no_process_with_arg(&marker, 3 * SECOND, &portico.log());
    in_flight.join().unwrap();
}

#[test]
fn signal_right_after_the_listening_line_exits_0() {
    // A supervisor may stop Portico as soon as it reports ready.
    let cases = [("SIGTERM", libc::SIGTERM), ("SIGINT", libc::SIGINT)];
    for (case, signal) in cases {
        let fx = Fixture::new();
        let mut portico = fx.serve(&[]);
        portico.signal(signal);
        assert!(
            wait_until(5 * SECOND, || !portico.is_running()),
            "{case}: portico still runs after 5 s; log:\n{}",
            portico.log()
        );
        let status = portico.wait_exit(Duration::ZERO);
        assert_eq!(
            status.code(),
            Some(0),
            "{case}: exit {status:?}; log:\n{}",
            portico.log()
        );
    }
}
