//! The meta-variables of RFC 3875 §4.1 that describe one request: the request line
//! (method, protocol, target, query), the server and client sockets and names, the split
//! of the path into SCRIPT_NAME and PATH_INFO, and the body (CONTENT_LENGTH and
//! CONTENT_TYPE, the body itself on stdin). Header fields as `HTTP_*` variables are
//! `header_variables.rs`; DOCUMENT_ROOT and PATH_TRANSLATED are `document_root.rs`;
//! everything else in the environment is `environment.rs`.

use std::fs;

use crate::harness::Fixture;
use crate::http::{Connection, Request};
use crate::scripts::{
    ENV, EnvCase, LENGTH_AND_ECHO, assert_env_cases, env_for, parse_env, serve_env, var,
};

#[test]
fn request_variables_are_the_request_as_received() {
    let (_fx, portico) = serve_env();
    let raw_target = "/cgi-bin/env/a%20b?x=1&y=%41+b";
    let cases: &[EnvCase] = &[
        (
            "GATEWAY_INTERFACE is CGI/1.1",
            Request::get("/cgi-bin/env"),
            &[("GATEWAY_INTERFACE", Some("CGI/1.1"))],
        ),
        (
            "REQUEST_SCHEME is http, REDIRECT_STATUS 200",
            Request::get("/cgi-bin/env"),
            &[
                ("REQUEST_SCHEME", Some("http")),
                ("REDIRECT_STATUS", Some("200")),
            ],
        ),
        (
            "DELETE over HTTP/1.1",
            Request::new("DELETE", "/cgi-bin/env"),
            &[
                ("REQUEST_METHOD", Some("DELETE")),
                ("SERVER_PROTOCOL", Some("HTTP/1.1")),
            ],
        ),
        (
            "HTTP/1.0",
            Request::get("/cgi-bin/env").http_1_0(),
            &[("SERVER_PROTOCOL", Some("HTTP/1.0"))],
        ),
        (
            "REQUEST_URI is the raw target",
            Request::get(raw_target),
            &[("REQUEST_URI", Some(raw_target))],
        ),
        (
            "QUERY_STRING is passed raw, not decoded",
            Request::get("/cgi-bin/env?name=a%20b&x=%2F+y&flag"),
            &[("QUERY_STRING", Some("name=a%20b&x=%2F+y&flag"))],
        ),
        (
            // RFC 3875 §4.1.7: "If the Script-URI does not include a query component, the
            // QUERY_STRING MUST be defined as an empty string".
            "no query: QUERY_STRING is empty, not unset",
            Request::get("/cgi-bin/env"),
            &[("QUERY_STRING", Some(""))],
        ),
    ];
    assert_env_cases(&portico, cases);
}

#[test]
fn server_software_is_set() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert!(
        var(&env, "SERVER_SOFTWARE").is_some_and(|s| !s.is_empty()),
        "SERVER_SOFTWARE: {env:?}"
    );
}

#[test]
fn server_variables_are_the_server_as_the_client_reached_it() {
    let (_fx, portico) = serve_env();
    let port = portico.addr().port().to_string();
    let cases: &[EnvCase] = &[
        (
            "SERVER_NAME is the Host header without its port",
            Request::get("/cgi-bin/env")
                .without_header("Host")
                .header("Host", "www.example.test:8123"),
            &[
                ("SERVER_NAME", Some("www.example.test")),
                ("HTTP_HOST", Some("www.example.test:8123")),
            ],
        ),
        (
            "without a Host header SERVER_NAME is the local IP",
            Request::get("/cgi-bin/env")
                .http_1_0()
                .without_header("Host"),
            &[("SERVER_NAME", Some("127.0.0.1"))],
        ),
        (
            "SERVER_ADDR and SERVER_PORT are the listening socket",
            Request::get("/cgi-bin/env"),
            &[
                ("SERVER_ADDR", Some("127.0.0.1")),
                ("SERVER_PORT", Some(port.as_str())),
            ],
        ),
    ];
    assert_env_cases(&portico, cases);
}

#[test]
fn configured_server_name_wins_over_the_host_header() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let portico = fx.serve_config(
        r#"
server_name = "configured.example"

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let request = Request::get("/cgi-bin/env")
        .without_header("Host")
        .header("Host", "other.example");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "SERVER_NAME"), Some("configured.example"));
}

#[test]
fn remote_addr_and_remote_port_are_the_client_socket() {
    let (_fx, portico) = serve_env();
    let mut connection = Connection::open(portico.addr());
    let client = connection.local_addr();
    let response = connection.round_trip(&Request::get("/cgi-bin/env"));
    let env = parse_env(&response.text());
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(
        var(&env, "REMOTE_PORT"),
        Some(client.port().to_string().as_str())
    );
}

#[test]
fn script_name_stops_at_the_script_and_path_info_is_the_rest_decoded() {
    let fx = Fixture::new();
    for name in ["env", "sub/dir/env", "my script", "café"] {
        fx.script(name, ENV);
    }
    let portico = fx.serve(&[]);
    let cases: &[EnvCase] = &[
        (
            "percent-encoded path info",
            Request::get("/cgi-bin/env/a%20b/caf%C3%A9/x.html"),
            &[
                ("SCRIPT_NAME", Some("/cgi-bin/env")),
                ("PATH_INFO", Some("/a b/café/x.html")),
            ],
        ),
        (
            "script in a subdirectory",
            Request::get("/cgi-bin/sub/dir/env/extra/path"),
            &[
                ("SCRIPT_NAME", Some("/cgi-bin/sub/dir/env")),
                ("PATH_INFO", Some("/extra/path")),
            ],
        ),
        (
            "script name with a space",
            Request::get("/cgi-bin/my%20script/more%20info"),
            &[
                ("SCRIPT_NAME", Some("/cgi-bin/my script")),
                ("PATH_INFO", Some("/more info")),
            ],
        ),
        (
            "script name in percent-encoded UTF-8",
            Request::get("/cgi-bin/caf%C3%A9"),
            &[("SCRIPT_NAME", Some("/cgi-bin/café"))],
        ),
    ];
    assert_env_cases(&portico, cases);
}

#[test]
fn path_info_is_unset_or_empty_without_extra_path() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "SCRIPT_NAME"), Some("/cgi-bin/env"));
    assert!(
        var(&env, "PATH_INFO").is_none_or(str::is_empty),
        "PATH_INFO {:?}",
        var(&env, "PATH_INFO")
    );
}

#[test]
fn script_filename_is_the_absolute_path_of_the_script() {
    let (fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env/extra"));
    let filename = var(&env, "SCRIPT_FILENAME").expect("SCRIPT_FILENAME is set");
    assert!(filename.starts_with('/'), "SCRIPT_FILENAME {filename:?}");
    assert_eq!(
        fs::canonicalize(filename).unwrap(),
        fs::canonicalize(fx.cgi_dir().join("env")).unwrap()
    );
}

#[test]
fn content_length_and_content_type_are_set_only_with_a_body() {
    let (_fx, portico) = serve_env();
    let cases: &[EnvCase] = &[
        (
            "no body",
            Request::get("/cgi-bin/env"),
            &[("CONTENT_LENGTH", None), ("CONTENT_TYPE", None)],
        ),
        (
            "a Content-Type header but no body",
            Request::get("/cgi-bin/env").header("Content-Type", "text/plain"),
            &[("CONTENT_LENGTH", None), ("CONTENT_TYPE", None)],
        ),
        (
            "a form body",
            Request::post("/cgi-bin/env", "a=1&b=2")
                .header("Content-Type", "application/x-www-form-urlencoded"),
            &[
                ("CONTENT_LENGTH", Some("7")),
                ("CONTENT_TYPE", Some("application/x-www-form-urlencoded")),
            ],
        ),
    ];
    assert_env_cases(&portico, cases);
}

#[test]
fn request_body_arrives_on_stdin() {
    let fx = Fixture::new();
    fx.script("length-and-echo", LENGTH_AND_ECHO);
    let portico = fx.serve(&[]);
    let response = portico.send(&Request::post(
        "/cgi-bin/length-and-echo",
        "line one\nline two",
    ));
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "length=17\nline one\nline two");
}
