//! Scripts that misbehave on purpose: one that leaves a daemon holding its stdout open, one
//! that opens thousands of files, ones whose children escape the process group (`setsid`)
//! or are left behind in it, one that writes a file larger than it may. Each request still
//! ends by its deadlines, the script's whole group is ended, escaped children are killed
//! (`limits.kill_orphans`), and Portico's own file descriptors and memory stay flat.

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{
    Fixture, Portico, assert_no_process_with_arg, assert_process_with_arg_runs, processes_with_arg,
    unique,
};
use crate::http::Request;

const SECOND: Duration = Duration::from_secs(1);

fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

#[test]
fn a_daemon_holding_stdout_open_is_ended_with_its_group_at_the_idle_deadline() {
    let fx = Fixture::new();
    let marker = unique("stdout-daemon");
    // The background child inherits stdout: the script exits, its stdout never ends.
    fx.script(
        "daemon",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nstarted\\n'\n\
             perl -e 'sleep 1000' '{marker}' &\nexit 0\n"
        ),
    );
    let portico = fx.serve(&["--script-timeout-seconds", "1"]);
    let start = Instant::now();
    let mut connection = portico.connect();
    connection.set_read_timeout(10 * SECOND);
    connection.send(&Request::get("/cgi-bin/daemon"));
    let head = connection.read_head().expect("the head");
    assert_eq!(head.status, 200);
    assert_process_with_arg_runs(&marker, 5 * SECOND);
    portico.wait_for_log_line(&["path=/cgi-bin/daemon", "deadline=idle"], 5 * SECOND);
    assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
    let ended = start.elapsed();
    assert!(ended < 5 * SECOND, "ended after {ended:?}");
    portico.assert_no_zombies();
}

#[test]
fn scripts_opening_thousands_of_files_leave_portico_own_fds_and_memory_flat() {
    let fx = Fixture::new();
    fx.script(
        "hoard",
        "#!/usr/bin/env perl\nmy @fds;\n\
         for (1..3000) { open(my $fh, '<', '/dev/null') or last; push @fds, $fh; }\n\
         print \"Content-Type: text/plain\\r\\n\\r\\n\", scalar(@fds), \"\\n\";\n",
    );
    let portico = fx.serve(&[]);
    // Warm: the first requests size Portico's own tables.
    for _ in 0..10 {
        assert_eq!(portico.get("/cgi-bin/hoard").status, 200);
    }
    let (fds, rss) = (open_fds(portico.pid()), portico.peak_rss_kib());
    for round in 0..100 {
        let response = portico.get("/cgi-bin/hoard");
        assert_eq!(response.status, 200, "round {round}");
        let opened: usize = response.text().trim().parse().unwrap();
        assert!(
            opened > 500,
            "round {round}: the script opened only {opened}"
        );
    }
    let (fds_after, rss_after) = (open_fds(portico.pid()), portico.peak_rss_kib());
    assert!(
        fds_after <= fds + 4,
        "Portico's fds went from {fds} to {fds_after}"
    );
    assert!(
        rss_after <= rss + 4096,
        "Portico's peak RSS went from {rss} to {rss_after} KiB"
    );
    portico.assert_no_zombies();
}

/// A script that leaves two sleepers behind and exits: one in a session of its own
/// (`setsid`, out of the script's process group), one left in the group with its stdout
/// closed, so the request ends normally while both live on.
fn script_leaving_children(fx: &Fixture) -> (String, String) {
    let (escaped, left) = (unique("escaped-setsid"), unique("left-behind"));
    fx.script(
        "leave",
        &format!(
            "#!/bin/sh\n\
             setsid perl -e 'sleep 1000' '{escaped}' </dev/null >/dev/null 2>&1 &\n\
             perl -e 'sleep 1000' '{left}' </dev/null >/dev/null 2>&1 &\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\nleft\\n'\n"
        ),
    );
    (escaped, left)
}

#[test]
fn children_that_escape_the_group_or_outlive_their_script_are_killed_and_logged() {
    let fx = Fixture::new();
    let (escaped, left) = script_leaving_children(&fx);
    fx.script("hello", crate::scripts::HELLO);
    let portico = fx.serve(&[]);
    for round in 0..3 {
        let response = portico.get("/cgi-bin/leave");
        assert_eq!(response.status, 200, "round {round}");
        assert_eq!(response.text(), "left\n");
    }
    // One to two sweeps of 0.5 s after the script exits.
    assert_no_process_with_arg(&escaped, 5 * SECOND, &portico.log());
    assert_no_process_with_arg(&left, 5 * SECOND, &portico.log());
    let line = portico.wait_for_log_line(&["escaped the process group", &escaped], 5 * SECOND);
    assert!(line.contains("pid="), "{line}");
    portico.wait_for_log_line(&["escaped the process group", &left], 5 * SECOND);
    portico.assert_no_zombies();
    // Portico's own children, the scripts, are never taken for escaped ones.
    for _ in 0..50 {
        assert_eq!(portico.get("/cgi-bin/hello").status, 200);
    }
}

#[test]
fn with_kill_orphans_off_escaped_children_live_on() {
    let fx = Fixture::new();
    let (escaped, left) = script_leaving_children(&fx);
    let portico = fx.serve_config(
        "[limits]\nkill_orphans = false\n[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n",
        &[],
    );
    assert_eq!(portico.get("/cgi-bin/leave").status, 200);
    std::thread::sleep(2 * SECOND);
    let alive = (processes_with_arg(&escaped), processes_with_arg(&left));
    for pid in alive.0.iter().chain(&alive.1) {
        // SAFETY: kill(2) has no memory-safety preconditions; these carry this test's markers.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    assert_eq!((alive.0.len(), alive.1.len()), (1, 1), "{}", portico.log());
    assert!(!portico.log().contains("escaped the process group"));
}

#[test]
fn a_script_writing_past_its_file_size_limit_is_stopped_and_logged() {
    let fx = Fixture::new();
    let out = fx.path("big.out");
    fx.script(
        "fill",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nwriting\\n'\n\
             exec head -c 8388608 /dev/zero > '{}'\n",
            out.display()
        ),
    );
    fx.script("hello", crate::scripts::HELLO);
    let portico = fx.serve_config(
        "[limits]\nscript_file_size_mb = 1\n[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n",
        &[],
    );
    // Killed by SIGXFSZ (25): a script killed by a signal did not answer, so the client
    // gets a 502, or, when the kill came after its head went out (1 MiB takes a while
    // on a busy machine), a body that ends cut short; never a complete `writing`.
    let response = portico.get("/cgi-bin/fill");
    match response.status {
        502 => {}
        200 => assert!(!response.complete, "a killed script's body looked whole"),
        other => panic!("status {other}: {}", portico.log()),
    }
    let written = fs::metadata(&out).unwrap().len();
    assert_eq!(written, 1 << 20, "the file stops at the limit");
    portico.wait_for_log_line(&["path=/cgi-bin/fill", "signal 25"], 5 * SECOND);
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
}

#[test]
fn a_script_filling_the_temp_directory_fails_only_the_bodies_that_need_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped: a temp directory that can fill up is a tmpfs, and mounting one needs root"
        );
        return;
    }
    let fx = Fixture::new();
    let tmp = fx.dir("tmp");
    let tmp = tmp.to_str().unwrap();
    fx.script("hello", crate::scripts::HELLO);
    fx.script("echo", crate::scripts::ECHO);
    fx.script(
        "fill",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
             head -c 4194304 /dev/zero > '{tmp}/fill' || echo full\n"
        ),
    );
    // Portico's temp directory (TMPDIR) on a 1 MiB tmpfs of its own mount namespace.
    let mount = format!("mount -t tmpfs -o size=1m portico-test '{tmp}' && exec \"$@\"");
    let portico = Portico::launch()
        .wrapped(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &mount,
            "sh",
        ])
        .env("TMPDIR", tmp)
        .args([
            "--config",
            fx.config("[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n")
                .to_str()
                .unwrap(),
        ])
        .start();
    let fds = open_fds(portico.pid());
    let body: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    let chunked = || {
        Request::post("/cgi-bin/echo", Vec::new())
            .chunked(body.chunks(64 * 1024).map(<[u8]>::to_vec).collect())
    };

    let filled = portico.get("/cgi-bin/fill");
    assert_eq!((filled.status, filled.text()), (200, "full\n".to_owned()));
    // A chunked body past `body_memory_bytes` must be spooled, and cannot be.
    let refused = portico.send(&chunked());
    assert_eq!(refused.status, 500, "{}", portico.log());
    portico.wait_for_log_line(&["path=/cgi-bin/echo", "status=500"], 5 * SECOND);
    assert!(
        portico.log().contains("No space left on device"),
        "{}",
        portico.log()
    );
    // Everything that needs no temp file is still served.
    let streamed = portico.send(&Request::post("/cgi-bin/echo", body.clone()));
    assert_eq!((streamed.status, streamed.body.len()), (200, body.len()));
    assert_eq!(streamed.body, body);
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);

    // Room again: the same request is spooled and answered whole.
    let emptied = std::process::Command::new("nsenter")
        .args([
            "-t",
            &portico.pid().to_string(),
            "-m",
            "rm",
            &format!("{tmp}/fill"),
        ])
        .status()
        .unwrap();
    assert!(emptied.success());
    let spooled = portico.send(&chunked());
    assert_eq!(spooled.status, 200, "{}", portico.log());
    assert_eq!(spooled.body, body);
    assert!(open_fds(portico.pid()) <= fds + 4, "Portico's fds grew");
}
