//! PHP, the most common CGI and FastCGI application: php-fpm behind a `[[fastcgi]]` mount
//! and php-cgi as a CGI interpreter. `scripts/test` installs both (Debian's php-fpm and
//! php-cgi) when they are missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::harness::{Fixture, Portico, wait_until};
use crate::http::Request;

const INFO_PHP: &str = r#"<?php
header("Content-Type: text/plain");
echo "script=", $_SERVER["SCRIPT_NAME"], "\n";
echo "path_info=", $_SERVER["PATH_INFO"] ?? "", "\n";
echo "query=", $_SERVER["QUERY_STRING"], "\n";
echo "file=", $_SERVER["SCRIPT_FILENAME"], "\n";
echo "method=", $_SERVER["REQUEST_METHOD"], "\n";
echo "name=", $_POST["name"] ?? $_GET["name"] ?? "", "\n";
"#;

const REDIRECT_PHP: &str = r#"<?php
header("Location: http://example.invalid/elsewhere");
"#;

const TEAPOT_PHP: &str = r#"<?php
http_response_code(418);
header("X-Php: yes");
echo "short and stout\n";
"#;

fn php_fpm_binary() -> PathBuf {
    let found = fs::read_dir("/usr/sbin")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        });
    found.expect("php-fpm is installed (scripts/test installs Debian's php-fpm)")
}

/// php-fpm in the foreground with a pool of two on a unix socket in the fixture.
struct PhpFpm(Child);

impl PhpFpm {
    fn start(dir: &Path) -> PhpFpm {
        let socket = dir.join("php.sock");
        let config = dir.join("php-fpm.conf");
        fs::write(
            &config,
            format!(
                "[global]\nerror_log = {log}\ndaemonize = no\n[www]\nlisten = {socket}\n\
                 pm = static\npm.max_children = 2\ncatch_workers_output = yes\n",
                log = dir.join("php-fpm.log").display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        // -R: the test suite may run as root, which php-fpm refuses without it.
        let child = Command::new(php_fpm_binary())
            .args(["-F", "-R", "-n", "-y"])
            .arg(&config)
            .spawn()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || socket.exists()),
            "php-fpm did not open {}",
            socket.display()
        );
        PhpFpm(child)
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        // SAFETY: SIGQUIT asks php-fpm's master for a graceful stop of its whole pool.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGQUIT);
        }
        let _ = self.0.wait();
    }
}

fn serve_php_fpm(fx: &Fixture) -> (PhpFpm, Portico) {
    let docroot = fx.dir("docroot");
    fs::write(docroot.join("info.php"), INFO_PHP).unwrap();
    fs::write(docroot.join("redirect.php"), REDIRECT_PHP).unwrap();
    fs::write(docroot.join("teapot.php"), TEAPOT_PHP).unwrap();
    let fpm = PhpFpm::start(fx.root());
    let config = r#"
[[fastcgi]]
mount = "/php"
upstream = "unix:php.sock"
root = "docroot"
split_path_info = ".php"
"#;
    (fpm, fx.serve_config(config, &[]))
}

#[test]
fn php_fpm_sees_script_name_path_info_and_query() {
    let fx = Fixture::new();
    let (_fpm, portico) = serve_php_fpm(&fx);
    let response = portico.get("/php/info.php/extra/path?name=Ada");
    assert_eq!(response.status, 200, "{}", portico.log());
    let text = response.text();
    let docroot = fx.path("docroot").canonicalize().unwrap();
    for want in [
        "script=/php/info.php".to_owned(),
        "path_info=/extra/path".to_owned(),
        "query=name=Ada".to_owned(),
        format!("file={}", docroot.join("info.php").display()),
        "name=Ada".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in {text}"
        );
    }
}

#[test]
fn php_fpm_reads_a_posted_form() {
    let fx = Fixture::new();
    let (_fpm, portico) = serve_php_fpm(&fx);
    let request = Request::post("/php/info.php", "name=Grace+Hopper")
        .header("Content-Type", "application/x-www-form-urlencoded");
    let text = portico.send(&request).text();
    assert!(text.lines().any(|l| l == "method=POST"), "{text}");
    assert!(text.lines().any(|l| l == "name=Grace Hopper"), "{text}");
}

#[test]
fn php_fpm_status_headers_and_redirects_pass_through_the_head_parser() {
    let fx = Fixture::new();
    let (_fpm, portico) = serve_php_fpm(&fx);
    let teapot = portico.get("/php/teapot.php");
    assert_eq!(teapot.status, 418);
    assert_eq!(teapot.header("X-Php"), Some("yes"));
    assert_eq!(teapot.text(), "short and stout\n");
    let redirect = portico.get("/php/redirect.php");
    assert_eq!(redirect.status, 302);
    assert_eq!(
        redirect.header("Location"),
        Some("http://example.invalid/elsewhere")
    );
    assert_eq!(portico.get("/php/missing.php").status, 404);
}

#[test]
fn php_cgi_runs_as_a_cgi_interpreter() {
    // php-cgi refuses to run without REDIRECT_STATUS (its force-cgi-redirect check).
    let fx = Fixture::new();
    fs::write(fx.cgi_dir().join("info.php"), INFO_PHP).unwrap();
    let config = r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
interpreters = { ".php" = "php-cgi" }
"#;
    let portico = fx.serve_config(config, &[]);
    let response = portico.get("/cgi-bin/info.php/x?name=Ada");
    assert_eq!(response.status, 200, "{}", portico.log());
    let text = response.text();
    assert!(
        text.lines().any(|l| l == "script=/cgi-bin/info.php"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "path_info=/x"), "{text}");
    assert!(text.lines().any(|l| l == "name=Ada"), "{text}");
}
