//! `threads = N` on a `[[wsgi]]` mount: each launched worker serves N requests at once, a
//! thread each, for apps that wait on a database or an API (gunicorn's and uWSGI's
//! `--threads`). The app, `tests/fixtures/wsgi_threads.py`, sleeps as such an app waits.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, Portico};
use crate::http::{self, Request};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Portico serving the sleeping app at `/app` on `workers` workers of `threads` threads;
/// `threads = 1` is written out as the key left unset, the default.
fn serve(fx: &Fixture, workers: usize, threads: usize) -> Portico {
    let threads = match threads {
        1 => String::new(),
        n => format!("threads = {n}\n"),
    };
    fx.serve_config(
        &format!(
            "[[wsgi]]\nmount = \"/app\"\napp = \"wsgi_threads:application\"\npath = [\"{FIXTURES}\"]\nworkers = {workers}\n{threads}"
        ),
        &[],
    )
}

/// `n` requests sent at once, each sleeping `ms` in the app: how long until the last
/// answer, and which (process, thread) served each.
fn burst(portico: &Portico, n: usize, ms: u64) -> (Duration, Vec<String>) {
    let addr = portico.addr();
    let start = Instant::now();
    let served = thread::scope(|scope| {
        let requests: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(move || http::send(addr, &Request::get(&format!("/app/sleep?ms={ms}"))))
            })
            .collect();
        requests
            .into_iter()
            .map(|r| {
                let response = r.join().unwrap();
                assert_eq!(response.status, 200, "{}", response.text());
                response.text()
            })
            .collect()
    });
    (start.elapsed(), served)
}

fn processes(served: &[String]) -> HashSet<&str> {
    served
        .iter()
        .filter_map(|s| s.split_once(' ').map(|(pid, _)| pid))
        .collect()
}

#[test]
fn two_workers_of_four_threads_serve_eight_waiting_requests_at_once() {
    let fx = Fixture::new();
    let portico = serve(&fx, 2, 4);
    // Workers started and every thread's connection open: only the waiting is timed.
    burst(&portico, 8, 50);
    let (elapsed, served) = burst(&portico, 8, 200);
    assert!(
        elapsed < Duration::from_millis(400),
        "8 requests of 200 ms on 2 x 4 threads took {elapsed:?}: not all at once"
    );
    let threads: HashSet<&String> = served.iter().collect();
    assert_eq!(
        threads.len(),
        8,
        "each request had a thread of its own: {served:?}"
    );
    assert_eq!(processes(&served).len(), 2, "{served:?}");
}

#[test]
fn two_workers_of_one_thread_serve_eight_waiting_requests_in_four_rounds() {
    let fx = Fixture::new();
    let portico = serve(&fx, 2, 1);
    burst(&portico, 8, 50);
    let (elapsed, served) = burst(&portico, 8, 200);
    // Each worker serves its four one after another: 4 x 200 ms at the least.
    assert!(
        elapsed >= Duration::from_millis(800),
        "8 requests of 200 ms on 2 x 1 thread took {elapsed:?}"
    );
    let threads: HashSet<&String> = served.iter().collect();
    assert_eq!(threads.len(), 2, "{served:?}");
    assert_eq!(processes(&served).len(), 2, "{served:?}");
}

#[test]
fn wsgi_multithread_is_true_only_with_more_than_one_thread() {
    // PEP 3333: wsgi.multithread is true when the app may be called by another thread of
    // the same process at the same time.
    for (threads, want) in [(1, "False"), (4, "True")] {
        let fx = Fixture::new();
        let portico = serve(&fx, 1, threads);
        let response = portico.get("/app/multithread");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, want),
            "threads = {threads}"
        );
    }
}

#[test]
fn threads_must_be_a_whole_number_of_at_least_one() {
    for value in ["0", "-1", "2.5", "\"4\""] {
        let fx = Fixture::new();
        let outcome = fx.check(&format!(
            "[[wsgi]]\nmount = \"/w\"\napp = \"a:app\"\nthreads = {value}\n"
        ));
        assert_eq!(
            outcome.code,
            Some(2),
            "threads = {value}: {}",
            outcome.stderr
        );
        // The file, its line and the key, like every config error.
        let at = "portico.toml:4: wsgi[0].threads: ";
        assert!(
            outcome.stderr.contains(at),
            "threads = {value}: {}",
            outcome.stderr
        );
    }
}
