//! Bodies flowing through Portico in both directions (STYLE rule 7): a request body the
//! script never reads, 64 MiB echoed byte for byte, 256 MiB streamed out, output reaching
//! the client before the script ends, a chunked request body spooled whole, and a 1 MiB
//! stderr flood; with Portico's own memory flat while many times that passes through.
//! Body size limits (413) are `limits.rs`; a client that stops reading is `clients.rs`.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, Portico};
use crate::http::{self, Request};
use crate::scripts::{ECHO, LENGTH_AND_ECHO};

const SECOND: Duration = Duration::from_secs(1);

/// How much Portico's peak RSS may grow while a body many times larger streams through.
const RSS_GROWTH_BOUND_KIB: u64 = 32 << 10;

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

#[test]
fn post_of_64_mib_is_echoed_exactly() {
    let fx = Fixture::new();
    fx.script("echo", ECHO);
    let portico = fx.serve(&["--max-body-bytes", "100000000"]);
    echo_exactly(&portico, 64 << 20, Duration::ZERO);
}

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
fn chunked_request_body_is_spooled_whole_and_gets_a_content_length() {
    // RFC 3875 §4.1.2 wants CONTENT_LENGTH, so a chunked body is spooled first: in memory
    // up to `body_memory_bytes`, then on disk.
    let fx = Fixture::new();
    fx.script("length-and-echo", LENGTH_AND_ECHO);
    let default = fx.serve(&[]);
    let small_memory = fx.serve_config(
        r#"
[limits]
body_memory_bytes = 8192

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let mut large = vec![0u8; 300 * 1024];
    fill_block(&mut large, 7);
    let cases: [(&str, &Portico, Vec<Vec<u8>>); 2] = [
        (
            "three small chunks",
            &default,
            vec![b"hello ".to_vec(), b"chunked ".to_vec(), b"world".to_vec()],
        ),
        (
            "300 KiB in 7000-byte chunks, over body_memory_bytes = 8192",
            &small_memory,
            large.chunks(7000).map(<[u8]>::to_vec).collect(),
        ),
    ];
    for (case, portico, chunks) in cases {
        let body = chunks.concat();
        let request = Request::new("POST", "/cgi-bin/length-and-echo").chunked(chunks);
        let response = portico.send(&request);
        assert_eq!(response.status, 200, "{case}; log:\n{}", portico.log());
        let mut expected = format!("length={}\n", body.len()).into_bytes();
        expected.extend_from_slice(&body);
        assert_eq!(response.body.len(), expected.len(), "{case}");
        assert!(response.body == expected, "{case}: echoed body differs");
    }
}
