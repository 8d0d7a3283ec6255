//! What the client gets when there is no good answer from a script: a script that is
//! missing (404) or not executable (403) is neither run nor shown; a script that crashes
//! or writes a head that is not a CGI head (RFC 3875 §6) is a 502 page of Portico's own,
//! with the script's exit and stderr in the log and none of its output in the body.
//! Deadlines (504) are `deadlines.rs`; heads that are valid are `responses.rs`.

use std::time::Duration;

use crate::harness::{Fixture, unique};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn script_that_cannot_run_is_refused_and_never_shown() {
    let fx = Fixture::new();
    fx.file(
        "cgi-bin/notes.txt",
        "#!/bin/sh\necho private-notes-content\n",
        0o644,
    );
    let portico = fx.serve(&[]);
    let cases = [
        ("no such script", "/cgi-bin/no-such-script", 404),
        ("no such directory", "/cgi-bin/no-such-dir/script", 404),
        ("not executable", "/cgi-bin/notes.txt", 403),
    ];
    for (case, target, status) in cases {
        let response = portico.get(target);
        assert_eq!(response.status, status, "{case}: GET {target}");
        assert!(
            !response.text().contains("private-notes-content"),
            "{case}: GET {target} showed the file"
        );
    }
}

#[test]
fn head_that_is_not_a_cgi_head_is_502() {
    let fx = Fixture::new();
    // (case, script name, script)
    let cases = [
        (
            "a line without a colon",
            "no-colon",
            "#!/bin/sh\nprintf 'this is not a header\\r\\n\\r\\nbody\\n'\n",
        ),
        (
            "cut short by the script exiting",
            "cut-short",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n'\n",
        ),
        (
            // RFC 3875 §6.2: every response has at least one CGI field.
            "no Content-Type, Location or Status",
            "no-cgi-field",
            "#!/bin/sh\nprintf 'X-Only: header\\r\\n\\r\\nbody\\n'\n",
        ),
        (
            "a Status that is not a three-digit code",
            "bad-status",
            "#!/bin/sh\nprintf 'Status: abc\\r\\nContent-Type: text/plain\\r\\n\\r\\nbody\\n'\n",
        ),
    ];
    for (_, name, script) in cases {
        fx.script(name, script);
    }
    let portico = fx.serve(&[]);
    for (case, name, _) in cases {
        let response = portico.get(&format!("/cgi-bin/{name}"));
        assert_eq!(response.status, 502, "{case}: {response:?}");
    }
}

#[test]
fn crash_before_head_is_502_and_stderr_goes_to_the_log_not_the_body() {
    let fx = Fixture::new();
    let secret = unique("crash-secret");
    fx.script(
        "crash",
        &format!("#!/bin/sh\necho '{secret}' >&2\nexit 3\n"),
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/crash");
    assert_eq!(response.status, 502);
    assert!(
        !response.text().contains(&secret),
        "stderr leaked into the body"
    );

    let failure = portico.wait_for_log_line(&["stderr=", &secret], 5 * SECOND);
    for field in ["cpu_ms=", "max_rss_kb=", "exit"] {
        assert!(
            failure.contains(field),
            "no {field} in the failure line: {failure}"
        );
    }
    let access = portico.wait_for_log_line(&["path=/cgi-bin/crash", "status=502"], 5 * SECOND);
    assert!(access.contains("exit=3"), "access line: {access}");
}

#[test]
fn malformed_head_502_shows_nothing_of_the_script_and_logs_its_exit_and_stderr() {
    // The 502 page is Portico's own: a script's output may carry paths, queries or secrets.
    let fx = Fixture::new();
    let stdout_text = unique("malformed-stdout");
    let stderr_text = unique("malformed-stderr");
    fx.script(
        "garbage",
        &format!(
            "#!/bin/sh\necho '{stderr_text}' >&2\nprintf '{stdout_text}\\r\\n\\r\\nbody {stdout_text}\\n'\nexit 4\n"
        ),
    );
    let portico = fx.serve(&[]);
    let response = portico.get("/cgi-bin/garbage");
    assert_eq!(response.status, 502);
    let body = response.text();
    assert!(
        !body.contains(&stdout_text),
        "stdout leaked into the body: {body:?}"
    );
    assert!(
        !body.contains(&stderr_text),
        "stderr leaked into the body: {body:?}"
    );

    let line = portico.wait_for_log_line(&["path=/cgi-bin/garbage", "status=502"], 5 * SECOND);
    assert!(line.contains(" exit=4 "), "no exit status in {line}");
    assert!(
        line.contains(" stderr=") && line.contains(&stderr_text),
        "no stderr tail in {line}"
    );
}
