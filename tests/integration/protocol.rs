//! The request side of RFC 3875: which meta-variables a script sees and with what
//! values, how headers become `HTTP_*` variables, what never reaches the script
//! (Portico's own environment, `Proxy`, `Authorization`), that a malformed header line
//! is refused before any script runs, and that the query string never becomes argv.
//! Responses are `responses.rs`; path resolution attacks are `traversal.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::{Fixture, Portico, unique};
use crate::http::{Connection, Request};
use crate::scripts::{ENV, ENV_EXACT, parse_env};

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
];

fn serve_env() -> (Fixture, Portico) {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let portico = fx.serve(&[]);
    (fx, portico)
}

/// The environment the `env` script printed for `request`.
fn env_for(portico: &Portico, request: &Request) -> BTreeMap<String, String> {
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

fn var<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str)
}

#[test]
fn gateway_interface_is_cgi_1_1() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
}

#[test]
fn request_method_and_server_protocol_describe_the_request() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::new("DELETE", "/cgi-bin/env"));
    assert_eq!(var(&env, "REQUEST_METHOD"), Some("DELETE"));
    assert_eq!(var(&env, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
}

#[test]
fn http_1_0_request_has_server_protocol_http_1_0() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env").http_1_0());
    assert_eq!(var(&env, "SERVER_PROTOCOL"), Some("HTTP/1.0"));
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
fn request_scheme_is_http_and_redirect_status_is_200() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "REQUEST_SCHEME"), Some("http"));
    assert_eq!(var(&env, "REDIRECT_STATUS"), Some("200"));
}

#[test]
fn server_name_is_the_host_header_without_its_port() {
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env")
        .without_header("Host")
        .header("Host", "www.example.test:8123");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "SERVER_NAME"), Some("www.example.test"));
    assert_eq!(var(&env, "HTTP_HOST"), Some("www.example.test:8123"));
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
fn server_name_falls_back_to_the_local_ip_without_a_host_header() {
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env")
        .http_1_0()
        .without_header("Host");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "SERVER_NAME"), Some("127.0.0.1"));
}

#[test]
fn server_addr_and_server_port_are_the_listening_socket() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "SERVER_ADDR"), Some("127.0.0.1"));
    assert_eq!(
        var(&env, "SERVER_PORT"),
        Some(portico.addr().port().to_string().as_str())
    );
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
fn request_uri_is_the_raw_request_target() {
    let (_fx, portico) = serve_env();
    let target = "/cgi-bin/env/a%20b?x=1&y=%41+b";
    let env = env_for(&portico, &Request::get(target));
    assert_eq!(var(&env, "REQUEST_URI"), Some(target));
}

#[test]
fn query_string_is_passed_raw_without_decoding() {
    let (_fx, portico) = serve_env();
    let env = env_for(
        &portico,
        &Request::get("/cgi-bin/env?name=a%20b&x=%2F+y&flag"),
    );
    assert_eq!(var(&env, "QUERY_STRING"), Some("name=a%20b&x=%2F+y&flag"));
}

#[test]
fn query_string_is_empty_not_unset_when_absent() {
    // RFC 3875 §4.1.7: "If the Script-URI does not include a query component, the
    // QUERY_STRING MUST be defined as an empty string".
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "QUERY_STRING"), Some(""));
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
fn path_info_is_decoded_and_script_name_stops_at_the_script() {
    let (_fx, portico) = serve_env();
    let env = env_for(
        &portico,
        &Request::get("/cgi-bin/env/a%20b/caf%C3%A9/x.html"),
    );
    assert_eq!(var(&env, "SCRIPT_NAME"), Some("/cgi-bin/env"));
    assert_eq!(var(&env, "PATH_INFO"), Some("/a b/café/x.html"));
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
fn script_in_a_subdirectory_has_the_full_script_name() {
    let fx = Fixture::new();
    fx.script("sub/dir/env", ENV);
    let portico = fx.serve(&[]);
    let env = env_for(&portico, &Request::get("/cgi-bin/sub/dir/env/extra/path"));
    assert_eq!(var(&env, "SCRIPT_NAME"), Some("/cgi-bin/sub/dir/env"));
    assert_eq!(var(&env, "PATH_INFO"), Some("/extra/path"));
}

#[test]
fn script_name_with_a_space_is_decoded() {
    let fx = Fixture::new();
    fx.script("my script", ENV);
    let portico = fx.serve(&[]);
    let env = env_for(&portico, &Request::get("/cgi-bin/my%20script/more%20info"));
    assert_eq!(var(&env, "SCRIPT_NAME"), Some("/cgi-bin/my script"));
    assert_eq!(var(&env, "PATH_INFO"), Some("/more info"));
}

#[test]
fn script_name_with_percent_encoded_utf8_is_decoded() {
    let fx = Fixture::new();
    fx.script("café", ENV);
    let portico = fx.serve(&[]);
    let env = env_for(&portico, &Request::get("/cgi-bin/caf%C3%A9"));
    assert_eq!(var(&env, "SCRIPT_NAME"), Some("/cgi-bin/café"));
}

#[test]
fn content_length_and_content_type_are_unset_without_a_body() {
    let (_fx, portico) = serve_env();
    let env = env_for(&portico, &Request::get("/cgi-bin/env"));
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_eq!(var(&env, "CONTENT_TYPE"), None);
}

#[test]
fn content_type_header_without_a_body_sets_no_content_type() {
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env").header("Content-Type", "text/plain");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_eq!(var(&env, "CONTENT_TYPE"), None);
}

#[test]
fn content_length_and_content_type_describe_the_request_body() {
    let (_fx, portico) = serve_env();
    let request = Request::post("/cgi-bin/env", "a=1&b=2")
        .header("Content-Type", "application/x-www-form-urlencoded");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "CONTENT_LENGTH"), Some("7"));
    assert_eq!(
        var(&env, "CONTENT_TYPE"),
        Some("application/x-www-form-urlencoded")
    );
}

#[test]
fn request_body_arrives_on_stdin() {
    let fx = Fixture::new();
    fx.script("length-and-echo", crate::scripts::LENGTH_AND_ECHO);
    let portico = fx.serve(&[]);
    let response = portico.send(&Request::post(
        "/cgi-bin/length-and-echo",
        "line one\nline two",
    ));
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "length=17\nline one\nline two");
}

#[test]
fn header_becomes_an_http_variable_with_dashes_as_underscores() {
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env")
        .header("X-Custom-Header", "some value")
        .header("User-Agent", "portico-tests/1");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "HTTP_X_CUSTOM_HEADER"), Some("some value"));
    assert_eq!(var(&env, "HTTP_USER_AGENT"), Some("portico-tests/1"));
    assert_eq!(var(&env, "HTTP_HOST"), Some("portico.test"));
}

#[test]
fn repeated_headers_are_joined_with_comma_space() {
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env")
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .header("X-Multi", "three");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "HTTP_X_MULTI"), Some("one, two, three"));
}

#[test]
fn cookie_headers_are_joined_with_semicolon_space() {
    // RFC 6265 §5.4: a cookie-string joins cookie-pairs with "; ".
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env")
        .header("Cookie", "a=1")
        .header("Cookie", "b=2");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "HTTP_COOKIE"), Some("a=1; b=2"));
}

#[test]
fn http_proxy_header_is_never_passed_httpoxy() {
    // CVE-2016-5385 and friends: a `Proxy:` header would become HTTP_PROXY, which
    // many HTTP libraries read as their outgoing proxy.
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env").header("Proxy", "http://attacker.example:8080");
    let response = portico.send(&request);
    let env = parse_env(&response.text());
    assert_eq!(var(&env, "HTTP_PROXY"), None);
    assert!(
        !response.text().contains("attacker.example"),
        "{}",
        response.text()
    );
}

#[test]
fn authorization_is_not_passed_by_default() {
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env").header("Authorization", "Basic dXNlcjpwYXNz");
    let response = portico.send(&request);
    let env = parse_env(&response.text());
    assert_eq!(var(&env, "HTTP_AUTHORIZATION"), None);
    assert!(
        !response.text().contains("dXNlcjpwYXNz"),
        "{}",
        response.text()
    );
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
fn header_name_with_an_underscore_is_dropped() {
    // `X_Foo` and `X-Foo` would both become HTTP_X_FOO; only the dash form is a real name
    // for it, so the underscore one could spoof a header a proxy in front had checked.
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env")
        .header("X-Foo", "genuine")
        .header("X_Foo", "spoofed");
    let response = portico.send(&request);
    let env = parse_env(&response.text());
    assert_eq!(var(&env, "HTTP_X_FOO"), Some("genuine"));
    assert!(!response.text().contains("spoofed"), "{}", response.text());
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

#[test]
fn redirect_status_header_does_not_change_redirect_status() {
    let (_fx, portico) = serve_env();
    let request = Request::get("/cgi-bin/env").header("Redirect-Status", "999");
    let env = env_for(&portico, &request);
    assert_eq!(var(&env, "REDIRECT_STATUS"), Some("200"));
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
    let unexpected: Vec<&String> = env
        .keys()
        .filter(|name| {
            !(META_VARIABLES.contains(&name.as_str())
                || name.starts_with("HTTP_")
                || ["PATH", "LANG", "APP_MODE"].contains(&name.as_str()))
        })
        .collect();
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
    let unexpected: Vec<&String> = env
        .keys()
        .filter(|name| {
            !(META_VARIABLES.contains(&name.as_str())
                || name.starts_with("HTTP_")
                || ["PATH", "LANG", "TZ"].contains(&name.as_str()))
        })
        .collect();
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
        assert_eq!(response.status, 200);
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

#[test]
fn document_root_and_path_translated_follow_the_config() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let htdocs = fx.dir("htdocs");
    let portico = fx.serve_config(
        r#"
document_root = "htdocs"

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let env = env_for(&portico, &Request::get("/cgi-bin/env/some/page.html"));
    let root = var(&env, "DOCUMENT_ROOT").expect("DOCUMENT_ROOT is set");
    assert_eq!(
        fs::canonicalize(root).unwrap(),
        fs::canonicalize(&htdocs).unwrap()
    );
    // RFC 3875 §4.1.6: PATH_TRANSLATED maps PATH_INFO into the document tree.
    assert_eq!(
        var(&env, "PATH_TRANSLATED"),
        Some(format!("{}/some/page.html", root.trim_end_matches('/')).as_str())
    );
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
fn a_config_without_document_root_sets_neither_document_root_nor_path_translated() {
    // conf/portico.toml: document_root "Unset: neither variable is given to scripts."
    let fx = Fixture::new();
    fx.script("env", ENV);
    let portico = fx.serve_config("[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"cgi-bin\"\n", &[]);
    let env = env_for(&portico, &Request::get("/cgi-bin/env/some/page.html"));
    assert_eq!(var(&env, "DOCUMENT_ROOT"), None);
    assert_eq!(var(&env, "PATH_TRANSLATED"), None);
}

/// `portico serve --cgi-dir <cgi-bin> FLAGS...` started in `cwd`.
fn serve_quick_in(fx: &Fixture, cwd: &Path, flags: &[&str]) -> Portico {
    Portico::launch()
        .arg("--cgi-dir")
        .arg(fx.cgi_dir())
        .args(flags)
        .current_dir(cwd)
        .start()
}

/// DOCUMENT_ROOT (canonicalized) and PATH_TRANSLATED for a request with path info, and
/// PATH_TRANSLATED for one without.
fn document_root_seen(portico: &Portico) -> (PathBuf, Option<String>, Option<String>) {
    let env = env_for(portico, &Request::get("/cgi-bin/env/some/page.html"));
    let root = var(&env, "DOCUMENT_ROOT").expect("DOCUMENT_ROOT is set");
    let root = fs::canonicalize(root).unwrap();
    let translated = var(&env, "PATH_TRANSLATED").map(str::to_owned);
    let bare = env_for(portico, &Request::get("/cgi-bin/env"));
    (
        root,
        translated,
        var(&bare, "PATH_TRANSLATED").map(str::to_owned),
    )
}

#[test]
fn quick_mode_document_root_is_the_current_directory() {
    // Like `python -m http.server --cgi`: what is served is the directory it started in.
    let fx = Fixture::new();
    fx.script("env", ENV);
    let cwd = fx.dir("site");
    let portico = serve_quick_in(&fx, &cwd, &[]);
    let (root, translated, bare) = document_root_seen(&portico);
    assert_eq!(root, fs::canonicalize(&cwd).unwrap());
    // RFC 3875 §4.1.6: SHOULD be set when there is path info, and not without it.
    assert_eq!(
        translated,
        Some(format!("{}/some/page.html", root.display()))
    );
    assert_eq!(bare, None);
}

#[test]
fn quick_mode_document_root_flag_is_resolved_against_the_current_directory() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let htdocs = fx.dir("htdocs");
    let portico = serve_quick_in(&fx, fx.root(), &["--document-root", "htdocs"]);
    let (root, translated, bare) = document_root_seen(&portico);
    assert_eq!(root, fs::canonicalize(&htdocs).unwrap());
    assert_eq!(
        translated,
        Some(format!("{}/some/page.html", root.display()))
    );
    assert_eq!(bare, None);
}

#[test]
fn document_root_flag_beats_the_config_file() {
    // One name per setting: `--document-root` wins over `document_root`, as every flag does.
    let fx = Fixture::new();
    fx.script("env", ENV);
    fx.dir("htdocs");
    let flagged = fx.dir("flagged");
    let flag = flagged.to_str().expect("temporary paths are UTF-8");
    let portico = fx.serve_config(
        "document_root = \"htdocs\"\n[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"cgi-bin\"\n",
        &["--document-root", flag],
    );
    let (root, translated, _) = document_root_seen(&portico);
    assert_eq!(root, fs::canonicalize(&flagged).unwrap());
    assert_eq!(
        translated,
        Some(format!("{}/some/page.html", root.display()))
    );
}
