//! Many scripts at once: `max_concurrent_scripts` holds a request in a queue until a slot
//! frees up, or answers 503 with Retry-After once `queue_timeout_seconds` passes; and
//! bursts of short scripts, on one runtime thread or several, leave no zombie and no
//! child behind (STYLE rule 6). Shutdown with scripts running is `shutdown.rs`.

use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, wait_for_file, wait_until};
use crate::http::{self, Request};
use crate::scripts::HELLO;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn full_concurrency_answers_503_with_retry_after_once_the_queue_timeout_passes() {
    let fx = Fixture::new();
    let started = fx.slow_script("3");
    fx.script("hello", HELLO);
    let portico = fx.serve(&[
        "--max-concurrent-scripts",
        "1",
        "--queue-timeout-seconds",
        "0.5",
    ]);
    let addr = portico.addr();
    let holder = thread::spawn(move || http::send(addr, &Request::get("/cgi-bin/slow")));
    wait_for_file(&started, 5 * SECOND);

    let start = Instant::now();
    let response = portico.get("/cgi-bin/hello");
    let waited = start.elapsed();
    assert_eq!(response.status, 503, "{}", portico.log());
    assert!(
        response
            .header("Retry-After")
            .is_some_and(|v| !v.is_empty()),
        "503 without Retry-After: {:?}",
        response.headers
    );
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_millis(2500),
        "503 after {waited:?}, expected after the 0.5 s queue timeout"
    );

    let held = holder.join().unwrap();
    assert_eq!((held.status, held.text().as_str()), (200, "finished\n"));
}

#[test]
fn queued_request_runs_when_a_slot_frees_up() {
    let fx = Fixture::new();
    let started = fx.slow_script("1");
    fx.script("hello", HELLO);
    let portico = fx.serve(&[
        "--max-concurrent-scripts",
        "1",
        "--queue-timeout-seconds",
        "5",
    ]);
    let addr = portico.addr();
    let holder = thread::spawn(move || http::send(addr, &Request::get("/cgi-bin/slow")));
    wait_for_file(&started, 5 * SECOND);

    let response = portico.get("/cgi-bin/hello");
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.text(), "hello\n");
    assert_eq!(holder.join().unwrap().status, 200);
}

/// Many short scripts, four at a time, leave no zombie and no child, whether they start on
/// the runtime threads (several) or on the blocking pool (one runtime thread).
#[test]
fn many_short_scripts_leave_no_zombies_and_no_children() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    fx.script("crash", "#!/bin/sh\nexit 1\n");
    for threads in ["1", "2"] {
        let portico = fx.serve(&["--threads", threads]);
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10 {
                        let hello = portico.get("/cgi-bin/hello");
                        assert_eq!(hello.status, 200, "threads {threads}: {}", portico.log());
                        assert_eq!(portico.get("/cgi-bin/crash").status, 502);
                    }
                });
            }
        });
        portico.assert_no_zombies();
        assert!(
            wait_until(3 * SECOND, || portico.children().is_empty()),
            "threads {threads}: script processes outlived their requests: {:?}",
            portico.children()
        );
    }
}
