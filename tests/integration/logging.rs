//! Portico's log on stderr: one access line per request with its structured fields (also
//! for requests that never reach a script), every stderr line of a script tagged with the
//! request id, the script and its pid (the id is UNIQUE_ID to the program), exit statuses
//! (codes and signals) and rusage, the level chosen by `--log-level` or RUST_LOG, and plain
//! text when stderr is not a terminal.

use std::thread;
use std::time::Duration;

use crate::harness::{Fixture, Portico, unique};
use crate::http::Request;

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

#[test]
fn missing_script_gets_an_access_line_blaming_the_client() {
    let fx = Fixture::new();
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/no-such-script").status, 404);
    let line = portico.wait_for_log_line(&["path=/cgi-bin/no-such-script", "status=404"], WAIT);
    assert!(line.contains("portico::access"), "{line}");
    assert_eq!(field(&line, "method"), Some("GET"), "{line}");
    assert_eq!(field(&line, "bytes"), Some("0"), "{line}");
    assert_eq!(field(&line, "side"), Some("client"), "{line}");
}

#[test]
fn body_over_max_body_bytes_gets_an_access_line_with_413() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let portico = fx.serve(&["--max-body-bytes", "1000"]);
    let response = portico.send(&Request::post("/cgi-bin/hello", vec![b'x'; 5000]));
    assert_eq!(response.status, 413);
    let line = portico.wait_for_log_line(&["path=/cgi-bin/hello", "status=413"], WAIT);
    assert!(line.contains("portico::access"), "{line}");
    assert_eq!(field(&line, "method"), Some("POST"), "{line}");
    assert_eq!(field(&line, "bytes"), Some("0"), "{line}");
    assert_eq!(field(&line, "side"), Some("client"), "{line}");
}

#[test]
fn failing_script_logs_its_cpu_time_and_peak_memory() {
    // The figures must be the script's own rusage (from wait4), not placeholders: it
    // spends 0.3 s of user CPU before it fails, so most of that has to show.
    let fx = Fixture::new();
    fx.script(
        "burn",
        "#!/bin/sh\nexec perl -e 'my $end = (times)[0] + 0.3; 1 while (times)[0] < $end; exit 1'\n",
    );
    let portico = fx.serve(&[]);
    assert_eq!(portico.get("/cgi-bin/burn").status, 502);
    let line = portico.wait_for_log_line(&["path=/cgi-bin/burn", "status=502"], WAIT);
    assert_eq!(field(&line, "exit"), Some("1"), "{line}");
    let cpu_ms: f64 = field(&line, "cpu_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cpu_ms= is not a number in {line}"));
    assert!(
        cpu_ms >= 250.0,
        "cpu_ms={cpu_ms} for 0.3 s of user CPU: {line}"
    );
    let max_rss_kb: u64 = field(&line, "max_rss_kb")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("max_rss_kb= is not a count in {line}"));
    assert!(max_rss_kb > 0, "{line}");
}

/// Quick mode on the fixture's `cgi-bin`, with RUST_LOG set in Portico's environment.
fn serve_with_rust_log(fx: &Fixture, rust_log: &str, flags: &[&str]) -> Portico {
    Portico::launch()
        .arg("--cgi-dir")
        .arg(fx.cgi_dir())
        .args(flags)
        .env("RUST_LOG", rust_log)
        .start()
}

/// Sends a request line no HTTP parser accepts: the connection ends with an error, which
/// Portico logs at debug level only.
fn end_a_connection_with_an_error(portico: &Portico) {
    let mut connection = portico.connect();
    connection.send_raw(b"garbage\r\n\r\n");
    assert_eq!(connection.read_response("GET").status, 400);
}

const CONNECTION_ERROR: &str = "connection ended with an error";

#[test]
fn rust_log_turns_on_debug_lines() {
    let fx = Fixture::new();
    let portico = serve_with_rust_log(&fx, "portico=debug", &[]);
    end_a_connection_with_an_error(&portico);
    let line = portico.wait_for_log_line(&[CONNECTION_ERROR], WAIT);
    assert!(line.contains("DEBUG"), "{line}");
}

#[test]
fn log_level_flag_beats_rust_log() {
    let fx = Fixture::new();
    let portico = serve_with_rust_log(&fx, "portico=debug", &["--log-level", "info"]);
    end_a_connection_with_an_error(&portico);
    // An info line logged before the 404 is answered, so the log has caught up with it.
    assert_eq!(portico.get("/cgi-bin/no-such-script").status, 404);
    portico.wait_for_log_line(&["path=/cgi-bin/no-such-script", "status=404"], WAIT);
    thread::sleep(Duration::from_millis(200));
    let log = portico.log();
    assert!(
        !log.contains(CONNECTION_ERROR),
        "a debug line under --log-level info:\n{log}"
    );
}

#[test]
fn log_level_warn_drops_access_lines_of_successes_but_keeps_failures() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    fx.script("crash", "#!/bin/sh\nexit 3\n");
    let portico = fx.serve(&["--log-level", "warn"]);
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
    assert_eq!(portico.get("/cgi-bin/no-such-script").status, 404);
    assert_eq!(portico.get("/cgi-bin/crash").status, 502);
    let failure = portico.wait_for_log_line(&["path=/cgi-bin/crash", "status=502"], WAIT);
    assert!(failure.contains("WARN"), "{failure}");
    // The success was logged, if at all, before the failure ran.
    thread::sleep(Duration::from_millis(200));
    let log = portico.log();
    for info in ["path=/cgi-bin/hello", "path=/cgi-bin/no-such-script"] {
        assert!(
            !log.contains(info),
            "an info access line under --log-level warn:\n{log}"
        );
    }
}

/// Every request has an id: its access line names it, so does each stderr line of its
/// script or FastCGI app, and the program gets it as UNIQUE_ID; two requests never share
/// one.
#[test]
fn a_request_id_joins_the_access_line_the_stderr_lines_and_unique_id() {
    let fx = Fixture::new();
    fx.script(
        "tell",
        "#!/bin/sh\necho \"a line for $UNIQUE_ID\" >&2\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$UNIQUE_ID\"\n",
    );
    let app = crate::launch::APP;
    let portico = fx.serve_config(
        &format!(
            "request_id_header = 'X-Request-Id'\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{app}'], workers = 1 }}\n"
        ),
        &[],
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = portico.get("/cgi-bin/tell");
        let id = response.text();
        assert_eq!(id.len(), 16, "{id:?}");
        assert_eq!(response.header("x-request-id"), Some(id.as_str()));
        let access = portico.wait_for_log_line(&["path=/cgi-bin/tell", &format!("id={id}")], WAIT);
        assert_eq!(field(&access, "id"), Some(id.as_str()), "{access}");
        let stderr = portico.wait_for_log_line(&[&format!("a line for {id}")], WAIT);
        assert_eq!(field(&stderr, "id"), Some(id.as_str()), "{stderr}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");

    // FastCGI: UNIQUE_ID among the params, the app's stderr line and the access line.
    let env = portico.get("/app/env").text();
    let id = env
        .lines()
        .find_map(|l| l.strip_prefix("UNIQUE_ID="))
        .unwrap_or_else(|| panic!("no UNIQUE_ID in {env}"));
    portico.wait_for_log_line(&["path=/app/env", &format!("id={id}")], WAIT);
    assert_eq!(portico.get("/app/stderr").status, 200);
    let access = portico.wait_for_log_line(&["path=/app/stderr", "id="], WAIT);
    let id = field(&access, "id").unwrap();
    portico.wait_for_log_line(
        &["fcgi_app: a line for the error log", &format!("id={id}")],
        WAIT,
    );
}

/// `--log-format json`: every line of the log is one JSON object, with the access line's
/// and the stderr lines' fields at the top level, so a log shipper needs no pattern.
#[test]
fn log_format_json_writes_one_object_per_line_with_the_fields_by_name() {
    let fx = Fixture::new();
    fx.script(
        "tell",
        "#!/bin/sh\necho 'a line for the log' >&2\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$UNIQUE_ID\"\n",
    );
    let portico = fx.serve(&["--log-format", "json"]);
    let id = portico.get("/cgi-bin/tell").text();
    assert_eq!(portico.get("/cgi-bin/missing").status, 404);
    portico.wait_for_log_line(&["/cgi-bin/missing"], WAIT);
    portico.wait_for_log_line(&["a line for the log"], WAIT);
    let log = portico.log();
    let objects: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line:?}"))
        })
        .collect();
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        objects
            .iter()
            .find(|o| pred(o))
            .unwrap_or_else(|| panic!("no such line in\n{log}"))
            .clone()
    };
    let access = find(&|o| o["target"] == "portico::access" && o["path"] == "/cgi-bin/tell");
    assert_eq!(access["id"], id.as_str(), "{access}");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 200);
    assert!(access["bytes"].as_u64().is_some(), "{access}");
    assert!(access["pid"].as_u64().is_some(), "{access}");
    assert!(
        access["timestamp"].is_string() && access["level"] == "INFO",
        "{access}"
    );
    let stderr = find(&|o| o["message"] == "a line for the log");
    assert_eq!(stderr["id"], id.as_str(), "{stderr}");
    assert_eq!(stderr["level"], "WARN");
    let missing = find(&|o| o["target"] == "portico::access" && o["path"] == "/cgi-bin/missing");
    assert_eq!(missing["status"], 404);
    assert!(missing["cause"].is_string(), "{missing}");
}

/// `log_format = "json"` in the config does what the flag does; a bad value, or a bad
/// `request_id_header`, is an error naming the file, line and key.
#[test]
fn log_format_and_request_id_header_come_from_the_config_and_bad_values_are_named() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let mounts = "[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n";
    let portico = fx.serve_config(&format!("log_format = 'json'\n{mounts}"), &[]);
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
    let line = portico.wait_for_log_line(&["/cgi-bin/hello"], WAIT);
    let access: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(access["status"], 200, "{access}");
    for (key, value) in [
        ("log_format", "'xml'"),
        ("request_id_header", "'X Request Id'"),
    ] {
        let outcome = fx.check(&format!("{key} = {value}\n{mounts}"));
        assert_eq!(outcome.code, Some(2), "{key}: {outcome:?}");
        assert!(
            outcome.stderr.contains("portico.toml:1") && outcome.stderr.contains(key),
            "{key}: {}",
            outcome.stderr
        );
    }
}
