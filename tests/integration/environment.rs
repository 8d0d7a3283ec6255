//! Everything in a script's environment besides the request's meta-variables, and how
//! the script is started: Portico's own environment never leaks, only PATH, `[env] pass`
//! and `[env] set` join the meta-variables, and a meta-variable wins a clash with
//! `[env] set`; the query string never becomes argv (RFC 3875 §4.4), and an extension
//! mapped to an interpreter runs a script that is not executable. The meta-variables
//! themselves are `meta_variables.rs` and `header_variables.rs`.

use std::collections::BTreeMap;

use crate::harness::{Fixture, Portico, unique};
use crate::http::Request;
use crate::scripts::{ENV, ENV_EXACT, env_for, parse_env, var};

/// The meta-variables of RFC 3875 §4.1 plus the ones the contract adds.
const META_VARIABLES: &[&str] = &[
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "GATEWAY_INTERFACE",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "REQUEST_URI",
    "SCRIPT_FILENAME",
    "DOCUMENT_ROOT",
    "SERVER_ADDR",
    "REMOTE_PORT",
    "REQUEST_SCHEME",
    "REDIRECT_STATUS",
    "UNIQUE_ID",
];

/// The variables of `env` that are neither meta-variables, `HTTP_*`, nor in `allowed`.
fn unexpected<'a>(env: &'a BTreeMap<String, String>, allowed: &[&str]) -> Vec<&'a String> {
    env.keys()
        .filter(|name| {
            !(META_VARIABLES.contains(&name.as_str())
                || name.starts_with("HTTP_")
                || allowed.contains(&name.as_str()))
        })
        .collect()
}

#[test]
fn porticos_own_environment_does_not_leak_to_scripts() {
    let fx = Fixture::new();
    fx.script("env-exact", ENV_EXACT);
    let name = unique("leak").to_uppercase().replace('-', "_");
    let value = unique("leaked-value");
    let portico = Portico::launch()
        .arg("--cgi-dir")
        .arg(fx.cgi_dir())
        .env(&name, &value)
        .start();
    let response = portico.get("/cgi-bin/env-exact");
    assert_eq!(response.status, 200, "{}", portico.log());
    assert!(!response.text().contains(&name), "{}", response.text());
    assert!(!response.text().contains(&value), "{}", response.text());
}

#[test]
fn environment_holds_only_path_env_pass_env_set_and_meta_variables() {
    let fx = Fixture::new();
    fx.script("env-exact", ENV_EXACT);
    fx.config(
        r#"
[env]
pass = ["LANG"]
set = { APP_MODE = "demo" }

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
    );
    let portico = Portico::launch()
        .arg("--config")
        .arg(fx.path("portico.toml"))
        .env("LANG", "C")
        .env("HOME", "/nonexistent-home")
        .env("PORTICO_TEST_UNLISTED", "x")
        .start();
    let response = portico.send(&Request::get("/cgi-bin/env-exact").header("X-Probe", "1"));
    assert_eq!(response.status, 200, "{}", portico.log());
    let env = parse_env(&response.text());
    let unexpected = unexpected(&env, &["PATH", "LANG", "APP_MODE"]);
    assert!(
        unexpected.is_empty(),
        "unexpected variables {unexpected:?} in {env:?}"
    );
    assert_eq!(var(&env, "LANG"), Some("C"));
    assert_eq!(var(&env, "APP_MODE"), Some("demo"));
    assert_eq!(var(&env, "HTTP_X_PROBE"), Some("1"));
}

#[test]
fn quick_mode_environment_holds_nothing_else_from_portico() {
    let fx = Fixture::new();
    fx.script("env-exact", ENV_EXACT);
    let portico = Portico::launch()
        .arg("--cgi-dir")
        .arg(fx.cgi_dir())
        .env("HOME", "/nonexistent-home")
        .start();
    let response = portico.get("/cgi-bin/env-exact");
    assert_eq!(response.status, 200, "{}", portico.log());
    let env = parse_env(&response.text());
    // LANG and TZ are what the contract's sample config passes; a default may do the same.
    let unexpected = unexpected(&env, &["PATH", "LANG", "TZ"]);
    assert!(
        unexpected.is_empty(),
        "unexpected variables {unexpected:?} in {env:?}"
    );
}

#[test]
fn env_pass_copies_listed_variables_and_env_set_sets_values() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    fx.config(
        r#"
[env]
pass = ["PORTICO_TEST_PASSED"]
set = { APP_MODE = "demo", GREETING = "hello world" }

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
    );
    let portico = Portico::launch()
        .arg("--config")
        .arg(fx.path("portico.toml"))
        .env("PORTICO_TEST_PASSED", "from-portico")
        .env("PORTICO_TEST_NOT_PASSED", "nope")
        .start();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "PORTICO_TEST_PASSED"), Some("from-portico"));
    assert_eq!(var(&env, "PORTICO_TEST_NOT_PASSED"), None);
    assert_eq!(var(&env, "APP_MODE"), Some("demo"));
    assert_eq!(var(&env, "GREETING"), Some("hello world"));
}

#[test]
fn path_is_always_passed_from_porticos_environment() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let path = "/usr/local/bin:/usr/bin:/bin:/portico-test-path-marker";
    let portico = Portico::launch()
        .arg("--cgi-dir")
        .arg(fx.cgi_dir())
        .env("PATH", path)
        .start();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "PATH"), Some(path));
}

#[test]
fn meta_variables_win_over_env_set_on_a_clash() {
    // conf/portico.toml: "Meta-variables (RFC 3875) win over these on a clash."
    let fx = Fixture::new();
    fx.script("env", ENV);
    let portico = fx.serve_config(
        r#"
[env]
set = { REQUEST_METHOD = "FAKE", SCRIPT_NAME = "/fake", QUERY_STRING = "fake=1" }

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let env = env_for(&portico, &Request::get("/cgi-bin/env?real=1"));
    assert_eq!(var(&env, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(var(&env, "SCRIPT_NAME"), Some("/cgi-bin/env"));
    assert_eq!(var(&env, "QUERY_STRING"), Some("real=1"));
}

#[test]
fn query_string_never_becomes_argv() {
    // RFC 3875 §4.4 lets a server turn an `isindex` query (no unencoded `=`) into
    // command-line arguments; Portico never does, so `?-e+...` cannot inject options.
    let fx = Fixture::new();
    fx.script(
        "args",
        r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
printf 'argc=%s\n' "$#"
printf 'argv=%s\n' "$*"
"#,
    );
    let portico = fx.serve(&[]);
    for query in ["first+second", "-e+rm", "a=b"] {
        let response = portico.get(&format!("/cgi-bin/args?{query}"));
        assert_eq!(response.status, 200, "query {query:?}");
        assert_eq!(response.text(), "argc=0\nargv=\n", "query {query:?}");
    }
}

#[test]
fn extension_with_an_interpreter_runs_a_non_executable_script() {
    let fx = Fixture::new();
    fx.file(
        "cgi-bin/hello.pl",
        "print \"Content-Type: text/plain\\r\\n\\r\\n\";\nprint \"perl ran $ENV{SCRIPT_NAME}\\n\";\n",
        0o644,
    );
    let portico = fx.serve_config(
        r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
interpreters = { ".pl" = "perl" }
"#,
        &[],
    );
    let response = portico.get("/cgi-bin/hello.pl");
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.text(), "perl ran /cgi-bin/hello.pl\n");
}
