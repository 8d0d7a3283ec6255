//! Scripts that misbehave on purpose: one that leaves a daemon holding its stdout open, one
//! that opens thousands of files, one that leaves children behind in its process group.
//! Each request still ends by its deadlines, the script's whole group is ended, and
//! Portico's own file descriptors and memory stay flat. (A child that leaves the group
//! with `setsid` and a double fork is out of Portico's reach; README says so.)

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, assert_no_process_with_arg, assert_process_with_arg_runs, unique};
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
