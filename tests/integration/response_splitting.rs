//! Response splitting and header injection from a program's head: a CR, LF or NUL inside
//! a field, a name that is no token, a Status line carrying a second header, a Location
//! with control bytes, an obsolete line fold. Through CGI and through FastCGI (the same
//! head parser, RFC 3875 §6 carried by FastCGI §6.2), each is a 502 with a log line, and
//! nothing the program wrote reaches the client: no injected field, no body.

use crate::faults::Faults;
use crate::harness::Fixture;

/// (case, the head as the program writes it)
const HEADS: &[(&str, &str)] = &[
    (
        "a bare CR inside a field value",
        "Content-Type: text/plain\r\nX-A: a\rSet-Cookie: evil=1\r\n\r\n",
    ),
    (
        "a NUL inside a field value",
        "Content-Type: text/plain\r\nX-A: a\0Set-Cookie: evil=1\r\n\r\n",
    ),
    (
        "a DEL inside a field value",
        "Content-Type: text/plain\x7fSet-Cookie: evil=1\r\n\r\n",
    ),
    (
        "a space inside a field name",
        "Content-Type: text/plain\r\nSet Cookie: evil=1\r\n\r\n",
    ),
    (
        "a Status carrying a second header",
        "Status: 200 OK\rSet-Cookie: evil=1\r\nContent-Type: text/plain\r\n\r\n",
    ),
    (
        "a Location with a control byte",
        "Location: http://example.invalid/\x01Set-Cookie: evil=1\r\n\r\n",
    ),
    (
        "an obsolete line fold",
        "Content-Type: text/plain\r\nX-A: a\r\n Set-Cookie: evil=1\r\n\r\n",
    ),
];

/// Asserts one answer: a 502 of Portico's own, nothing of the program's head or body.
fn assert_refused(generation: &str, case: &str, response: &crate::http::Response) {
    assert_eq!(response.status, 502, "{generation}, {case}: {response:?}");
    let all = format!("{response:?}").to_ascii_lowercase();
    assert!(!all.contains("evil"), "{generation}, {case}: {all}");
    assert!(!response.text().contains("body"), "{generation}, {case}");
}

#[test]
fn a_head_that_would_split_the_response_is_502_through_cgi_and_fastcgi() {
    let fx = Fixture::new();
    for (i, (_, head)) in HEADS.iter().enumerate() {
        let file = fx.file(&format!("heads/{i}"), head, 0o644);
        fx.script(
            &format!("head-{i}"),
            &format!("#!/bin/sh\ncat '{}'\necho body\n", file.display()),
        );
    }
    let _app = Faults::start(&fx.path("app.sock"), &[]);
    let portico = fx.serve_config(
        "[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
         [[fastcgi]]\nmount = '/app'\nupstream = 'unix:app.sock'\nscript = 'app'\n",
        &[],
    );
    for (i, (case, head)) in HEADS.iter().enumerate() {
        let response = portico.get(&format!("/cgi-bin/head-{i}"));
        assert_refused("CGI", case, &response);
        let encoded: String = head.bytes().map(|b| format!("%{b:02X}")).collect();
        let response = portico.get(&format!("/app/head?{encoded}"));
        assert_refused("FastCGI", case, &response);
    }
    // The last line is written once its response is out: it may come a moment later.
    let lines = || portico.log().matches("status=502").count();
    crate::harness::wait_until(std::time::Duration::from_secs(5), || {
        lines() >= 2 * HEADS.len()
    });
    let log = portico.log();
    assert_eq!(
        log.matches("status=502").count(),
        2 * HEADS.len(),
        "every refusal has its access line:\n{log}"
    );
    // An honest head through the same fixture is served.
    let ok: String = "Content-Type: text/plain\r\n\r\n"
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let response = portico.get(&format!("/app/head?{ok}"));
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "body\n");
}
