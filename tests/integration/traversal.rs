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
    fn assert_refused(&self, target: &str, status: u16) {
        let response = self.portico.get(target);
        assert_eq!(
            response.status,
            status,
            "GET {target} answered {} {:?}",
            response.status,
            response.text()
        );
        assert!(
            !response.text().contains("EVIL"),
            "GET {target} exposed the outside script: {:?}",
            response.text()
        );
        assert!(
            !self.ran.exists(),
            "GET {target} ran the script outside the mount"
        );
    }
}

#[test]
fn scripts_inside_the_mount_are_reachable() {
    let site = site();
    assert_eq!(site.portico.get("/cgi-bin/hello").status, 200);
    assert_eq!(site.portico.get("/cgi-bin/sub/hello").status, 200);
}

#[test]
fn dot_dot_segment_is_403() {
    let site = site();
    site.assert_refused("/cgi-bin/../evil", 403);
    site.assert_refused("/cgi-bin/../outside/evil", 403);
    site.assert_refused("/cgi-bin/sub/../../evil", 403);
    site.assert_refused("/cgi-bin/../evil/extra?x=1", 403);
}

#[test]
fn percent_encoded_dot_dot_is_403_in_any_case() {
    let site = site();
    site.assert_refused("/cgi-bin/%2e%2e/evil", 403);
    site.assert_refused("/cgi-bin/%2E%2e/evil", 403);
    site.assert_refused("/cgi-bin/%2E%2E/outside/evil", 403);
    site.assert_refused("/cgi-bin/.%2e/evil", 403);
    site.assert_refused("/cgi-bin/%2e./evil", 403);
    site.assert_refused("/cgi-bin/sub/%2e%2e/%2e%2e/evil", 403);
}

#[test]
fn encoded_slash_inside_a_segment_is_403() {
    let site = site();
    site.assert_refused("/cgi-bin/..%2fevil", 403);
    site.assert_refused("/cgi-bin/%2e%2e%2fevil", 403);
    site.assert_refused("/cgi-bin/sub%2f..%2f..%2fevil", 403);
    site.assert_refused("/cgi-bin/sub%2Fhello", 403);
}

#[test]
fn double_encoded_dot_dot_is_a_literal_name_so_404() {
    let site = site();
    site.assert_refused("/cgi-bin/%252e%252e/evil", 404);
    site.assert_refused("/cgi-bin/%252e%252e%252fevil", 404);
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

#[test]
fn nul_byte_is_400() {
    let site = site();
    site.assert_refused("/cgi-bin/hello%00", 400);
    site.assert_refused("/cgi-bin/hello%00.txt", 400);
    site.assert_refused("/cgi-bin/hello/%00", 400);
}

#[test]
fn encoded_backslash_is_403() {
    let site = site();
    site.assert_refused("/cgi-bin/..%5cevil", 403);
    site.assert_refused("/cgi-bin/..%5Coutside%5Cevil", 403);
    site.assert_refused("/cgi-bin/sub%5chello", 403);
}

#[test]
fn raw_backslash_is_403() {
    let site = site();
    site.assert_refused("/cgi-bin/..\\evil", 403);
    site.assert_refused("/cgi-bin/sub\\..\\..\\evil", 403);
}

#[test]
fn symlink_to_a_script_outside_the_mount_is_403() {
    let site = site();
    site.assert_refused("/cgi-bin/link-to-evil", 403);
    site.assert_refused("/cgi-bin/absolute-link-to-evil", 403);
    site.assert_refused("/cgi-bin/link-to-evil/path/info", 403);
}

#[test]
fn symlinked_directory_leaving_the_mount_is_403() {
    let site = site();
    site.assert_refused("/cgi-bin/linked-dir/evil", 403);
}

#[test]
fn symlink_that_stays_inside_the_mount_is_followed() {
    let site = site();
    let response = site.portico.get("/cgi-bin/alias");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello\n");
}

#[test]
fn directory_is_403() {
    let site = site();
    site.assert_refused("/cgi-bin/sub", 403);
    site.assert_refused("/cgi-bin/sub/", 403);
    site.assert_refused("/cgi-bin/", 403);
}

#[test]
fn path_outside_every_mount_is_404() {
    let site = site();
    site.assert_refused("/evil", 404);
    site.assert_refused("/outside/evil", 404);
    site.assert_refused("/", 404);
}

#[test]
fn mount_prefix_matches_whole_segments_only() {
    let site = site();
    site.assert_refused("/cgi-binX/hello", 404);
    site.assert_refused("/cgi-bin-other/hello", 404);
}
