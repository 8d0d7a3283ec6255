//! Portico's log on stderr: one access line per request with its structured fields,
//! every stderr line of a script tagged with the script and its pid, exit statuses
//! (codes and signals), and plain text when stderr is not a terminal.

use std::time::Duration;

use crate::harness::{Fixture, unique};

const WAIT: Duration = Duration::from_secs(5);

/// The value of `field=` in a log line, up to the next space (quotes trimmed).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let value = line[start..].split(' ').next()?;
    Some(value.trim_matches('"'))
}

#[test]
fn access_line_has_method_path_status_bytes_duration_pid_and_exit() {
    let fx = Fixture::new();
    fx.script(
        "pid",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$$\"\n",
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/pid");
    assert_eq!(response.status, 200);
    let script_pid = response.text();

    let line = portico.wait_for_log_line(&["path=/cgi-bin/pid", "status=200"], WAIT);
    assert_eq!(field(&line, "method"), Some("GET"), "{line}");
    assert_eq!(field(&line, "pid"), Some(script_pid.as_str()), "{line}");
    assert_eq!(field(&line, "exit"), Some("0"), "{line}");
    assert!(
        field(&line, "bytes").is_some_and(|v| v.parse::<u64>().is_ok()),
        "bytes= is not a count in {line}"
    );
    assert!(
        field(&line, "duration_ms").is_some_and(|v| v.parse::<f64>().is_ok_and(|ms| ms >= 0.0)),
        "duration_ms= is not a number of milliseconds in {line}"
    );
}

#[test]
fn each_stderr_line_of_a_script_is_logged_with_script_and_pid() {
    let fx = Fixture::new();
    let first = unique("stderr-first");
    let second = unique("stderr-second");
    fx.script(
        "chatty",
        &format!(
            "#!/bin/sh\necho '{first}' >&2\necho '{second}' >&2\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$$\"\n"
        ),
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/chatty");
    assert_eq!(response.status, 200);
    let pid = response.text();
    for text in [&first, &second] {
        let line = portico.wait_for_log_line(&[text], WAIT);
        assert!(line.contains("script="), "{line}");
        assert_eq!(field(&line, "pid"), Some(pid.as_str()), "{line}");
    }
}

#[test]
fn exit_code_after_a_complete_response_is_logged() {
    let fx = Fixture::new();
    fx.script(
        "exit7",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\ndone\\n'\nexit 7\n",
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/exit7");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "done\n");
    let line = portico.wait_for_log_line(&["path=/cgi-bin/exit7", "status=200"], WAIT);
    assert_eq!(field(&line, "exit"), Some("7"), "{line}");
}

#[test]
fn script_killed_at_a_deadline_logs_a_signal_exit() {
    let fx = Fixture::new();
    fx.script("sleeper", "#!/bin/sh\nexec sleep 10\n");
    let portico = fx.serve(&["--script-timeout-seconds", "0.5"]);
    assert_eq!(portico.get("/cgi-bin/sleeper").status, 504);
    let line = portico.wait_for_log_line(&["path=/cgi-bin/sleeper", "status=504"], WAIT);
    assert!(
        line.contains("exit=signal") || line.contains("exit=\"signal"),
        "{line}"
    );
    portico.wait_for_log("deadline=head", WAIT);
}

#[test]
fn log_has_no_ansi_colours_when_stderr_is_not_a_terminal() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
    let log = portico.wait_for_log("path=/cgi-bin/hello", WAIT);
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log}");
}

#[test]
fn startup_prints_exactly_one_listening_line_per_listener() {
    let fx = Fixture::new();
    let portico = fx.serve(&[]);
    let log = portico.log();
    let listening: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("listening on http://"))
        .collect();
    assert_eq!(listening.len(), 1, "{log}");
    assert!(
        listening[0]
            .trim_end()
            .ends_with(&format!("listening on http://{}", portico.addr())),
        "{}",
        listening[0]
    );
}
