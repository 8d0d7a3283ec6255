//! `limits.script_cpu_seconds` and `limits.script_memory_mb`: the resource limits every
//! script starts under (setrlimit before execve), like Apache's RLimitCPU and RLimitMEM.

use std::time::{Duration, Instant};

use crate::harness::Fixture;

const SECOND: Duration = Duration::from_secs(1);

fn config(limits: &str) -> String {
    format!(
        "listen = '127.0.0.1:0'\n[limits]\nscript_head_timeout_seconds = 30\n{limits}\n\
         [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n"
    )
}

#[test]
fn script_over_its_cpu_time_dies_of_sigxcpu_long_before_its_deadline() {
    let fx = Fixture::new();
    fx.script("spin", "#!/bin/sh\nwhile :; do :; done\n");
    let portico = fx.serve_config(&config("script_cpu_seconds = 1"), &[]);
    let started = Instant::now();
    let response = portico.get("/cgi-bin/spin");
    assert_eq!(response.status, 502);
    // One second of CPU, plus what the machine gave to others meanwhile; far from 30 s.
    assert!(
        started.elapsed() < 15 * SECOND,
        "took {:?}",
        started.elapsed()
    );
    let line = portico.wait_for_log_line(&["path=/cgi-bin/spin", "status=502"], 5 * SECOND);
    assert!(
        line.contains(&format!("signal {}", libc::SIGXCPU)),
        "access line: {line}"
    );
}

#[test]
fn script_over_its_address_space_fails_to_allocate_and_one_within_it_runs() {
    let fx = Fixture::new();
    // Perl dies with "Out of memory!" when a 256 MiB string cannot be allocated.
    fx.script(
        "alloc",
        "#!/usr/bin/perl\nmy $mb = $ENV{QUERY_STRING};\nmy $s = 'x' x ($mb << 20);\n\
         print \"Content-Type: text/plain\\r\\n\\r\\n\", length($s) >> 20, \"\\n\";\n",
    );
    let portico = fx.serve_config(&config("script_memory_mb = 128"), &[]);
    let small = portico.get("/cgi-bin/alloc?4");
    assert_eq!((small.status, small.text().as_str()), (200, "4\n"));
    let big = portico.get("/cgi-bin/alloc?256");
    assert_eq!(big.status, 502);
    portico.wait_for_log_line(&["stderr=", "Out of memory"], 5 * SECOND);
}

#[test]
fn without_limits_a_script_keeps_portico_own() {
    let fx = Fixture::new();
    fx.script(
        "limits",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nulimit -t\nulimit -v\n",
    );
    let portico = fx.serve_config(&config(""), &[]);
    let own = |flag: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("ulimit {flag}")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let response = portico.get("/cgi-bin/limits");
    assert_eq!(response.text(), own("-t") + &own("-v"));
    let limited = fx.serve_config(
        &config("script_cpu_seconds = 9\nscript_memory_mb = 300"),
        &[],
    );
    assert_eq!(limited.get("/cgi-bin/limits").text(), "9\n307200\n");
}
