//! Configuration: `portico check`, errors that name file, line and key (exit 2), the
//! same errors from `serve`, how relative paths and the default config file are found,
//! listeners and mounts from the file, command-line flags beating the file, and the
//! repository's own `conf/portico.toml` as `serve` finds it with no arguments.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Fixture, Portico, run_portico, wait_for_file};
use crate::http::{self, Request};
use crate::scripts::HELLO;

const SECOND: Duration = Duration::from_secs(1);

const MOUNT: &str = r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#;

/// Runs `portico ARGS...` in the fixture root.
fn portico_in(fx: &Fixture, args: &[&str]) -> crate::harness::Outcome {
    run_portico(args, fx.root(), 10 * SECOND)
}

/// Asserts a config error: exit 2 and a stderr naming `file:line` and `key`.
fn assert_config_error(outcome: &crate::harness::Outcome, file: &str, line: usize, key: &str) {
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    let location = format!("{file}:{line}");
    assert!(
        outcome.stderr.contains(&location),
        "stderr does not name {location}: {:?}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains(key),
        "stderr does not name the key {key}: {:?}",
        outcome.stderr
    );
}

#[test]
fn check_accepts_a_valid_config_and_exits_0() {
    let fx = Fixture::new();
    fx.dir("htdocs");
    fx.file(
        "good.toml",
        r#"listen = ["127.0.0.1:8080"]
server_name = "localhost"
document_root = "htdocs"

[limits]
max_header_bytes = 16384
max_body_bytes = 10485760
body_memory_bytes = 262144
header_read_timeout_seconds = 10
script_head_timeout_seconds = 30
script_idle_timeout_seconds = 30
script_total_timeout_seconds = 300
kill_grace_seconds = 1
max_concurrent_scripts = 64
queue_timeout_seconds = 5
max_local_redirects = 10
shutdown_timeout_seconds = 10

[env]
pass = ["LANG", "TZ"]
set = { APP_MODE = "demo" }

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
pass_authorization = false
interpreters = { ".pl" = "perl", ".py" = "python3" }
"#,
        0o644,
    );
    let outcome = portico_in(&fx, &["check", "--config", "good.toml"]);
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
    let printed = format!("{}{}", outcome.stdout, outcome.stderr);
    assert!(printed.contains("ok: good.toml"), "{outcome:?}");
}

#[test]
fn check_rejects_an_unknown_key_naming_file_line_and_key() {
    let fx = Fixture::new();
    fx.file(
        "typo.toml",
        r#"# a config with a typo on line 4
[limits]
max_body_bytes = 1000
max_body_bytez = 5

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        0o644,
    );
    let outcome = portico_in(&fx, &["check", "--config", "typo.toml"]);
    assert_config_error(&outcome, "typo.toml", 4, "max_body_bytez");
}

#[test]
fn check_rejects_an_unknown_top_level_key() {
    let fx = Fixture::new();
    fx.file(
        "typo.toml",
        "listen = \"127.0.0.1:8080\"\nlisen = \"127.0.0.1:8081\"\n",
        0o644,
    );
    let outcome = portico_in(&fx, &["check", "--config", "typo.toml"]);
    assert_config_error(&outcome, "typo.toml", 2, "lisen");
}

#[test]
fn check_rejects_an_unknown_key_in_a_cgi_mount() {
    let fx = Fixture::new();
    fx.file(
        "typo.toml",
        "[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"cgi-bin\"\npass_authorisation = true\n",
        0o644,
    );
    let outcome = portico_in(&fx, &["check", "--config", "typo.toml"]);
    assert_config_error(&outcome, "typo.toml", 4, "pass_authorisation");
}

#[test]
fn check_rejects_a_value_of_the_wrong_type() {
    let fx = Fixture::new();
    fx.file(
        "bad-type.toml",
        "# limits as words\n[limits]\nmax_body_bytes = \"ten\"\n",
        0o644,
    );
    let outcome = portico_in(&fx, &["check", "--config", "bad-type.toml"]);
    assert_config_error(&outcome, "bad-type.toml", 3, "limits.max_body_bytes");
}

#[test]
fn check_rejects_max_header_bytes_below_8192() {
    let fx = Fixture::new();
    fx.file("small.toml", "[limits]\nmax_header_bytes = 100\n", 0o644);
    let outcome = portico_in(&fx, &["check", "--config", "small.toml"]);
    assert_config_error(&outcome, "small.toml", 2, "max_header_bytes");
}

#[test]
fn check_of_a_missing_file_exits_2() {
    let fx = Fixture::new();
    let outcome = portico_in(&fx, &["check", "--config", "absent.toml"]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(outcome.stderr.contains("absent.toml"), "{outcome:?}");
}

#[test]
fn serve_with_a_bad_config_exits_2_without_listening() {
    let fx = Fixture::new();
    fx.file("typo.toml", "[limits]\nmax_body_bytez = 5\n", 0o644);
    let outcome = portico_in(
        &fx,
        &["serve", "--config", "typo.toml", "--listen", "127.0.0.1:0"],
    );
    assert_config_error(&outcome, "typo.toml", 2, "max_body_bytez");
    assert!(!outcome.stderr.contains("listening on"), "{outcome:?}");
}

#[test]
fn a_missing_document_root_stops_the_start_naming_the_flag() {
    let fx = Fixture::new();
    fx.file("not-a-dir", "", 0o644);
    for dir in ["no-such-dir", "not-a-dir"] {
        let outcome = portico_in(
            &fx,
            &[
                "serve",
                "--cgi-dir",
                "cgi-bin",
                "--document-root",
                dir,
                "--listen",
                "127.0.0.1:0",
            ],
        );
        assert_eq!(outcome.code, Some(2), "{dir}: {outcome:?}");
        // Portico's own config error, naming the flag and the path, not clap's.
        assert!(
            outcome.stderr.contains(&format!("--document-root: {dir}")),
            "{dir}: {:?}",
            outcome.stderr
        );
        assert!(!outcome.stderr.contains("listening on"), "{outcome:?}");
    }
}

#[test]
fn flag_beats_the_file_for_max_concurrent_scripts() {
    let fx = Fixture::new();
    let started = fx.slow_script("2");
    fx.script("hello", HELLO);
    let portico = fx.serve_config(
        &format!("[limits]\nmax_concurrent_scripts = 64\nqueue_timeout_seconds = 0.5\n{MOUNT}"),
        &["--max-concurrent-scripts", "1"],
    );
    let addr = portico.addr();
    let holder = thread::spawn(move || http::send(addr, &Request::get("/cgi-bin/slow")));
    wait_for_file(&started, 5 * SECOND);
    let response = portico.get("/cgi-bin/hello");
    assert_eq!(
        response.status, 503,
        "the file's 64 slots won over the flag's 1"
    );
    assert_eq!(holder.join().unwrap().status, 200);
}

#[test]
fn flag_beats_the_file_for_the_script_timeout() {
    let fx = Fixture::new();
    fx.script(
        "sleeper",
        "#!/bin/sh\nsleep 4\nprintf 'Content-Type: text/plain\\r\\n\\r\\nlate\\n'\n",
    );
    let portico = fx.serve_config(
        &format!(
            "[limits]\nscript_head_timeout_seconds = 30\nscript_idle_timeout_seconds = 30\n{MOUNT}"
        ),
        &["--script-timeout-seconds", "1"],
    );
    let start = Instant::now();
    let response = portico.get("/cgi-bin/sleeper");
    assert_eq!(response.status, 504);
    assert!(
        start.elapsed() < Duration::from_millis(3500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn paths_in_the_config_are_relative_to_its_directory() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    fx.file(
        "conf/site.toml",
        "[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"../cgi-bin\"\n",
        0o644,
    );
    let elsewhere = fx.dir("elsewhere");
    let portico = Portico::launch()
        .arg("--config")
        .arg(fx.path("conf/site.toml"))
        .current_dir(&elsewhere)
        .start();
    let response = portico.get("/cgi-bin/hello");
    assert_eq!(response.status, 200, "{}", portico.log());
}

#[test]
fn serve_without_config_or_cgi_dir_loads_conf_portico_toml_from_the_cwd() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    fx.file(
        "conf/portico.toml",
        "[[cgi]]\nmount = \"/from-default-config\"\ndir = \"../cgi-bin\"\n",
        0o644,
    );
    let portico = Portico::launch().current_dir(fx.root()).start();
    let response = portico.get("/from-default-config/hello");
    assert_eq!(response.status, 200, "{}", portico.log());
}

#[test]
fn listen_may_be_a_single_string() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let config = fx.config(&format!("listen = \"127.0.0.1:0\"\n{MOUNT}"));
    let portico = Portico::launch()
        .arg("--config")
        .arg(config)
        .listen_from_config(1)
        .start();
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
}

#[test]
fn every_listen_address_prints_its_own_line_and_serves() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let config = fx.config(&format!(
        "listen = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n{MOUNT}"
    ));
    let portico = Portico::launch()
        .arg("--config")
        .arg(config)
        .listen_from_config(2)
        .start();
    let addrs = portico.addrs().to_vec();
    assert_ne!(addrs[0], addrs[1]);
    for addr in addrs {
        assert_eq!(
            http::send(addr, &Request::get("/cgi-bin/hello")).status,
            200,
            "{addr}"
        );
    }
    let lines = portico.log().matches("listening on http://").count();
    assert_eq!(lines, 2, "{}", portico.log());
}

#[test]
fn mount_flag_sets_the_quick_mode_mount() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let portico = fx.serve(&["--mount", "/scripts"]);
    assert_eq!(portico.get("/scripts/hello").status, 200);
    assert_eq!(portico.get("/cgi-bin/hello").status, 404);
}

#[test]
fn several_cgi_mounts_each_serve_their_own_directory() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    fx.file(
        "other/hello",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nother\\n'\n",
        0o755,
    );
    let portico = fx.serve_config(
        r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"

[[cgi]]
mount = "/other"
dir = "other"
"#,
        &[],
    );
    assert_eq!(portico.get("/cgi-bin/hello").text(), "hello\n");
    assert_eq!(portico.get("/other/hello").text(), "other\n");
}

#[test]
fn max_connections_holds_further_clients_in_the_backlog() {
    let fx = Fixture::new();
    fx.script("hello", HELLO);
    let portico = fx.serve_config(&format!("[limits]\nmax_connections = 1\n{MOUNT}"), &[]);
    // The first client keeps its connection open (HTTP/1.1 keep-alive).
    let mut first = portico.connect();
    let request = Request::get("/cgi-bin/hello").keep_alive();
    assert_eq!(first.round_trip(&request).status, 200);
    // The second is accepted by the kernel but not served while the first stays.
    let mut second = portico.connect();
    second.set_read_timeout(Duration::from_millis(700));
    second.send(&Request::get("/cgi-bin/hello"));
    assert!(
        second.try_read_response("GET").is_err(),
        "served past max_connections"
    );
    drop(first);
    second.set_read_timeout(Duration::from_secs(5));
    assert_eq!(second.read_response("GET").status, 200);
}

/// The repository root, where README's `cargo run --release -- serve` runs.
fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn default_config_listens_on_127_0_0_1_8080() {
    // README promises `curl http://127.0.0.1:8080/cgi-bin/hello.sh` after a bare `serve`.
    let text = fs::read_to_string(repository().join("conf/portico.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    let listen = config.get("listen").expect("conf/portico.toml sets listen");
    let addrs: Vec<&str> = match listen {
        toml::Value::String(one) => vec![one.as_str()],
        toml::Value::Array(many) => many.iter().filter_map(toml::Value::as_str).collect(),
        other => panic!("listen is {other:?}"),
    };
    assert_eq!(addrs, ["127.0.0.1:8080"]);
}

#[test]
fn bare_serve_in_the_repository_serves_its_cgi_bin_with_only_listen_overridden() {
    // No --config and no --cgi-dir: conf/portico.toml is found from the working directory.
    // --listen stands in for its 127.0.0.1:8080, which another program may hold.
    let portico = Portico::launch().current_dir(repository()).start();
    let response = portico.get("/cgi-bin/hello.sh");
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.text(), "hello\n");
    let log = portico.log();
    let listening: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("listening on http://"))
        .collect();
    assert_eq!(
        listening.len(),
        1,
        "the --listen flag did not replace the file's listen:\n{log}"
    );
    assert!(!listening[0].contains(":8080"), "{}", listening[0]);
}
