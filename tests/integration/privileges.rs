//! `user` and `group`: started as root, Portico binds its sockets and then serves, and runs
//! every script, as the configured user; not root, it refuses to pretend it can.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use nix::unistd::{User, geteuid};

use crate::harness::Fixture;

const WHOAMI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nid -u\nid -g\n";

fn config(run_as: &str) -> String {
    format!("listen = '127.0.0.1:0'\n{run_as}\n[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n")
}

/// The fixture, readable by every user, as a served tree usually is.
fn world_readable_fixture() -> Fixture {
    let fx = Fixture::new();
    fx.script("whoami", WHOAMI);
    for dir in [fx.root().to_path_buf(), fx.cgi_dir()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    fx
}

#[test]
fn portico_and_its_scripts_serve_as_the_configured_user() {
    let fx = world_readable_fixture();
    let nobody = User::from_name("nobody").unwrap().expect("a `nobody` user");
    if !geteuid().is_root() {
        // Not root: switching is impossible, and Portico says so instead of serving.
        let out = fx.check(&config("user = 'nobody'"));
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.contains(":2: user: "), "{}", out.stderr);
        assert!(
            out.stderr.contains("needs Portico to start as root"),
            "{}",
            out.stderr
        );
        return;
    }
    let portico = fx.serve_config(&config("user = 'nobody'"), &[]);
    let response = portico.get("/cgi-bin/whoami");
    assert_eq!(response.status, 200, "{}", portico.log());
    assert_eq!(
        response.text(),
        format!("{}\n{}\n", nobody.uid, nobody.gid),
        "the script's uid and gid"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", portico.pid())).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let expected: Vec<String> = (0..4).map(|_| nobody.uid.to_string()).collect();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        expected,
        "Portico's real, effective, saved and fs uids"
    );
    assert!(
        !portico.log().contains("serving as root"),
        "{}",
        portico.log()
    );
}

#[test]
fn without_root_switching_is_refused_naming_the_key() {
    // Run as `nobody` (through root, when the tests have it) and ask for root.
    let fx = world_readable_fixture();
    let path = fx.config(&config("user = 'root'"));
    let mut check = std::process::Command::new(crate::harness::PORTICO);
    check.args(["check", "--config", path.to_str().unwrap()]);
    if geteuid().is_root() {
        let nobody = User::from_name("nobody").unwrap().expect("a `nobody` user");
        check.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    }
    let out = check.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(":2: user: serving as `root` needs Portico to start as root"),
        "{stderr}"
    );
}

#[test]
fn a_group_of_its_own_may_be_named() {
    let fx = world_readable_fixture();
    if !geteuid().is_root() {
        let out = fx.check(&config("user = 'nobody'\ngroup = '0'"));
        assert_eq!(out.code, Some(2), "{out:?}");
        return;
    }
    let nobody = User::from_name("nobody").unwrap().expect("a `nobody` user");
    let portico = fx.serve_config(&config(""), &["--user", "nobody", "--group", "0"]);
    assert_eq!(
        portico.get("/cgi-bin/whoami").text(),
        format!("{}\n0\n", nobody.uid)
    );
}

#[test]
fn root_without_a_user_is_warned_about() {
    let fx = world_readable_fixture();
    let portico = fx.serve_config(&config(""), &[]);
    assert_eq!(portico.get("/cgi-bin/whoami").status, 200);
    assert_eq!(
        portico.log().contains("serving as root"),
        geteuid().is_root(),
        "{}",
        portico.log()
    );
}

#[test]
fn unknown_user_or_group_is_named_with_its_line() {
    let fx = Fixture::new();
    let me = User::from_uid(geteuid()).unwrap().unwrap();
    for (run_as, key, message) in [
        (
            "user = 'no-such-user-here'",
            ":2: user: ",
            "no user `no-such-user-here`",
        ),
        (
            &format!("user = '{}'\ngroup = 'no-such-group-here'", me.name),
            ":3: group: ",
            "no group `no-such-group-here`",
        ),
    ] {
        let out = fx.check(&config(run_as));
        assert_eq!(out.code, Some(2), "{run_as}: {out:?}");
        assert!(out.stderr.contains(key), "{run_as}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{run_as}: {}", out.stderr);
    }
}

#[test]
fn a_group_without_a_user_is_refused() {
    let fx = Fixture::new();
    let out = fx.check(&config("group = 'nogroup'"));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(":2: group: needs `user`"),
        "{}",
        out.stderr
    );
}
