//! Behind a proxy: `trusted_proxies` names the proxies whose `Forwarded` or
//! `X-Forwarded-For` / `-Proto` / `-Host` are believed. From them the client's address,
//! scheme and host reach the script (REMOTE_ADDR, REQUEST_SCHEME and HTTPS, SERVER_NAME and
//! SERVER_PORT) and the access log, and its X-Request-Id becomes the request's id; from
//! anyone else the same headers change nothing.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use crate::harness::{Fixture, wait_until};
use crate::http::Request;

const SHOW: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
    for v in REMOTE_ADDR REQUEST_SCHEME HTTPS SERVER_NAME SERVER_PORT UNIQUE_ID; do\n\
    eval \"printf '%s=%s\\\\n' $v \\\"\\${$v-unset}\\\"\"\ndone\n";

fn vars(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_trusted_proxy_names_the_client_scheme_and_host_and_nobody_else_can() {
    for (trusted, believed) in [("'127.0.0.1'", true), ("'10.0.0.0/8'", false)] {
        let fx = Fixture::new();
        fx.script("show", SHOW);
        let log = fx.path("access.log");
        let portico = fx.serve_config(
            &format!(
                "trusted_proxies = [{trusted}]\n\
                 [access_log]\npath = '{}'\n\
                 [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n",
                log.display()
            ),
            &[],
        );
        let response = portico.send(
            &Request::get("/cgi-bin/show")
                .header("X-Forwarded-For", "6.6.6.6, 203.0.113.7")
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Host", "example.org")
                .header("X-Request-Id", "req-6f1c2a9e"),
        );
        assert_eq!(response.status, 200);
        let mut v = vars(&response.text());
        // A trusted proxy's id for the request is kept; anyone else's is replaced.
        let id = v.remove("UNIQUE_ID").unwrap();
        if believed {
            assert_eq!(id, "req-6f1c2a9e");
        } else {
            assert!(id.len() == 16 && id != "req-6f1c2a9e", "{id}");
        }
        portico.wait_for_log_line(
            &["path=/cgi-bin/show", &format!("id={id}")],
            Duration::from_secs(5),
        );
        let port = portico.addr().port().to_string();
        let want: BTreeMap<String, String> = if believed {
            [
                ("REMOTE_ADDR", "203.0.113.7"),
                ("REQUEST_SCHEME", "https"),
                ("HTTPS", "on"),
                ("SERVER_NAME", "example.org"),
                ("SERVER_PORT", "443"),
            ]
        } else {
            [
                ("REMOTE_ADDR", "127.0.0.1"),
                ("REQUEST_SCHEME", "http"),
                ("HTTPS", "unset"),
                ("SERVER_NAME", "portico.test"),
                ("SERVER_PORT", port.as_str()),
            ]
        }
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(v, want, "trusted_proxies = [{trusted}]");
        let client = if believed {
            "203.0.113.7 "
        } else {
            "127.0.0.1 "
        };
        assert!(
            wait_until(Duration::from_secs(5), || fs::read_to_string(&log)
                .is_ok_and(|l| l.starts_with(client))),
            "access log: {:?}",
            fs::read_to_string(&log)
        );
    }
}

#[test]
fn rfc_7239_forwarded_wins_and_a_bad_trusted_proxy_is_named() {
    let fx = Fixture::new();
    fx.script("show", SHOW);
    let mounts = "[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n";
    let portico = fx.serve_config(
        &format!("trusted_proxies = ['127.0.0.0/8', '::1']\n{mounts}"),
        &[],
    );
    let response = portico.send(
        &Request::get("/cgi-bin/show")
            .header(
                "Forwarded",
                r#"for=6.6.6.6, for="[2001:db8::1]:4711";proto=https;host="example.org:8443""#,
            )
            .header("X-Forwarded-For", "1.1.1.1"),
    );
    let v = vars(&response.text());
    assert_eq!(v["REMOTE_ADDR"], "2001:db8::1");
    assert_eq!(
        v["UNIQUE_ID"].len(),
        16,
        "no id given: one of Portico's own"
    );
    assert_eq!(v["REQUEST_SCHEME"], "https");
    assert_eq!(v["SERVER_NAME"], "example.org");
    assert_eq!(v["SERVER_PORT"], "8443");
    let outcome = fx.check(&format!("trusted_proxies = ['nonsense']\n{mounts}"));
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(
        outcome.stderr.contains("portico.toml:1") && outcome.stderr.contains("trusted_proxies"),
        "{}",
        outcome.stderr
    );
}
