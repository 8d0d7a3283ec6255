//! `suexec = true` on a `[[cgi]]` mount: Apache suEXEC's file checks. A script that is
//! setuid or setgid, that group or others may write, whose directory they may write, or
//! that belongs to another user than the one scripts run as is refused with 403 and an
//! access line naming the rule; it never runs. A mount without it runs them all.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::Fixture;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives `path` to `nobody`; false where this process may not (it is not root).
fn give_away(path: &Path) -> bool {
    let path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: chown(2) on a path we own, with a valid C string.
    unsafe { libc::chown(path.as_ptr(), 65534, u32::MAX) == 0 }
}

#[test]
fn suexec_refuses_scripts_others_could_change_and_names_the_rule() {
    let fx = Fixture::new();
    for dir in ["strict", "lax"] {
        let root = fx.dir(dir);
        chmod(&root, 0o755);
        let shared = fx.dir(&format!("{dir}/shared"));
        chmod(&shared, 0o775);
        for (name, mode) in [
            ("fine", 0o755),
            ("group-writable", 0o775),
            ("world-writable", 0o757),
            ("setuid", 0o4755),
            ("foreign", 0o755),
        ] {
            let script = fx.file(&format!("{dir}/{name}"), crate::scripts::HELLO, 0o755);
            chmod(&script, mode);
        }
        let script = fx.file(
            &format!("{dir}/shared/in-shared"),
            crate::scripts::HELLO,
            0o755,
        );
        chmod(&script, 0o755);
    }
    let can_give_away = give_away(&fx.path("strict/foreign")) && give_away(&fx.path("lax/foreign"));
    let portico = fx.serve_config(
        "[[cgi]]\nmount = '/strict'\ndir = 'strict'\nsuexec = true\n\
         [[cgi]]\nmount = '/lax'\ndir = 'lax'\n",
        &[],
    );
    let mut cases = vec![
        ("fine", 200, None),
        ("group-writable", 403, Some("writable by group or others")),
        ("world-writable", 403, Some("writable by group or others")),
        ("setuid", 403, Some("setuid or setgid")),
        (
            "shared/in-shared",
            403,
            Some("the directory is writable by group or others"),
        ),
    ];
    if can_give_away {
        cases.push(("foreign", 403, Some("belongs to another user")));
    }
    for (name, status, rule) in &cases {
        let response = portico.get(&format!("/strict/{name}"));
        assert_eq!(response.status, *status, "{name}: {response:?}");
        if let Some(rule) = rule {
            assert!(!response.text().contains("hello"), "{name} ran");
            portico.wait_for_log_line(
                &[&format!("path=/strict/{name}"), "suexec", rule],
                std::time::Duration::from_secs(5),
            );
        }
        // Without suexec the same file runs.
        assert_eq!(
            portico.get(&format!("/lax/{name}")).status,
            200,
            "/lax/{name}"
        );
    }
}
