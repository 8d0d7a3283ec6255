//! Any request path through `router::resolve` and `router::resolve_fastcgi`, against a
//! fixed tree made once (`portico_fuzz::router_tree`: scripts, a subdirectory, symlinks
//! that stay inside the mount and ones that leave it, a dangling one and a loop): never a
//! panic, and whatever the percent-encoding, dot segments, overlong UTF-8, NUL or
//! backslash (Apache CVE-2021-41773 and CVE-2021-42013 were `%2e` and `%%32%65`):
//! - a CGI script that resolves is a regular file whose canonical path lies inside its
//!   mount's directory, reached by a path without `.` or `..`;
//! - a FastCGI SCRIPT_FILENAME lies under the mount's root (or is its script), with no `.`
//!   or `..` component; the app may open it, so it must not climb out either;
//! - SCRIPT_NAME starts with the mount and PATH_INFO is empty or starts with '/', neither
//!   with NUL nor with a `.` or `..` segment.

#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portico::config::Config;
use portico_fuzz::{Tree, is_unclean, router_tree};

struct Fixture {
    _tree: Tree,
    config: Config,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let tree = router_tree();
    let path = tree.root().join("config.toml");
    let text = std::fs::read_to_string(&path).expect("the tree's config");
    let config = portico::config::load_text(&path, &text).expect("the tree's config is valid");
    Fixture {
        _tree: tree,
        config,
    }
});

fn has_dot_segment(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'/').any(|s| s == b"." || s == b"..")
}

fn check_names(script_name: &OsStr, path_info: &OsStr, mount: &str) {
    let (name, info) = (script_name.as_bytes(), path_info.as_bytes());
    assert!(
        name.starts_with(mount.as_bytes()),
        "{script_name:?} under {mount:?}"
    );
    assert!(
        info.is_empty() || info.starts_with(b"/"),
        "PATH_INFO {path_info:?}"
    );
    for part in [name, info] {
        assert!(!part.contains(&0), "NUL in {part:?}");
        assert!(!has_dot_segment(part), "dot segment in {part:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    // Hyper hands the router the request target's path: text.
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let config = &FIXTURE.config;

    if let Some(found) = portico::router::resolve_fastcgi(config, path) {
        if let Ok(m) = found {
            check_names(&m.script_name, &m.path_info, &m.mount.mount);
            let file = &m.script_filename;
            assert!(!is_unclean(file), "SCRIPT_FILENAME {file:?}");
            match (&m.mount.script, &m.mount.root) {
                (Some(script), _) => assert_eq!(file, script),
                (None, Some(root)) => assert!(file.starts_with(root), "{file:?} outside {root:?}"),
                (None, None) => panic!("a mount without root or script matched"),
            }
        }
        return;
    }

    if let Ok(m) = portico::router::resolve(config, path) {
        check_names(&m.script_name, &m.path_info, &m.mount.mount);
        let script = &m.script_path;
        assert!(!is_unclean(script), "script path {script:?}");
        let canonical = script.canonicalize().expect("a resolved script exists");
        assert!(canonical.is_file(), "{script:?} is no regular file");
        assert!(
            canonical.starts_with(&m.mount.dir),
            "{path:?} ran {canonical:?}, outside {:?}",
            m.mount.dir
        );
        if let Some(one) = &m.mount.script {
            assert_eq!(script, one);
        }
    }
});
