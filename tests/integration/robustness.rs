//! What keeps Portico standing: streaming large bodies both ways without deadlock, body
//! and header limits (413, 431), bad script output (502), deadlines (504 and cut bodies),
//! the concurrency limit (503), slow and vanishing clients, graceful shutdown, and that
//! every script process, and every process a script starts, is reaped or killed.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    Fixture, Portico, assert_no_process_with_arg, processes_with_arg, unique, wait_for_file,
};
use crate::http::{self, Connection, Request};
use crate::scripts::{ECHO, HELLO, LENGTH_AND_ECHO, SILENT_WITH_CHILD, TICKING_WITH_CHILD, fill};

const SECOND: Duration = Duration::from_secs(1);

/// FNV-1a, enough to tell two 64 MiB streams apart.
struct Checksum(u64);

impl Checksum {
    fn new() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Block `index` of a deterministic, non-repeating byte stream.
fn fill_block(block: &mut [u8], index: usize) {
    let mut state = (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

#[test]
fn stderr_flood_of_1_mib_does_not_block_the_script() {
    // A script blocks once its stderr pipe (64 KiB) is full unless Portico keeps reading it.
    let fx = Fixture::new();
    fx.script(
        "flood",
        r#"#!/bin/sh
yes 'stderr flood line' | head -c 524288 >&2
printf 'Content-Type: text/plain\r\n\r\n'
yes 'stderr flood line' | head -c 524288 >&2
printf 'survived\n'
"#,
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/flood");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "survived\n");
}

#[test]
fn script_that_never_reads_an_8_mib_body_is_still_answered() {
    let fx = Fixture::new();
    fx.script(
        "ignore",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nignored\\n'\n",
    );
    let portico = fx.serve(&[]);
    let size = 8 << 20;
    let mut connection = portico.connect();
    connection.send_raw(
        format!(
            "POST /cgi-bin/ignore HTTP/1.1\r\nHost: portico.test\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut writer = connection.writer();
    let sender = thread::spawn(move || {
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..size / block.len() {
            if writer.write_all(&block).is_err() {
                break;
            }
        }
    });
    let response = connection.try_read_response("POST");
    connection.shutdown();
    sender.join().unwrap();
    let response = response.unwrap_or_else(|e| panic!("no response: {e}; log:\n{}", portico.log()));
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ignored\n");
    assert_eq!(
        portico.get("/cgi-bin/ignore").status,
        200,
        "portico still serves"
    );
}

/// POSTs `size` bytes to `/cgi-bin/echo` while reading the echo, but only after not
/// reading at all for `pause`; panics unless exactly the bytes sent come back.
fn echo_exactly(portico: &Portico, size: usize, pause: Duration) {
    const BLOCK: usize = 64 << 10;
    let mut connection = portico.connect();
    connection.send_raw(
        format!(
            "POST /cgi-bin/echo HTTP/1.1\r\nHost: portico.test\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut writer = connection.writer();
    let sender = thread::spawn(move || {
        let mut sum = Checksum::new();
        let mut block = vec![0u8; BLOCK];
        for index in 0..size.div_ceil(BLOCK) {
            let block = &mut block[..BLOCK.min(size - index * BLOCK)];
            fill_block(block, index);
            sum.update(block);
            writer.write_all(block)?;
        }
        std::io::Result::Ok(sum.0)
    });
    let head = connection.read_head().unwrap();
    assert_eq!(head.status, 200);
    thread::sleep(pause);
    let mut received = 0usize;
    let mut sum = Checksum::new();
    let complete = connection
        .read_body_with(head.framing("POST"), &mut |bytes| {
            received += bytes.len();
            sum.update(bytes);
        })
        .unwrap_or_else(|e| panic!("echo stopped after {received} bytes: {e}"));
    let sent = sender
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("sending the body stalled: {e}; log:\n{}", portico.log()));
    assert!(complete, "echo was cut after {received} bytes");
    assert_eq!(received, size);
    assert_eq!(sum.0, sent, "echoed bytes differ from the sent ones");
}

#[test]
fn post_of_64_mib_is_echoed_exactly() {
    let fx = Fixture::new();
    fx.script("echo", ECHO);
    let portico = fx.serve(&["--max-body-bytes", "100000000"]);
    echo_exactly(&portico, 64 << 20, Duration::ZERO);
}

/// How much Portico's peak RSS may grow while a body many times larger streams through.
const RSS_GROWTH_BOUND_KIB: u64 = 32 << 10;

#[test]
fn echoing_a_64_mib_post_keeps_portico_memory_flat() {
    // The client stops reading for a while: only backpressure on the request body, all
    // the way back to the client's socket, keeps Portico from holding what it cannot pass on.
    let fx = Fixture::new();
    fx.script("echo", ECHO);
    let portico = fx.serve(&["--max-body-bytes", "100000000"]);
    echo_exactly(&portico, 1 << 20, Duration::ZERO);
    let before = portico.peak_rss_kib();
    echo_exactly(&portico, 64 << 20, SECOND);
    let growth = portico.peak_rss_kib().saturating_sub(before);
    assert!(
        growth < RSS_GROWTH_BOUND_KIB,
        "peak RSS grew by {growth} KiB (from {before} KiB) while echoing 64 MiB"
    );
}

#[test]
fn streaming_256_mib_from_a_script_keeps_portico_memory_flat() {
    // big-c writes as fast as the pipe takes it; the client does not read for a second, so
    // Portico must stop reading stdout rather than queue the rest of the 256 MiB.
    let fx = Fixture::new();
    fx.c_examples();
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/big-c?bytes=1048576").status, 200);
    let before = portico.peak_rss_kib();
    let size: u64 = 256 << 20;
    let mut connection = portico.connect();
    connection.set_read_timeout(30 * SECOND);
    connection.send(&Request::get(&format!("/cgi-bin/big-c?bytes={size}")));
    let head = connection.read_head().unwrap();
    assert_eq!(head.status, 200);
    thread::sleep(SECOND);
    let mut received = 0u64;
    let complete = connection
        .read_body_with(head.framing("GET"), &mut |bytes| {
            received += bytes.len() as u64
        })
        .unwrap_or_else(|e| panic!("body stopped after {received} bytes: {e}"));
    assert!(complete, "body was cut after {received} bytes");
    assert_eq!(received, size);
    let growth = portico.peak_rss_kib().saturating_sub(before);
    assert!(
        growth < RSS_GROWTH_BOUND_KIB,
        "peak RSS grew by {growth} KiB (from {before} KiB) while streaming {size} bytes"
    );
}

#[test]
fn streamed_output_reaches_the_client_before_the_script_ends() {
    let fx = Fixture::new();
    fx.script(
        "stream",
        r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nfirst\n'
sleep 2
printf 'second\n'
"#,
    );
    let portico = fx.serve(&[]);
    let mut connection = portico.connect();
    let start = Instant::now();
    connection.send(&Request::get("/cgi-bin/stream"));
    let head = connection.read_head().unwrap();
    let mut body = Vec::new();
    let mut first_at = None;
    let complete = connection
        .read_body_with(head.framing("GET"), &mut |bytes| {
            body.extend_from_slice(bytes);
            if first_at.is_none() && http::contains(&body, b"first\n") {
                first_at = Some(start.elapsed());
            }
        })
        .unwrap();
    let end = start.elapsed();
    let first_at = first_at.expect("the first line arrived");
    assert!(complete);
    assert_eq!(String::from_utf8_lossy(&body), "first\nsecond\n");
    assert!(
        first_at + SECOND < end,
        "first line at {first_at:?}, end at {end:?}: the body was buffered"
    );
}

#[test]
fn chunked_request_body_is_spooled_and_gets_a_content_length() {
    let fx = Fixture::new();
    fx.script("length-and-echo", LENGTH_AND_ECHO);
    let portico = fx.serve(&[]);
    let request = Request::new("POST", "/cgi-bin/length-and-echo").chunked(vec![
        b"hello ".to_vec(),
        b"chunked ".to_vec(),
        b"world".to_vec(),
    ]);
    let response = portico.send(&request);
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.text(), "length=19\nhello chunked world");
}

#[test]
fn chunked_request_body_larger_than_body_memory_bytes_is_spooled_whole() {
    let fx = Fixture::new();
    fx.script("length-and-echo", LENGTH_AND_ECHO);
    let portico = fx.serve_config(
        r#"
[limits]
body_memory_bytes = 8192

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let mut body = vec![0u8; 300 * 1024];
    fill_block(&mut body, 7);
    let chunks = body.chunks(7000).map(<[u8]>::to_vec).collect();
    let response = portico.send(&Request::new("POST", "/cgi-bin/length-and-echo").chunked(chunks));
    assert_eq!(response.status, 200, "{}", portico.log());
    let mut expected = format!("length={}\n", body.len()).into_bytes();
    expected.extend_from_slice(&body);
    assert_eq!(response.body.len(), expected.len());
    assert!(response.body == expected, "echoed body differs");
}

/// Proves the check for survivors can see the script's marked child at all.
fn assert_marker_child_runs(marker: &str) {
    assert!(
        crate::harness::wait_until(2 * SECOND, || !processes_with_arg(marker).is_empty()),
        "the script's child {marker} is not running"
    );
}

/// A script that leaves a file behind if it ever runs.
fn script_that_must_not_run(fx: &Fixture) -> std::path::PathBuf {
    let ran = fx.path("ran");
    fx.script(
        "upload",
        &format!(
            "#!/bin/sh\n: > '{}'\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec head -c \"${{CONTENT_LENGTH:-0}}\"\n",
            ran.display()
        ),
    );
    ran
}

#[test]
fn chunked_body_over_max_body_bytes_is_413() {
    let fx = Fixture::new();
    let ran = script_that_must_not_run(&fx);
    let portico = fx.serve(&["--max-body-bytes", "1000"]);
    let chunks = vec![vec![b'a'; 1000], vec![b'b'; 1000], vec![b'c'; 1000]];
    let response = portico.send(&Request::new("POST", "/cgi-bin/upload").chunked(chunks));
    assert_eq!(response.status, 413, "{}", portico.log());
    assert!(!ran.exists(), "the script ran for a body over the limit");
}

#[test]
fn content_length_over_max_body_bytes_is_413() {
    let fx = Fixture::new();
    let ran = script_that_must_not_run(&fx);
    let portico = fx.serve(&["--max-body-bytes", "1000"]);
    let response = portico.send(&Request::post("/cgi-bin/upload", vec![b'x'; 5000]));
    assert_eq!(response.status, 413, "{}", portico.log());
    assert!(!ran.exists(), "the script ran for a body over the limit");
}

#[test]
fn body_of_exactly_max_body_bytes_is_accepted() {
    let fx = Fixture::new();
    fx.script("length-and-echo", LENGTH_AND_ECHO);
    let portico = fx.serve(&["--max-body-bytes", "1000"]);
    let response = portico.send(&Request::post("/cgi-bin/length-and-echo", vec![b'x'; 1000]));
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.body.len(), "length=1000\n".len() + 1000);
}

#[test]
fn missing_script_is_404() {
    let fx = Fixture::new();
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/no-such-script").status, 404);
    assert_eq!(portico.get("/cgi-bin/no-such-dir/script").status, 404);
}

#[test]
fn non_executable_file_is_403_and_its_content_is_not_served() {
    let fx = Fixture::new();
    fx.file(
        "cgi-bin/notes.txt",
        "#!/bin/sh\necho private-notes-content\n",
        0o644,
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/notes.txt");
    assert_eq!(response.status, 403);
    assert!(!response.text().contains("private-notes-content"));
}

#[test]
fn crash_before_head_is_502_and_stderr_goes_to_the_log_not_the_body() {
    let fx = Fixture::new();
    let secret = unique("crash-secret");
    fx.script(
        "crash",
        &format!("#!/bin/sh\necho '{secret}' >&2\nexit 3\n"),
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/crash");
    assert_eq!(response.status, 502);
    assert!(
        !response.text().contains(&secret),
        "stderr leaked into the body"
    );

    let failure = portico.wait_for_log_line(&["stderr=", &secret], 5 * SECOND);
    for field in ["cpu_ms=", "max_rss_kb=", "exit"] {
        assert!(
            failure.contains(field),
            "no {field} in the failure line: {failure}"
        );
    }
    let access = portico.wait_for_log_line(&["path=/cgi-bin/crash", "status=502"], 5 * SECOND);
    assert!(access.contains("exit=3"), "access line: {access}");
}

#[test]
fn malformed_head_is_502() {
    let fx = Fixture::new();
    fx.script(
        "garbage",
        "#!/bin/sh\nprintf 'this is not a header\\r\\n\\r\\nbody\\n'\n",
    );
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/garbage").status, 502);
}

#[test]
fn malformed_head_502_shows_nothing_of_the_script_and_logs_its_exit_and_stderr() {
    // The 502 page is Portico's own: a script's output may carry paths, queries or secrets.
    let fx = Fixture::new();
    let stdout_text = unique("malformed-stdout");
    let stderr_text = unique("malformed-stderr");
    fx.script(
        "garbage",
        &format!(
            "#!/bin/sh\necho '{stderr_text}' >&2\nprintf '{stdout_text}\\r\\n\\r\\nbody {stdout_text}\\n'\nexit 4\n"
        ),
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/garbage");
    assert_eq!(response.status, 502);
    let body = response.text();
    assert!(
        !body.contains(&stdout_text),
        "stdout leaked into the body: {body:?}"
    );
    assert!(
        !body.contains(&stderr_text),
        "stderr leaked into the body: {body:?}"
    );

    let line = portico.wait_for_log_line(&["path=/cgi-bin/garbage", "status=502"], 5 * SECOND);
    assert!(line.contains(" exit=4 "), "no exit status in {line}");
    assert!(
        line.contains(" stderr=") && line.contains(&stderr_text),
        "no stderr tail in {line}"
    );
}

#[test]
fn head_cut_short_by_the_script_exiting_is_502() {
    let fx = Fixture::new();
    fx.script(
        "half",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n'\n",
    );
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/half").status, 502);
}

#[test]
fn head_without_content_type_location_or_status_is_502() {
    // RFC 3875 §6.2: every response has at least one CGI field.
    let fx = Fixture::new();
    fx.script(
        "bare",
        "#!/bin/sh\nprintf 'X-Only: header\\r\\n\\r\\nbody\\n'\n",
    );
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/bare").status, 502);
}

#[test]
fn status_that_is_not_a_three_digit_code_is_502() {
    let fx = Fixture::new();
    fx.script(
        "badstatus",
        "#!/bin/sh\nprintf 'Status: abc\\r\\nContent-Type: text/plain\\r\\n\\r\\nbody\\n'\n",
    );
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/badstatus").status, 502);
}

#[test]
fn head_deadline_is_504_and_kills_the_process_group() {
    let fx = Fixture::new();
    let marker = unique("head-deadline");
    let started = fx.path("started");
    fx.script(
        "sleeper",
        &fill(
            SILENT_WITH_CHILD,
            &[
                ("MARKER", &marker),
                ("STARTED", &started.display().to_string()),
            ],
        ),
    );
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
    let marker = unique("kill-grace");
    let started = fx.path("started");
    fx.script(
        "stubborn",
        &format!(
            r#"#!/bin/sh
trap '' TERM
perl -e '$SIG{{TERM}} = "IGNORE"; sleep 1000' '{marker}' </dev/null >/dev/null 2>&1 &
: > '{}'
sleep 30
"#,
            started.display()
        ),
    );
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

/// Starts a process marked `@MARKER@` outside the script's pipes, sends a head and a first
/// line, then says nothing for 3 s before a last line.
const HEAD_THEN_STALL_WITH_CHILD: &str = r#"#!/bin/sh
perl -e 'sleep 1000' '@MARKER@' </dev/null >/dev/null 2>&1 &
: > '@STARTED@'
printf 'Content-Type: text/plain\r\n\r\npartial\n'
sleep 3
printf 'late\n'
"#;

#[test]
fn script_idle_timeout_seconds_in_the_config_file_cuts_the_body_and_kills_the_group() {
    // The head comes at once, well within the head timeout; only the idle timeout can end it.
    let fx = Fixture::new();
    let marker = unique("idle-deadline");
    let started = fx.path("started");
    fx.script(
        "stall",
        &fill(
            HEAD_THEN_STALL_WITH_CHILD,
            &[
                ("MARKER", &marker),
                ("STARTED", &started.display().to_string()),
            ],
        ),
    );
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
    let marker = unique("total-deadline");
    let started = fx.path("started");
    fx.script(
        "ticker",
        &fill(
            TICKING_WITH_CHILD,
            &[
                ("MARKER", &marker),
                ("STARTED", &started.display().to_string()),
            ],
        ),
    );
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

#[test]
fn request_headers_over_max_header_bytes_are_431() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let portico = fx.serve(&[]);
    let big = "a".repeat(20_000);
    let response = portico.send(&Request::get("/cgi-bin/hello").header("X-Big", &big));
    assert_eq!(response.status, 431);
}

#[test]
fn request_headers_under_max_header_bytes_are_served() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let portico = fx.serve(&[]);
    let big = "a".repeat(6_000);
    let response = portico.send(&Request::get("/cgi-bin/hello").header("X-Big", &big));
    assert_eq!(response.status, 200);
}

#[test]
fn max_header_bytes_from_the_config_file_sets_where_431_starts() {
    // 9000 lies between the floor of 8192 and the default of 16384, so a request of
    // either size below tells the configured limit from both.
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let portico = fx.serve_config(
        r#"
[limits]
max_header_bytes = 9000

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let over = Request::get("/cgi-bin/hello").header("X-Big", &"a".repeat(9_500));
    assert_eq!(portico.send(&over).status, 431, "{}", portico.log());
    let under = Request::get("/cgi-bin/hello").header("X-Big", &"a".repeat(8_500));
    let response = portico.send(&under);
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.text(), "hello\n");
}

#[test]
fn slow_header_sender_is_cut_after_the_header_read_timeout() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
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
fn client_disconnect_mid_body_kills_the_script_group() {
    let fx = Fixture::new();
    let marker = unique("gone-mid-body");
    let started = fx.path("started");
    fx.script(
        "ticker",
        &fill(
            TICKING_WITH_CHILD,
            &[
                ("MARKER", &marker),
                ("STARTED", &started.display().to_string()),
            ],
        ),
    );
    let portico = fx.serve(&[]);
    let mut connection = portico.connect();
    connection.send(&Request::get("/cgi-bin/ticker"));
    assert_eq!(connection.read_head().unwrap().status, 200);
    wait_for_file(&started, 5 * SECOND);
    assert_marker_child_runs(&marker);
    connection.shutdown();
    drop(connection);
    portico.wait_for_log("client gone", 5 * SECOND);
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
}

#[test]
fn client_disconnect_before_the_head_kills_the_script_group() {
    let fx = Fixture::new();
    let marker = unique("gone-before-head");
    let started = fx.path("started");
    fx.script(
        "sleeper",
        &fill(
            SILENT_WITH_CHILD,
            &[
                ("MARKER", &marker),
                ("STARTED", &started.display().to_string()),
            ],
        ),
    );
    let portico = fx.serve(&[]);
    let mut connection = portico.connect();
    connection.send(&Request::get("/cgi-bin/sleeper"));
    wait_for_file(&started, 5 * SECOND);
    assert_marker_child_runs(&marker);
    connection.shutdown();
    drop(connection);
    portico.wait_for_log("client gone", 5 * SECOND);
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
}

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
    let marker = unique("shutdown-kill");
    let started = fx.path("started");
    fx.script(
        "sleeper",
        &fill(
            SILENT_WITH_CHILD,
            &[
                ("MARKER", &marker),
                ("STARTED", &started.display().to_string()),
            ],
        ),
    );
    let mut portico = fx.serve(&["--shutdown-timeout-seconds", "1"]);
    let addr = portico.addr();
    let in_flight = thread::spawn(move || {
        let _ = Connection::try_open(addr).and_then(|mut connection| {
            connection.try_send_raw(&Request::get("/cgi-bin/sleeper").to_bytes())?;
            connection.try_read_response("GET")
        });
    });
    wait_for_file(&started, 5 * SECOND);
    assert_marker_child_runs(&marker);
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
fn sigterm_right_after_the_listening_line_exits_0() {
    // A supervisor may stop Portico as soon as it reports ready.
    let fx = Fixture::new();
    let mut portico = fx.serve(&[]);
    portico.sigterm();
    let status = portico.wait_exit(5 * SECOND);
    assert_eq!(
        status.code(),
        Some(0),
        "exit {status:?}; log:\n{}",
        portico.log()
    );
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let fx = Fixture::new();
    let mut portico = fx.serve(&[]);
    portico.signal(libc::SIGINT);
    let status = portico.wait_exit(5 * SECOND);
    assert_eq!(
        status.code(),
        Some(0),
        "exit {status:?}; log:\n{}",
        portico.log()
    );
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
            crate::harness::wait_until(3 * SECOND, || portico.children().is_empty()),
            "threads {threads}: script processes outlived their requests: {:?}",
            portico.children()
        );
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
