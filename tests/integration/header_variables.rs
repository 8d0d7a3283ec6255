//! Request header fields as `HTTP_*` meta-variables (RFC 3875 §4.1.18): the name
//! upper-cased with dashes as underscores, repeated fields joined, and what never reaches
//! a script: `Proxy` (httpoxy), `Authorization` unless a mount passes it, a name with an
//! underscore that could spoof a dashed one, and a header that tries to set a
//! meta-variable. A value with NUL, a bare CR or an obs-fold is refused before any
//! script runs. The other meta-variables are `meta_variables.rs`.

use crate::harness::Fixture;
use crate::http::Request;
use crate::scripts::{ENV, EnvCase, assert_env_cases, env_for, parse_env, serve_env, var};

#[test]
fn header_fields_become_http_variables() {
    let (_fx, portico) = serve_env();
    let cases: &[EnvCase] = &[
        (
            "dashes become underscores",
            Request::get("/cgi-bin/env")
                .header("X-Custom-Header", "some value")
                .header("User-Agent", "portico-tests/1"),
            &[
                ("HTTP_X_CUSTOM_HEADER", Some("some value")),
                ("HTTP_USER_AGENT", Some("portico-tests/1")),
                ("HTTP_HOST", Some("portico.test")),
            ],
        ),
        (
            "a repeated field is joined with comma-space",
            Request::get("/cgi-bin/env")
                .header("X-Multi", "one")
                .header("X-Multi", "two")
                .header("X-Multi", "three"),
            &[("HTTP_X_MULTI", Some("one, two, three"))],
        ),
        (
            // RFC 6265 §5.4: a cookie-string joins cookie-pairs with "; ".
            "Cookie fields are joined with semicolon-space",
            Request::get("/cgi-bin/env")
                .header("Cookie", "a=1")
                .header("Cookie", "b=2"),
            &[("HTTP_COOKIE", Some("a=1; b=2"))],
        ),
        (
            "a Redirect-Status field does not change REDIRECT_STATUS",
            Request::get("/cgi-bin/env").header("Redirect-Status", "999"),
            &[("REDIRECT_STATUS", Some("200"))],
        ),
    ];
    assert_env_cases(&portico, cases);
}

#[test]
fn proxy_authorization_and_underscore_names_never_reach_the_script() {
    let (_fx, portico) = serve_env();
    // (case, request, variables it must see, text that must appear nowhere in the environment)
    let cases = [
        (
            // CVE-2016-5385 and friends: a `Proxy:` header would become HTTP_PROXY, which
            // many HTTP libraries read as their outgoing proxy.
            "Proxy (httpoxy)",
            Request::get("/cgi-bin/env").header("Proxy", "http://attacker.example:8080"),
            &[("HTTP_PROXY", None)],
            "attacker.example",
        ),
        (
            "Authorization, by default",
            Request::get("/cgi-bin/env").header("Authorization", "Basic dXNlcjpwYXNz"),
            &[("HTTP_AUTHORIZATION", None)],
            "dXNlcjpwYXNz",
        ),
        (
            // `X_Foo` and `X-Foo` would both become HTTP_X_FOO; only the dash form is a real
            // name for it, so the underscore one could spoof a header a proxy in front had
            // checked.
            "a name with an underscore",
            Request::get("/cgi-bin/env")
                .header("X-Foo", "genuine")
                .header("X_Foo", "spoofed"),
            &[("HTTP_X_FOO", Some("genuine"))],
            "spoofed",
        ),
    ];
    for (case, request, expected, withheld) in cases {
        let response = portico.send(&request);
        assert_eq!(response.status, 200, "{case}: {response:?}");
        let env = parse_env(&response.text());
        for (name, value) in expected {
            assert_eq!(var(&env, name), *value, "{case}: {name} in {env:?}");
        }
        assert!(
            !response.text().contains(withheld),
            "{case}: {withheld:?} reached the script: {}",
            response.text()
        );
    }
}

#[test]
fn authorization_is_passed_with_pass_authorization_true() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let portico = fx.serve_config(
        r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
pass_authorization = true
"#,
        &[],
    );
    let request = Request::get("/cgi-bin/env").header("Authorization", "Basic dXNlcjpwYXNz");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "HTTP_AUTHORIZATION"), Some("Basic dXNlcjpwYXNz"));
}

#[test]
fn header_value_with_nul_bare_cr_or_obs_fold_is_400_and_runs_no_script() {
    // RFC 9110 §5.5 and RFC 9112 §5.2 let a server either reject these or replace them with
    // SP; Portico rejects, so no script sees a value a proxy in front may have read another
    // way, and a NUL never cuts an environment string short.
    let fx = Fixture::new();
    let ran = fx.path("ran");
    fx.script(
        "mark",
        &format!(
            "#!/bin/sh\n: > '{}'\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran\\n'\n",
            ran.display()
        ),
    );
    let portico = fx.serve(&[]);
    let cases = [
        ("NUL", "before\0after"),
        ("bare CR", "before\rafter"),
        ("obs-fold", "before\r\n after"),
    ];
    for (what, value) in cases {
        let request = Request::get("/cgi-bin/mark").header("X-Probe", value);
        let response = portico.send(&request);
        assert_eq!(response.status, 400, "{what}: {response:?}");
        assert!(!ran.exists(), "{what}: the script ran");
    }
    // The same request with a clean value does run it, so the marker can tell.
    let response = portico.send(&Request::get("/cgi-bin/mark").header("X-Probe", "clean"));
    assert_eq!(response.status, 200, "{}", portico.log());
    assert!(ran.exists(), "a clean request left no marker");
}
