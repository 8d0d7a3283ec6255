//! Clients that attack by holding connections: silent ones that never send a byte,
//! slowloris ones that trickle their header lines, idle keep-alive ones, and a flood past
//! `max_connections`. Each is cut at `header_read_timeout_seconds` (from accept to the first
//! byte, through the whole head, and between two requests on a kept connection), and while
//! they hold their connections ordinary clients are served: each test measures the p99 of
//! ordinary requests during the attack and prints it. A client that stops reading is
//! `clients.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, Portico};

const SECOND: Duration = Duration::from_secs(1);

/// Portico with hello.sh under /cgi-bin, a one-second header read timeout and room for
/// `max_connections` clients.
fn serve(fx: &Fixture, max_connections: usize) -> Portico {
    fx.script("hello", crate::scripts::HELLO);
    fx.serve_config(
        &format!(
            "[limits]\nmax_connections = {max_connections}\nheader_read_timeout_seconds = 1\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n"
        ),
        &[],
    )
}

/// `count` ordinary requests, one after another; their p99 latency.
fn p99_of_ordinary_requests(portico: &Portico, count: usize, attack: &str) -> Duration {
    let mut latencies: Vec<Duration> = (0..count)
        .map(|_| {
            let start = Instant::now();
            let response = portico.get("/cgi-bin/hello");
            assert_eq!(response.status, 200, "{attack}: {}", portico.log());
            start.elapsed()
        })
        .collect();
    latencies.sort();
    let p99 = latencies[(count * 99).div_ceil(100) - 1];
    eprintln!("{attack}: p99 of {count} ordinary requests during the attack: {p99:?}");
    p99
}

/// How long until the server closes `stream` (end of file or a reset), within `timeout`.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < timeout {
        stream
            .set_read_timeout(Some(timeout - start.elapsed() + Duration::from_millis(1)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Asserts every attacker was cut off within `within` of `since`.
fn assert_all_cut(attackers: &mut [TcpStream], since: Instant, within: Duration, attack: &str) {
    for (i, stream) in attackers.iter_mut().enumerate() {
        let left = within.saturating_sub(since.elapsed());
        assert!(
            closed_within(stream, left).is_some(),
            "{attack}: connection {i} still open {:?} after the attack began",
            since.elapsed()
        );
    }
}

#[test]
fn silent_and_slowloris_clients_are_cut_at_the_header_read_timeout_while_others_are_served() {
    let fx = Fixture::new();
    let portico = serve(&fx, 1024);
    let start = Instant::now();
    // Silent: connected, never a byte (no HTTP version to detect, so no hyper timer yet).
    let mut silent: Vec<TcpStream> = (0..100).map(|_| portico.connect_raw()).collect();
    // Slowloris: a request line, then one header byte every 200 ms, never the blank line.
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = portico.connect_raw();
            stream
                .write_all(b"GET /cgi-bin/hello HTTP/1.1\r\nHost: a\r\n")
                .unwrap();
            stream
        })
        .collect();
    let trickling = Arc::new(AtomicBool::new(true));
    let trickler = {
        let mut streams: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        let trickling = trickling.clone();
        thread::spawn(move || {
            while trickling.load(Ordering::Relaxed) {
                for stream in &mut streams {
                    let _ = stream.write_all(b"X");
                }
                thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let p99 = p99_of_ordinary_requests(&portico, 100, "silent + slowloris");
    assert!(p99 < SECOND, "p99 {p99:?}");
    assert_all_cut(&mut silent, start, 4 * SECOND, "silent");
    assert_all_cut(&mut slow, start, 4 * SECOND, "slowloris");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "cut before the timeout"
    );
    trickling.store(false, Ordering::Relaxed);
    trickler.join().unwrap();
    // None of them ran a script; the ordinary ones all did (the last line may lag its
    // response a moment).
    let lines = || portico.log().matches("path=/cgi-bin/hello").count();
    crate::harness::wait_until(2 * SECOND, || lines() >= 100);
    assert_eq!(lines(), 100);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_header_read_timeout() {
    let fx = Fixture::new();
    let portico = serve(&fx, 1024);
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = portico.connect_raw();
            stream
                .write_all(b"GET /cgi-bin/hello HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"hello\n") {
                stream.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            stream
        })
        .collect();
    let start = Instant::now();
    let p99 = p99_of_ordinary_requests(&portico, 100, "idle keep-alive");
    assert!(p99 < SECOND, "p99 {p99:?}");
    assert_all_cut(&mut idle, start, 4 * SECOND, "idle keep-alive");
}

#[test]
fn a_flood_past_max_connections_waits_in_the_backlog_until_the_holders_are_cut() {
    let fx = Fixture::new();
    let portico = serve(&fx, 16);
    // Every slot held by a silent client; 32 more wait in the listen backlog.
    let start = Instant::now();
    let mut flood: Vec<TcpStream> = (0..48).map(|_| portico.connect_raw()).collect();
    thread::sleep(Duration::from_millis(100));
    // An ordinary client waits for a slot, and gets one once the holders are cut at the
    // header read timeout (the flood behind it is cut in turn, 16 at a time).
    let waited = Instant::now();
    let response = portico.get("/cgi-bin/hello");
    assert_eq!(response.status, 200, "{}", portico.log());
    let waited = waited.elapsed();
    eprintln!("flood past max_connections: an ordinary request waited {waited:?}");
    assert!(waited < 6 * SECOND, "waited {waited:?}");
    assert_all_cut(&mut flood, start, 10 * SECOND, "flood");
    // Once the flood is gone, requests are served at once again.
    let p99 = p99_of_ordinary_requests(&portico, 50, "after the flood");
    assert!(p99 < SECOND, "p99 {p99:?}");
}

/// Slow uploads: a body that pauses past `body_read_timeout_seconds`. One that fits in
/// `body_memory_bytes` is read before any script starts, so it holds no script slot and
/// gets 408; a larger one streams to its script, which sees it end there, and its
/// connection closes; a launched FastCGI app's request is aborted and its worker freed.
/// Ordinary clients are served meanwhile.
#[test]
fn a_body_that_pauses_past_the_body_read_timeout_is_cut_and_frees_what_reads_it() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    fx.script("echo", crate::scripts::ECHO);
    let app = crate::launch::APP;
    let portico = fx.serve_config(
        &format!(
            "[limits]\nbody_read_timeout_seconds = 1\nbody_memory_bytes = 65536\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\n\
             launch = {{ command = ['{app}'], workers = 1, max_workers = 1 }}\n\
             [status]\nenabled = true\n"
        ),
        &[],
    );
    let start_upload = |target: &str, framing: &str, first: &[u8]| {
        let mut stream = portico.connect_raw();
        let head = format!("POST {target} HTTP/1.1\r\nHost: a\r\n{framing}\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(first).unwrap();
        stream
    };
    let start = Instant::now();
    // More than the 16 script slots of a 2-CPU machine: buffered, they hold none.
    let mut small: Vec<TcpStream> = (0..40)
        .map(|i| match i % 2 {
            0 => start_upload(
                "/cgi-bin/echo",
                "Transfer-Encoding: chunked",
                b"5\r\nhello\r\n",
            ),
            _ => start_upload("/cgi-bin/echo", "Content-Length: 1000", b"hello"),
        })
        .collect();
    let mut large: Vec<TcpStream> = (0..4)
        .map(|_| start_upload("/cgi-bin/echo", "Content-Length: 100000", b"hello"))
        .collect();
    let mut fastcgi = start_upload("/app/echo", "Content-Length: 100000", b"hello");
    let p99 = p99_of_ordinary_requests(&portico, 50, "slow uploads");
    assert!(p99 < SECOND, "p99 {p99:?}");

    for stream in &mut small {
        stream.set_read_timeout(Some(4 * SECOND)).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    assert_all_cut(&mut large, start, 5 * SECOND, "large upload");
    assert_all_cut(
        std::slice::from_mut(&mut fastcgi),
        start,
        5 * SECOND,
        "FastCGI upload",
    );
    let cut_after = start.elapsed();
    assert!(
        cut_after >= Duration::from_millis(900),
        "cut after {cut_after:?}"
    );
    // The request is aborted (FCGI_ABORT_REQUEST), then its connection given back.
    let busy = || crate::launch::status(&portico)["fastcgi"][0]["endpoints"][0]["busy"].as_u64();
    assert!(
        crate::harness::wait_until(3 * SECOND, || busy() == Some(0)),
        "the worker still holds the stalled upload"
    );
    let log = portico.log();
    assert!(log.contains("body_read_timeout_seconds"), "{log}");
    // Only the large uploads started the script.
    assert_eq!(log.matches("script=/cgi-bin/echo").count(), 4, "{log}");
    assert_eq!(portico.get("/app/hello").status, 200);
}
