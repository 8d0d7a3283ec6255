//! Scripts written inline in each language, for what the repository's examples do not
//! show: a C program reading its request, Python and Perl run through configured
//! interpreters without the execute bit, and an interpreter that is not installed.

use crate::harness::Fixture;
use crate::http::Request;

const INTERPRETERS: &str = r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
interpreters = { ".pl" = "perl", ".py" = "python3", ".nope" = "portico-test-no-such-interpreter" }
"#;

#[test]
fn c_program_reads_method_query_and_body() {
    let fx = Fixture::new();
    fx.c_program(
        "request-c",
        r#"
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *method = getenv("REQUEST_METHOD");
    const char *query = getenv("QUERY_STRING");
    const char *length = getenv("CONTENT_LENGTH");
    long left = length ? atol(length) : 0;
    int c;

    printf("Content-Type: text/plain\r\n\r\n");
    printf("method=%s query=%s body=", method ? method : "-", query ? query : "-");
    while (left-- > 0 && (c = getchar()) != EOF)
        putchar(c);
    putchar('\n');
    return 0;
}
"#,
    );
    let portico = fx.serve(&[]);
    let response = portico.send(&Request::post("/cgi-bin/request-c?a=1", "from the client"));
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(
        response.text(),
        "method=POST query=a=1 body=from the client\n"
    );
}

#[test]
fn python_script_runs_through_its_interpreter_without_the_execute_bit() {
    let fx = Fixture::new();
    fx.file(
        "cgi-bin/query.py",
        r#"import os, sys
sys.stdout.write("Content-Type: text/plain\r\n\r\n")
sys.stdout.write("python saw %s\n" % os.environ["QUERY_STRING"])
"#,
        0o644,
    );
    let portico = fx.serve_config(INTERPRETERS, &[]);
    let response = portico.get("/cgi-bin/query.py?x=y");
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.text(), "python saw x=y\n");
}

#[test]
fn perl_script_runs_through_its_interpreter_with_path_info() {
    let fx = Fixture::new();
    fx.file(
        "cgi-bin/info.pl",
        "print \"Content-Type: text/plain\\r\\n\\r\\n\";\nprint \"perl saw $ENV{PATH_INFO}\\n\";\n",
        0o644,
    );
    let portico = fx.serve_config(INTERPRETERS, &[]);
    let response = portico.get("/cgi-bin/info.pl/some/where");
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(response.text(), "perl saw /some/where\n");
}

#[test]
fn script_whose_interpreter_is_missing_is_502() {
    // conf/portico.toml documents this: "A missing interpreter makes its scripts answer 502."
    let fx = Fixture::new();
    fx.file("cgi-bin/script.nope", "anything\n", 0o644);
    let portico = fx.serve_config(INTERPRETERS, &[]);
    assert_eq!(portico.get("/cgi-bin/script.nope").status, 502);
}
