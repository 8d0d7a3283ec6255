//! Path resolution under a mount, and every way of trying to leave it.
//!
//! Each site has a script outside the mount that leaves a marker file when it runs and
//! prints `EVIL`; no request may run it or show its source. Statuses follow the
//! contract: outside the mount (`..`, `%2e%2e`, `%2f` in a segment, backslash, a
//! symlink leaving the directory) and directories are 403, NUL is 400, a double
//! encoding is decoded once into a literal name (usually 404), missing is 404.

use std::path::PathBuf;

use crate::harness::{Fixture, Portico};
use crate::scripts::HELLO;

/// A mount with a script outside it, and symlinks pointing in and out.
struct Site {
    portico: Portico,
    ran: PathBuf,
    _fx: Fixture,
}

fn site() -> Site {
    let fx = Fixture::new();
    let ran = fx.path("outside-ran");
    let evil = format!(
        "#!/bin/sh\n: > '{}'\nprintf 'Content-Type: text/plain\\r\\n\\r\\nEVIL-OUTPUT\\n'\n# EVIL-SOURCE\n",
        ran.display()
    );
    fx.file("evil", &evil, 0o755);
    fx.file("outside/evil", &evil, 0o755);
    fx.script("hello", HELLO);
    fx.script("sub/hello", HELLO);
    fx.symlink("../evil", "cgi-bin/link-to-evil");
    fx.symlink(fx.path("evil"), "cgi-bin/absolute-link-to-evil");
    fx.symlink("../outside", "cgi-bin/linked-dir");
    fx.symlink("hello", "cgi-bin/alias");
    let portico = fx.serve(&[]);
    Site {
        portico,
        ran,
        _fx: fx,
    }
}

impl Site {
    /// `target` answers `status`, never runs the outside script and never shows it.
    #[track_caller]
    fn assert_refused(&self, case: &str, target: &str, status: u16) {
        let response = self.portico.get(target);
        assert_eq!(
            response.status,
            status,
            "{case}: GET {target} answered {} {:?}",
            response.status,
            response.text()
        );
        assert!(
            !response.text().contains("EVIL"),
            "{case}: GET {target} exposed the outside script: {:?}",
            response.text()
        );
        assert!(
            !self.ran.exists(),
            "{case}: GET {target} ran the script outside the mount"
        );
    }
}

#[test]
fn paths_inside_the_mount_are_served() {
    let site = site();
    let cases = [
        ("script", "/cgi-bin/hello"),
        ("script in a subdirectory", "/cgi-bin/sub/hello"),
        ("symlink that stays inside the mount", "/cgi-bin/alias"),
    ];
    for (case, target) in cases {
        let response = site.portico.get(target);
        assert_eq!(response.status, 200, "{case}: GET {target}");
        assert_eq!(response.text(), "hello\n", "{case}: GET {target}");
    }
}

#[test]
fn every_way_out_of_the_mount_is_refused() {
    let site = site();
    let cases = [
        ("`..`", "/cgi-bin/../evil", 403),
        ("`..`", "/cgi-bin/../outside/evil", 403),
        ("`..`", "/cgi-bin/sub/../../evil", 403),
        ("`..`", "/cgi-bin/../evil/extra?x=1", 403),
        ("encoded `..`", "/cgi-bin/%2e%2e/evil", 403),
        ("encoded `..`", "/cgi-bin/%2E%2e/evil", 403),
        ("encoded `..`", "/cgi-bin/%2E%2E/outside/evil", 403),
        ("encoded `..`", "/cgi-bin/.%2e/evil", 403),
        ("encoded `..`", "/cgi-bin/%2e./evil", 403),
        ("encoded `..`", "/cgi-bin/sub/%2e%2e/%2e%2e/evil", 403),
        ("encoded slash", "/cgi-bin/..%2fevil", 403),
        ("encoded slash", "/cgi-bin/%2e%2e%2fevil", 403),
        ("encoded slash", "/cgi-bin/sub%2f..%2f..%2fevil", 403),
        ("encoded slash", "/cgi-bin/sub%2Fhello", 403),
        ("encoded backslash", "/cgi-bin/..%5cevil", 403),
        ("encoded backslash", "/cgi-bin/..%5Coutside%5Cevil", 403),
        ("encoded backslash", "/cgi-bin/sub%5chello", 403),
        ("raw backslash", "/cgi-bin/..\\evil", 403),
        ("raw backslash", "/cgi-bin/sub\\..\\..\\evil", 403),
        ("symlink out", "/cgi-bin/link-to-evil", 403),
        ("symlink out", "/cgi-bin/absolute-link-to-evil", 403),
        ("symlink out", "/cgi-bin/link-to-evil/path/info", 403),
        ("symlinked dir out", "/cgi-bin/linked-dir/evil", 403),
        ("directory", "/cgi-bin/sub", 403),
        ("directory", "/cgi-bin/sub/", 403),
        ("directory", "/cgi-bin/", 403),
        ("NUL byte", "/cgi-bin/hello%00", 400),
        ("NUL byte", "/cgi-bin/hello%00.txt", 400),
        ("NUL byte", "/cgi-bin/hello/%00", 400),
        // Decoded once, `%252e%252e` is the literal name `%2e%2e`, which does not exist.
        ("double-encoded `..`", "/cgi-bin/%252e%252e/evil", 404),
        ("double-encoded `..`", "/cgi-bin/%252e%252e%252fevil", 404),
        ("no mount", "/evil", 404),
        ("no mount", "/outside/evil", 404),
        ("no mount", "/", 404),
        // A mount's prefix matches whole segments only.
        ("not the mount", "/cgi-binX/hello", 404),
        ("not the mount", "/cgi-bin-other/hello", 404),
    ];
    for (case, target, status) in cases {
        site.assert_refused(case, target, status);
    }
}

#[test]
fn percent_encoding_is_decoded_exactly_once() {
    let fx = Fixture::new();
    fx.script("%41", HELLO);
    let portico = fx.serve(&[]);
    assert_eq!(
        portico.get("/cgi-bin/%2541").status,
        200,
        "`%2541` names the file `%41`"
    );
    assert_eq!(
        portico.get("/cgi-bin/%41").status,
        404,
        "`%41` names the file `A`"
    );
}
