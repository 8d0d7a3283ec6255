//! A mount's HTTP Basic authentication (RFC 7617) against an htpasswd file: no script runs
//! without the right credentials, and one that runs sees REMOTE_USER and AUTH_TYPE; no
//! other request does, whatever Authorization header it carries.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::harness::{Fixture, Portico};
use crate::http::Request;
use crate::scripts::{ENV, parse_env};

const SECOND: Duration = Duration::from_secs(1);
const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");
const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/apps");

/// "password" for each user, in the formats `htpasswd -B`, `-m` and `-s` write.
const USERS: &str = "# staff\n\
    ann:$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe\n\
    bob:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00\n\
    cy:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n";

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// `/private` guarded, `/cgi-bin` open, `/app` a guarded FastCGI app; `who` shows the
/// variables and leaves a marker that it ran.
fn serve(fx: &Fixture) -> Portico {
    fx.file("users", USERS, 0o644);
    fx.dir("private");
    let ran = fx.path("ran");
    let who = format!(
        "#!/bin/sh\n: > '{}'\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
         echo \"REMOTE_USER=$REMOTE_USER AUTH_TYPE=$AUTH_TYPE AUTHORIZATION=$HTTP_AUTHORIZATION\"\n",
        ran.display()
    );
    fx.file("private/who", &who, 0o755);
    fx.script("who", &who);
    fx.serve_config(
        &format!(
            "listen = '127.0.0.1:0'\n[access_log]\npath = 'access.log'\n\
             [[cgi]]\nmount = '/private'\ndir = 'private'\n\
             auth = {{ realm = 'Staff only', user_file = 'users' }}\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{APP}'], workers = 1 }}\n\
             auth = {{ realm = 'App', user_file = 'users' }}\n"
        ),
        &[],
    )
}

#[test]
fn without_the_right_credentials_no_script_runs_and_the_answer_is_401() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    // Not even whether a script exists is told.
    assert_eq!(portico.get("/private/missing").status, 401);
    assert_eq!(portico.get("/private/../x").status, 401);
    for authorization in [
        None,
        Some(basic("ann", "wrong")),
        Some(basic("nobody", "password")),
        Some("Basic !!!".to_owned()),
        Some("Bearer abc".to_owned()),
    ] {
        let mut request = Request::post("/private/who", "a body the script never reads");
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        let response = portico.send(&request);
        assert_eq!(response.status, 401, "{authorization:?}");
        assert_eq!(
            response.header("WWW-Authenticate"),
            Some(r#"Basic realm="Staff only", charset="UTF-8""#),
            "{authorization:?}"
        );
        assert!(
            !fx.path("ran").exists(),
            "{authorization:?}: the script ran"
        );
    }
}

#[test]
fn each_htpasswd_format_lets_its_user_in_as_remote_user() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    for user in ["ann", "bob", "cy"] {
        let request =
            Request::get("/private/who").header("Authorization", &basic(user, "password"));
        let response = portico.send(&request);
        assert_eq!(response.status, 200, "{user}: {}", portico.log());
        // The credentials stay with Portico (no pass_authorization).
        assert_eq!(
            response.text(),
            format!("REMOTE_USER={user} AUTH_TYPE=Basic AUTHORIZATION=\n")
        );
    }
    // An open mount beside it: no login needed, and none reported, even with credentials
    // that would have been right on the guarded one (RFC 3875 §4.1.1).
    let open = Request::get("/cgi-bin/who").header("Authorization", &basic("ann", "password"));
    assert_eq!(
        portico.send(&open).text(),
        "REMOTE_USER= AUTH_TYPE= AUTHORIZATION=\n"
    );
    assert_eq!(
        portico.get("/cgi-bin/who").text(),
        "REMOTE_USER= AUTH_TYPE= AUTHORIZATION=\n"
    );

    let log = fx.path("access.log");
    crate::harness::wait_until(5 * SECOND, || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.lines().count() >= 5)
    });
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(
        lines.lines().any(|l| l.starts_with("127.0.0.1 - bob [")
            && l.contains("\"GET /private/who HTTP/1.1\" 200")),
        "{lines}"
    );
}

#[test]
fn a_guarded_fastcgi_app_sees_the_user_too() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let response = portico.get("/app/env");
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header("WWW-Authenticate"),
        Some(r#"Basic realm="App", charset="UTF-8""#)
    );
    let request = Request::get("/app/env").header("Authorization", &basic("cy", "password"));
    let response = portico.send(&request);
    assert_eq!(response.status, 200, "{}", portico.log());
    let text = response.text();
    assert!(text.lines().any(|l| l == "REMOTE_USER=cy"), "{text}");
    assert!(text.lines().any(|l| l == "AUTH_TYPE=Basic"), "{text}");
}

/// RFC 3875 §4.1.1, §4.1.11: AUTH_TYPE and REMOTE_USER say that Portico authenticated the
/// user, so a client cannot set them with an Authorization header of its own, on CGI,
/// FastCGI and WSGI alike. A mount that passes the header on (`pass_authorization`, for
/// apps that check it themselves) gives HTTP_AUTHORIZATION and still no AUTH_TYPE.
#[test]
fn auth_type_and_remote_user_only_where_portico_authenticated() {
    let fx = Fixture::new();
    fx.file("users", USERS, 0o644);
    fx.script("env", ENV);
    fx.file("private/env", ENV, 0o755);
    let portico = fx.serve_config(
        &format!(
            "[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[cgi]]\nmount = '/passed'\ndir = 'cgi-bin'\npass_authorization = true\n\
             [[cgi]]\nmount = '/private'\ndir = 'private'\npass_authorization = true\n\
             auth = {{ realm = 'Staff only', user_file = 'users' }}\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{APP}'], workers = 1 }}\n\
             pass_authorization = true\n\
             [[wsgi]]\nmount = '/wsgi'\napp = 'hello_wsgi:app'\npath = ['{APPS}']\nworkers = 1\n"
        ),
        &[],
    );
    let ann = basic("ann", "password");
    let bearer = "Bearer abc";
    let digest = r#"Digest username="ann", realm="x", nonce="n", uri="/", response="r""#;
    // (path, Authorization sent) -> (AUTH_TYPE, REMOTE_USER, HTTP_AUTHORIZATION)
    let cases = [
        (("/cgi-bin/env", ann.as_str()), (None, None, None)),
        (("/cgi-bin/env", bearer), (None, None, None)),
        (("/cgi-bin/env", digest), (None, None, None)),
        (
            ("/passed/env", ann.as_str()),
            (None, None, Some(ann.as_str())),
        ),
        (("/passed/env", digest), (None, None, Some(digest))),
        (
            ("/private/env", ann.as_str()),
            (Some("Basic"), Some("ann"), Some(ann.as_str())),
        ),
        (("/app/env", ann.as_str()), (None, None, Some(ann.as_str()))),
        (("/app/env", bearer), (None, None, Some(bearer))),
        (("/wsgi/env", ann.as_str()), (None, None, None)),
        (("/wsgi/env", bearer), (None, None, None)),
    ];
    for ((path, authorization), want) in cases {
        let response = portico.send(&Request::get(path).header("Authorization", authorization));
        assert_eq!(response.status, 200, "{path}: {}", portico.log());
        let env = parse_env(&response.text());
        let var = |name: &str| env.get(name).map(String::as_str);
        // The env dump must be the one asked for, not an error page without variables.
        assert_eq!(var("REQUEST_METHOD"), Some("GET"), "{path}: {env:?}");
        let got = (
            var("AUTH_TYPE"),
            var("REMOTE_USER"),
            var("HTTP_AUTHORIZATION"),
        );
        assert_eq!(got, want, "{path} with {authorization:?}");
    }
}

#[test]
fn a_changed_user_file_counts_at_once() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let dan = Request::get("/private/who").header("Authorization", &basic("dan", "password"));
    assert_eq!(portico.send(&dan).status, 401);
    // What `htpasswd -s users dan` does; the new modification time is what Portico notices.
    std::fs::write(
        fx.path("users"),
        format!("{USERS}dan:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"),
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(fx.path("users"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() + 2 * SECOND)
        .unwrap();
    assert_eq!(portico.send(&dan).status, 200, "{}", portico.log());
}

#[test]
fn a_missing_user_file_or_a_bad_realm_stops_the_start() {
    let fx = Fixture::new();
    fx.dir("private");
    for (auth, located) in [
        ("{ realm = 'R', user_file = 'missing' }", ":4: cgi[0].auth"),
        (
            "{ realm = 'say \"hi\"', user_file = 'missing' }",
            ":4: cgi[0].auth",
        ),
        ("{ realm = 'R' }", ":4: cgi[0].auth"),
    ] {
        let out = fx.check(&format!(
            "listen = '127.0.0.1:0'\n[[cgi]]\nmount = '/private'\nauth = {auth}\ndir = 'private'\n"
        ));
        assert_eq!(out.code, Some(2), "{auth}: {out:?}");
        assert!(out.stderr.contains(located), "{auth}: {}", out.stderr);
    }
}
