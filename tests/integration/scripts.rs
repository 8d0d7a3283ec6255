//! CGI scripts shared by several test modules, and the parser for what `ENV` prints.
//!
//! Scripts that only one test needs are written inline in that test, next to its
//! assertions. Placeholders like `@MARKER@` are replaced by the test before writing.

use std::collections::BTreeMap;

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
