//! CGI scripts shared by several test modules, and the readers of what `ENV` prints.
//!
//! Scripts that only one test needs are written inline in that test, next to its
//! assertions. Placeholders like `@MARKER@` are replaced by the test before writing.

use std::collections::BTreeMap;

use crate::harness::{Fixture, Portico};
use crate::http::Request;

/// Prints the environment it was given, one `NAME=value` per line (dash adds `PWD`).
pub const ENV: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
exec env
"#;

/// Prints exactly the environment it received; perl adds nothing of its own.
pub const ENV_EXACT: &str = r#"#!/usr/bin/env perl
print "Content-Type: text/plain\r\n\r\n";
print "$_=$ENV{$_}\n" for sort keys %ENV;
"#;

/// A fixed document.
pub const HELLO: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nhello\n'
"#;

/// Echoes the request body, reading exactly CONTENT_LENGTH bytes: RFC 3875 §4.2 does
/// not oblige the server to close stdin after them.
pub const ECHO: &str = r#"#!/bin/sh
printf 'Content-Type: application/octet-stream\r\n\r\n'
exec head -c "${CONTENT_LENGTH:-0}"
"#;

/// Reports CONTENT_LENGTH, then echoes the body.
pub const LENGTH_AND_ECHO: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
printf 'length=%s\n' "$CONTENT_LENGTH"
exec head -c "${CONTENT_LENGTH:-0}"
"#;

/// Creates `@STARTED@`, holds its slot for `@SECONDS@` seconds, then answers.
pub const SLOW: &str = r#"#!/bin/sh
: > '@STARTED@'
sleep @SECONDS@
printf 'Content-Type: text/plain\r\n\r\nfinished\n'
"#;

/// Starts a long-lived background process marked with `@MARKER@` (it does not hold the
/// script's pipes, so only killing the process group ends it), then sleeps before any head.
pub const SILENT_WITH_CHILD: &str = r#"#!/bin/sh
perl -e 'sleep 1000' '@MARKER@' </dev/null >/dev/null 2>&1 &
: > '@STARTED@'
sleep 30
printf 'Content-Type: text/plain\r\n\r\ntoo late\n'
"#;

/// Like `SILENT_WITH_CHILD`, but sends a head and then a line every 0.2 s forever.
pub const TICKING_WITH_CHILD: &str = r#"#!/bin/sh
perl -e 'sleep 1000' '@MARKER@' </dev/null >/dev/null 2>&1 &
: > '@STARTED@'
printf 'Content-Type: text/plain\r\n\r\n'
while :; do echo tick; sleep 0.2; done
"#;

/// Fills in `@NAME@` placeholders.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut script = template.to_owned();
    for (name, value) in values {
        script = script.replace(&format!("@{name}@"), value);
    }
    assert!(
        !script.contains("@STARTED@")
            && !script.contains("@MARKER@")
            && !script.contains("@SECONDS@"),
        "unfilled placeholder in:\n{script}"
    );
    script
}

/// The variables printed by `ENV` or `ENV_EXACT`.
pub fn parse_env(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Quick mode serving `ENV` at `/cgi-bin/env`.
pub fn serve_env() -> (Fixture, Portico) {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let portico = fx.serve(&[]);
    (fx, portico)
}

/// The environment an `ENV` script printed for `request`, which must be answered 200.
pub fn env_for(portico: &Portico, request: &Request) -> BTreeMap<String, String> {
    let response = portico.send(request);
    assert_eq!(
        response.status,
        200,
        "env script answered {} {:?}; log:\n{}",
        response.status,
        response.text(),
        portico.log()
    );
    parse_env(&response.text())
}

/// Variable `name` of an environment from `parse_env`, None when unset.
pub fn var<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str)
}

/// A request to an `ENV` script and the variables it must see: `Some(value)` set to
/// exactly that, `None` unset.
pub type EnvCase<'a> = (&'a str, Request, &'a [(&'a str, Option<&'a str>)]);

/// Sends each case's request in turn and checks its variables; a failure names its case.
#[track_caller]
pub fn assert_env_cases(portico: &Portico, cases: &[EnvCase<'_>]) {
    for (case, request, expected) in cases {
        let response = portico.send(request);
        assert_eq!(
            response.status,
            200,
            "{case}: {:?}; log:\n{}",
            response.text(),
            portico.log()
        );
        let env = parse_env(&response.text());
        for (name, value) in *expected {
            assert_eq!(var(&env, name), *value, "{case}: {name} in {env:?}");
        }
    }
}
