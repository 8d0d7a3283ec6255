//! FastCGI Authorizers (FastCGI 1.0 §6.3) in front of a CGI mount (one in Python,
//! `tests/fixtures/fcgi_authorizer.py`) and a FastCGI mount (one in C on libfcgi, built
//! here): a 200 lets the request through with its `Variable-` headers as meta-variables;
//! any other answer reaches the client as written and the program never runs; an
//! authorizer that crashes is a 502, and nothing reaches the program.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Fixture, Portico};
use crate::http::Request;

const SECOND: Duration = Duration::from_secs(1);
const AUTHORIZER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/fcgi_authorizer.py"
);
const FCGI_APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

/// An authorizer on libfcgi: Bearer good is let through as carol, the rest forbidden.
const C_AUTHORIZER: &str = r#"
#include <fcgiapp.h>
#include <string.h>

int main(void)
{
    FCGX_Request req;
    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&req) >= 0) {
        const char *role = FCGX_GetParam("FCGI_ROLE", req.envp);
        const char *auth = FCGX_GetParam("HTTP_AUTHORIZATION", req.envp);
        if (role && strcmp(role, "AUTHORIZER") == 0 && auth && strcmp(auth, "Bearer good") == 0)
            FCGX_FPrintF(req.out, "Status: 200 OK\r\nVariable-AUTH_USER: carol\r\n\r\n");
        else
            FCGX_FPrintF(req.out, "Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nforbidden by C (%s)\n", role ? role : "?");
        FCGX_Finish_r(&req);
    }
    return 0;
}
"#;

/// The script behind the Python authorizer: counts its runs and says what it was given.
fn whoami(fx: &Fixture) {
    let runs = fx.path("runs");
    fx.script(
        "whoami",
        &format!(
            "#!/bin/sh\necho run >> '{}'\nbody=$(head -c \"${{CONTENT_LENGTH:-0}}\" | wc -c)\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
             printf 'AUTH_USER=%s\\nAUTH_LEVEL=%s\\nbody=%s\\n' \"$AUTH_USER\" \"$AUTH_LEVEL\" $body\n",
            runs.display()
        ),
    );
}

fn runs(fx: &Fixture) -> usize {
    std::fs::read_to_string(fx.path("runs")).map_or(0, |text| text.lines().count())
}

fn build_c_authorizer(dir: &Path) -> std::path::PathBuf {
    let source = dir.join("authorizer.c");
    std::fs::write(&source, C_AUTHORIZER).unwrap();
    let program = dir.join("authorizer-c");
    let status = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&program)
        .arg(&source)
        .arg("-lfcgi")
        .status()
        .expect("cc runs");
    assert!(status.success(), "the libfcgi authorizer did not build");
    program
}

fn serve(fx: &Fixture) -> Portico {
    whoami(fx);
    let c = build_c_authorizer(fx.root());
    fx.serve_config(
        &format!(
            "[access_log]\npath = 'access.log'\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             authorizer = {{ launch = {{ command = ['{AUTHORIZER}'], workers = 1 }} }}\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{FCGI_APP}'], workers = 1 }}\n\
             authorizer = {{ launch = {{ command = ['{}'], workers = 1 }} }}\n",
            c.display()
        ),
        &[],
    )
}

fn bearer(path: &str, token: &str) -> Request {
    Request::get(path).header("Authorization", &format!("Bearer {token}"))
}

#[test]
fn a_200_lets_the_request_through_with_the_authorizer_s_variables() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let response = portico.send(&bearer("/cgi-bin/whoami", "good"));
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(
        response.text(),
        "AUTH_USER=alice\nAUTH_LEVEL=admin\nbody=0\n"
    );
    // The authorizer's own headers and body go nowhere.
    assert_eq!(response.header("content-type"), Some("text/plain"));

    // A POST: the authorizer is sent no body; the script gets all of it.
    let body = vec![b'x'; 300_000];
    let post = Request::post("/cgi-bin/whoami", body).header("Authorization", "Bearer good");
    let response = portico.send(&post);
    assert_eq!(
        response.text(),
        "AUTH_USER=alice\nAUTH_LEVEL=admin\nbody=300000\n"
    );
    assert_eq!(runs(&fx), 2);

    // The libfcgi authorizer in front of a FastCGI mount.
    let env = portico.send(&bearer("/app/env", "good")).text();
    assert!(env.lines().any(|l| l == "AUTH_USER=carol"), "{env}");
}

#[test]
fn any_other_answer_goes_to_the_client_as_written_and_the_program_never_runs() {
    let fx = Fixture::new();
    let portico = serve(&fx);

    let body = vec![b'y'; 100_000];
    let denied = portico.send(&Request::post("/cgi-bin/whoami/extra?q=1", body));
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"portico\"")
    );
    assert_eq!(
        denied.header("variable-leak"),
        None,
        "a Variable- header reached the client"
    );
    // §6.3: no CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED or SCRIPT_NAME for an authorizer.
    assert_eq!(denied.text(), "denied; not-sent params present: []\n");

    let redirected = portico.send(&bearer("/cgi-bin/whoami?x=1", "redirect"));
    assert_eq!(redirected.status, 302);
    assert_eq!(
        redirected.header("location"),
        Some("https://login.example/?next=/cgi-bin/whoami?x=1")
    );

    let forbidden = portico.send(&bearer("/app/env", "bad"));
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.text(), "forbidden by C (AUTHORIZER)\n");

    assert_eq!(
        runs(&fx),
        0,
        "the script ran for a request that was turned away"
    );
    // The request's own line, with the status the client got.
    portico.wait_for_log_line(&["path=/cgi-bin/whoami/extra", "status=401"], 5 * SECOND);
    let log = std::fs::read_to_string(fx.path("access.log")).unwrap_or_default();
    assert!(
        log.contains("\"POST /cgi-bin/whoami/extra?q=1 HTTP/1.1\" 401"),
        "{log}"
    );
    assert!(log.contains("\"GET /app/env HTTP/1.1\" 403"), "{log}");
}

#[test]
fn an_authorizer_that_crashes_is_a_502_and_nothing_reaches_the_program() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let crashed = portico.send(&bearer("/cgi-bin/whoami", "crash"));
    assert_eq!(crashed.status, 502, "{}", portico.log());
    assert_eq!(runs(&fx), 0);
    // Its worker is replaced, and the next request is answered.
    let mut answered = false;
    for _ in 0..50 {
        if portico.send(&bearer("/cgi-bin/whoami", "good")).status == 200 {
            answered = true;
            break;
        }
        std::thread::sleep(SECOND / 10);
    }
    assert!(answered, "{}", portico.log());
}

#[test]
fn an_authorizer_needs_one_app_and_a_bad_one_names_its_line() {
    let fx = Fixture::new();
    fx.dir("cgi-bin");
    let both = format!(
        "[[cgi]]\nmount = '/c'\ndir = 'cgi-bin'\n\
         authorizer = {{ upstream = 'unix:/nowhere', launch = {{ command = ['{AUTHORIZER}'] }} }}\n"
    );
    let outcome = fx.check(&both);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("authorizer needs one of"),
        "{}",
        outcome.stderr
    );
    let bad = "[[cgi]]\nmount = '/c'\ndir = 'cgi-bin'\nauthorizer = { upstream = 'nope' }\n";
    let outcome = fx.check(bad);
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome.stderr.contains(":4") && outcome.stderr.contains("unix:/path or tcp:host:port"),
        "{}",
        outcome.stderr
    );
}
