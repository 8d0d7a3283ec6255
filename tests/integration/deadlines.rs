//! How long a script may take: the head deadline (504), the idle deadline between writes
//! and the total deadline (both cut a body already begun, visibly incomplete), set by
//! flag or apart in the config file; and that a deadline ends the script's whole process
//! group, with SIGKILL after `kill_grace_seconds` for a script that ignores SIGTERM. The
//! `deadline=` field of the access line names which one fired. How long a client may
//! take is `clients.rs`; the shutdown timeout is `shutdown.rs`.

use std::time::{Duration, Instant};

use crate::harness::{Fixture, assert_no_process_with_arg};
use crate::scripts::{SILENT_WITH_CHILD, TICKING_WITH_CHILD};

const SECOND: Duration = Duration::from_secs(1);

/// A config whose two first deadlines are set apart, as only the file can set them.
fn deadlines_config(head_seconds: &str, idle_seconds: &str) -> String {
    format!(
        r#"
[limits]
script_head_timeout_seconds = {head_seconds}
script_idle_timeout_seconds = {idle_seconds}

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#
    )
}

/// Starts a process marked `@MARKER@` outside the script's pipes, sends a head and a first
/// line, then says nothing for 3 s before a last line.
const HEAD_THEN_STALL_WITH_CHILD: &str = r#"#!/bin/sh
perl -e 'sleep 1000' '@MARKER@' </dev/null >/dev/null 2>&1 &
: > '@STARTED@'
printf 'Content-Type: text/plain\r\n\r\npartial\n'
sleep 3
printf 'late\n'
"#;

/// Like `SILENT_WITH_CHILD`, but the script and its child both ignore SIGTERM.
const STUBBORN_WITH_CHILD: &str = r#"#!/bin/sh
trap '' TERM
perl -e '$SIG{TERM} = "IGNORE"; sleep 1000' '@MARKER@' </dev/null >/dev/null 2>&1 &
: > '@STARTED@'
sleep 30
"#;

#[test]
fn head_deadline_is_504_and_kills_the_process_group() {
    let fx = Fixture::new();
    let (marker, started) = fx.script_with_child("sleeper", SILENT_WITH_CHILD);
    let portico = fx.serve(&["--script-timeout-seconds", "1"]);
    let start = Instant::now();
    let response = portico.get("/cgi-bin/sleeper");
    let elapsed = start.elapsed();
    assert_eq!(response.status, 504);
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < 4 * SECOND,
        "504 after {elapsed:?}"
    );
    assert!(started.exists(), "the script never started its child");
    portico.wait_for_log("deadline=head", 5 * SECOND);
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
}

#[test]
fn script_ignoring_sigterm_is_killed_after_kill_grace_seconds() {
    let fx = Fixture::new();
    let (marker, started) = fx.script_with_child("stubborn", STUBBORN_WITH_CHILD);
    let portico = fx.serve(&[
        "--script-timeout-seconds",
        "0.5",
        "--kill-grace-seconds",
        "0.5",
    ]);
    let start = Instant::now();
    assert_eq!(portico.get("/cgi-bin/stubborn").status, 504);
    assert!(started.exists(), "the script never started its child");
    assert_no_process_with_arg(&marker, 3 * SECOND, &portico.log());
    assert!(
        start.elapsed() < 4 * SECOND,
        "group gone only after {:?}",
        start.elapsed()
    );
    let line = portico.wait_for_log_line(&["path=/cgi-bin/stubborn", "status=504"], 5 * SECOND);
    assert!(
        line.contains("signal 9"),
        "SIGTERM was ignored, so SIGKILL ends it: {line}"
    );
}

#[test]
fn idle_deadline_after_the_head_cuts_the_body() {
    let fx = Fixture::new();
    fx.script(
        "stall",
        r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\npartial\n'
sleep 5
printf 'late\n'
"#,
    );
    let portico = fx.serve(&["--script-timeout-seconds", "1"]);
    let start = Instant::now();
    let response = portico.get("/cgi-bin/stall");
    let elapsed = start.elapsed();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "partial\n");
    assert!(!response.complete, "a cut body must not look complete");
    assert!(elapsed < 4 * SECOND, "body ended after {elapsed:?}");
    portico.wait_for_log("deadline=idle", 5 * SECOND);
}

#[test]
fn script_head_timeout_seconds_in_the_config_file_bounds_the_wait_for_the_head() {
    // The script would answer after 3 s: within the idle timeout, past the head timeout.
    let fx = Fixture::new();
    fx.slow_script("3");
    let portico = fx.serve_config(&deadlines_config("0.5", "30"), &[]);
    let start = Instant::now();
    let response = portico.get("/cgi-bin/slow");
    let elapsed = start.elapsed();
    assert_eq!(
        response.status,
        504,
        "the 0.5 s head timeout did not apply; log:\n{}",
        portico.log()
    );
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(2500),
        "504 after {elapsed:?}, expected after the 0.5 s head timeout"
    );
    let line = portico.wait_for_log_line(&["path=/cgi-bin/slow", "status=504"], 5 * SECOND);
    assert!(line.contains("deadline=head"), "{line}");
}

#[test]
fn script_idle_timeout_seconds_in_the_config_file_cuts_the_body_and_kills_the_group() {
    // The head comes at once, well within the head timeout; only the idle timeout can end it.
    let fx = Fixture::new();
    let (marker, started) = fx.script_with_child("stall", HEAD_THEN_STALL_WITH_CHILD);
    let portico = fx.serve_config(&deadlines_config("30", "0.5"), &[]);
    let start = Instant::now();
    let response = portico.get("/cgi-bin/stall");
    let elapsed = start.elapsed();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        "partial\n",
        "the 0.5 s idle timeout did not cut the body; log:\n{}",
        portico.log()
    );
    assert!(!response.complete, "a cut body must not look complete");
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(2500),
        "body cut after {elapsed:?}, expected after the 0.5 s idle timeout"
    );
    assert!(started.exists(), "the script never started its child");
    let line = portico.wait_for_log_line(&["path=/cgi-bin/stall", "status=200"], 5 * SECOND);
    assert!(line.contains("deadline=idle"), "{line}");
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
}

#[test]
fn total_deadline_cuts_a_script_that_keeps_talking() {
    let fx = Fixture::new();
    let (marker, _) = fx.script_with_child("ticker", TICKING_WITH_CHILD);
    let portico = fx.serve(&["--script-total-timeout-seconds", "1"]);
    let start = Instant::now();
    let response = portico.get("/cgi-bin/ticker");
    let elapsed = start.elapsed();
    assert_eq!(response.status, 200);
    assert!(
        response.text().starts_with("tick\n"),
        "{:?}",
        response.text()
    );
    assert!(!response.complete, "a cut body must not look complete");
    assert!(elapsed < 4 * SECOND, "body ended after {elapsed:?}");
    portico.wait_for_log("deadline=total", 5 * SECOND);
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
}
