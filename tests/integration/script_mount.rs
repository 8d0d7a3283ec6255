//! A mount of one script (`[[cgi]] script = ...`), as Apache's `ScriptAlias /cgit
//! /usr/lib/cgit/cgit.cgi` serves cgit or gitweb: every path under the mount runs it, the
//! mount is SCRIPT_NAME and the rest of the path is PATH_INFO.

use crate::harness::Fixture;

const SHOW: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
    echo \"SCRIPT_NAME=$SCRIPT_NAME\"\necho \"PATH_INFO=$PATH_INFO\"\n\
    echo \"QUERY_STRING=$QUERY_STRING\"\necho \"SCRIPT_FILENAME=$SCRIPT_FILENAME\"\necho \"PWD=$(pwd)\"\n";

fn config(mounts: &str) -> String {
    format!("listen = '127.0.0.1:0'\n{mounts}\n[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n")
}

#[test]
fn every_path_under_the_mount_runs_the_script_with_the_rest_as_path_info() {
    let fx = Fixture::new();
    fx.dir("apps/git");
    let script = fx.file("apps/git/show.cgi", SHOW, 0o755);
    let script = script.canonicalize().unwrap();
    let portico = fx.serve_config(
        &config("[[cgi]]\nmount = '/git'\nscript = 'apps/git/show.cgi'"),
        &[],
    );
    let dir = script.parent().unwrap().display().to_string();
    for (target, path_info, query) in [
        ("/git", "", ""),
        ("/git/", "/", ""),
        (
            "/git/portico/log/src%20dir?h=main",
            "/portico/log/src dir",
            "h=main",
        ),
    ] {
        let response = portico.get(target);
        assert_eq!(response.status, 200, "{target}: {}", portico.log());
        assert_eq!(
            response.text(),
            format!(
                "SCRIPT_NAME=/git\nPATH_INFO={path_info}\nQUERY_STRING={query}\n\
                 SCRIPT_FILENAME={}\nPWD={dir}\n",
                script.display()
            ),
            "{target}"
        );
    }
    assert_eq!(portico.get("/gitweb").status, 404);
    assert_eq!(portico.get("/git/%2e%2e/x").status, 403);
    // The directory mount beside it is untouched.
    fx.script("show", SHOW);
    assert!(
        portico
            .get("/cgi-bin/show/x")
            .text()
            .contains("SCRIPT_NAME=/cgi-bin/show\n")
    );
}

#[test]
fn a_script_mount_that_cannot_run_is_refused_at_start() {
    let fx = Fixture::new();
    fx.file("plain.txt", "not a script\n", 0o644);
    fx.file("run.sh", SHOW, 0o755);
    for (mounts, located) in [
        (
            "[[cgi]]\nmount = '/a'\nscript = 'plain.txt'",
            ":4: cgi[0].script: ",
        ),
        (
            "[[cgi]]\nmount = '/a'\nscript = 'nope.sh'",
            ":4: cgi[0].script: ",
        ),
        (
            "[[cgi]]\nmount = '/a'\ndir = 'cgi-bin'\nscript = 'run.sh'",
            ":5: cgi[0].script: ",
        ),
        ("[[cgi]]\nmount = '/a'", ":3: cgi[0].mount: "),
    ] {
        let out = fx.check(&config(mounts));
        assert_eq!(out.code, Some(2), "{mounts}: {out:?}");
        assert!(out.stderr.contains(located), "{mounts}: {}", out.stderr);
    }
}
