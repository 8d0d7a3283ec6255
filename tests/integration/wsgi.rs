//! `[[wsgi]]` mounts: a WSGI callable served by launched workers through Portico's adapter,
//! and the same callable as plain CGI through wsgiref. The app is `apps/hello_wsgi.py`.

use std::time::Duration;

use crate::harness::{Fixture, Portico};
use crate::http::Request;

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/apps");

/// A CGI mount of `cgi-bin` and `apps/hello_wsgi.py` at `/wsgi` on `workers` workers.
pub fn config(workers: usize, extra: &str) -> String {
    format!(
        r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"

[[wsgi]]
mount = "/wsgi"
app = "hello_wsgi:app"
path = ["{APPS}"]
workers = {workers}
{extra}
"#
    )
}

fn serve(fx: &Fixture, extra: &str) -> Portico {
    fx.serve_config(&config(2, extra), &[])
}

#[test]
fn a_wsgi_app_answers_from_launched_workers_with_a_pep_3333_environ() {
    let fx = Fixture::new();
    let portico = serve(&fx, "");
    let hello = portico.get("/wsgi/");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello\n"));
    let env = portico.get("/wsgi/env?x=1").text();
    for line in [
        "SCRIPT_NAME=/wsgi\n",
        "PATH_INFO=/env\n",
        "QUERY_STRING=x=1\n",
        "wsgi.url_scheme=http\n",
        "wsgi.version=(1, 0)\n",
        "wsgi.multithread=False\n",
        "wsgi.multiprocess=True\n",
        "wsgi.run_once=False\n",
    ] {
        assert!(env.contains(line), "{line:?} missing from\n{env}");
    }
    portico.wait_for_log_line(
        &["path=/wsgi/env", "status=200", "upstream=unix:"],
        Duration::from_secs(5),
    );
}

#[test]
fn wsgi_input_carries_a_posted_form() {
    let fx = Fixture::new();
    let portico = serve(&fx, "");
    let request = Request::post("/wsgi/form", "name=Ada+Lovelace&lang=en")
        .header("Content-Type", "application/x-www-form-urlencoded");
    let response = portico.send(&request);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "name=Ada Lovelace\nlang=en\n");
    // A body larger than a record and than the adapter's buffer arrives whole.
    let value = "x".repeat(300_000);
    let response = portico.send(&Request::post("/wsgi/form", format!("big={value}")));
    assert_eq!(response.text().len(), "big=\n".len() + value.len());
}

#[test]
fn a_redirect_keeps_its_status_and_location() {
    let fx = Fixture::new();
    let portico = serve(&fx, "");
    let response = portico.get("/wsgi/redirect");
    assert_eq!(response.status, 303);
    assert_eq!(response.header("Location"), Some("/wsgi/"));
}

#[test]
fn an_exception_in_the_app_is_a_500_with_the_traceback_in_the_log_only() {
    let fx = Fixture::new();
    let portico = serve(&fx, "");
    let response = portico.get("/wsgi/error");
    assert_eq!(response.status, 500);
    assert!(
        !response.text().contains("Traceback"),
        "{}",
        response.text()
    );
    portico.wait_for_log_line(
        &[
            "RuntimeError: hello_wsgi: /error raises, as asked",
            "mount=/wsgi",
        ],
        Duration::from_secs(5),
    );
    // The worker survives its app's exception.
    assert_eq!(portico.get("/wsgi/").status, 200);
    assert!(
        !portico.log().contains("worker exited"),
        "{}",
        portico.log()
    );
}

#[test]
fn an_app_that_cannot_be_imported_stops_its_mount_with_the_import_error_logged() {
    let fx = Fixture::new();
    let portico = fx.serve_config(
        &format!(
            "[[wsgi]]\nmount = \"/wsgi\"\napp = \"no_such_module:app\"\npath = [\"{APPS}\"]\nworkers = 1\nstart_retries = 2\n"
        ),
        &[],
    );
    portico.wait_for_log_line(
        &["application stopped", "exited at start"],
        Duration::from_secs(10),
    );
    assert!(
        portico.log().contains("ModuleNotFoundError"),
        "{}",
        portico.log()
    );
    let response = portico.get("/wsgi/");
    assert_eq!(response.status, 503);
    assert!(!response.text().contains("no_such_module"));
}

#[test]
fn the_same_callable_runs_as_plain_cgi_through_wsgiref() {
    let fx = Fixture::new();
    let portico = serve(&fx, "");
    // cgi-bin/hello-wsgi.py finds the app in ../apps next to it: here, the fixture's copy.
    fx.dir("apps");
    std::fs::copy(
        format!("{APPS}/hello_wsgi.py"),
        fx.path("apps/hello_wsgi.py"),
    )
    .unwrap();
    let hello = portico.get("/cgi-bin/hello-wsgi.py/");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello\n"));
    let request = Request::post("/cgi-bin/hello-wsgi.py/form", "a=1&b=2")
        .header("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(portico.send(&request).text(), "a=1\nb=2\n");
    let env = portico.get("/cgi-bin/hello-wsgi.py/env").text();
    assert!(
        env.contains("wsgi.run_once=True\n"),
        "CGI runs the app once per process:\n{env}"
    );
    assert!(
        env.contains("SCRIPT_NAME=/cgi-bin/hello-wsgi.py\n"),
        "{env}"
    );
}

#[test]
fn a_bad_app_spec_names_its_key() {
    let fx = Fixture::new();
    let config = fx.config("[[wsgi]]\nmount = \"/w\"\napp = \"a/b:c\"\n");
    let output = std::process::Command::new(crate::harness::PORTICO)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(":3: wsgi[0].app"), "{stderr}");
}

/// The Python of target/pyenv, where scripts/test installs Flask and gunicorn.
pub fn venv_python() -> std::path::PathBuf {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/test creates it (python3 -m venv, pip install flask gunicorn)",
        python.display()
    );
    python
}

#[test]
fn a_flask_app_runs_as_launched_workers() {
    let fx = Fixture::new();
    let python = venv_python();
    let portico = fx.serve_config(
        &format!(
            "[[wsgi]]\nmount = \"/flask\"\napp = \"flask_hello:app\"\npython = \"{}\"\npath = [\"{APPS}\"]\nworkers = 2\n",
            python.display()
        ),
        &[],
    );
    let hello = portico.get("/flask/");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello\n"));
    let request = Request::post("/flask/form", "name=Ada&lang=en")
        .header("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(portico.send(&request).text(), "name=Ada\nlang=en\n");
    // url_for builds the URL from SCRIPT_NAME: the mount comes back in the Location.
    let go = portico.get("/flask/go");
    assert_eq!(go.status, 302);
    assert_eq!(go.header("Location"), Some("/flask/"));
}

#[test]
fn the_same_flask_app_runs_as_plain_cgi_through_wsgiref() {
    let fx = Fixture::new();
    let python = venv_python();
    fx.script(
        "flask.cgi",
        &format!(
            "#!{}\nimport sys\nsys.path.insert(0, \"{APPS}\")\nfrom wsgiref.handlers import CGIHandler\nfrom flask_hello import app\nCGIHandler().run(app)\n",
            python.display()
        ),
    );
    let portico = fx.serve(&[]);
    let hello = portico.get("/cgi-bin/flask.cgi/");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello\n"));
    let request = Request::post("/cgi-bin/flask.cgi/form", "a=1")
        .header("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(portico.send(&request).text(), "a=1\n");
    let go = portico.get("/cgi-bin/flask.cgi/go");
    assert_eq!(go.status, 302);
    assert_eq!(go.header("Location"), Some("/cgi-bin/flask.cgi/"));
}

/// A venv's `bin/python` is a symlink to the base interpreter; Python finds the venv from
/// the path it was started as (PEP 405: `pyvenv.cfg` one directory up). Resolved to the
/// base interpreter, the workers would run outside the venv, without its packages.
#[test]
fn a_venv_python_runs_the_app_inside_its_venv() {
    let fx = Fixture::new();
    let venv = fx.path("venv");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("run python3 -m venv");
    assert!(
        made.success(),
        "python3 -m venv failed (scripts/test installs python3-venv)"
    );
    fx.file(
        "apps/prefix.py",
        "import sys\n\n\ndef app(environ, start_response):\n    \
         start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n    \
         return [(sys.prefix + \"\\n\" + sys.base_prefix).encode()]\n",
        0o644,
    );
    // Relative, as a site's config would name its own venv.
    let portico = fx.serve_config(
        "[[wsgi]]\nmount = \"/p\"\napp = \"prefix:app\"\npython = \"venv/bin/python\"\npath = [\"apps\"]\nworkers = 1\n",
        &[],
    );
    let response = portico.get("/p/");
    assert_eq!(response.status, 200, "{}", portico.log());
    let text = response.text();
    let (prefix, base_prefix) = text.split_once('\n').unwrap();
    let canonical = |p: &str| std::fs::canonicalize(p).unwrap();
    assert_eq!(canonical(prefix), venv.canonicalize().unwrap(), "{text}");
    assert_ne!(prefix, base_prefix);
}
