//! A `[[cgi]]` mount's path -> the script that answers it (RFC 3875 §4.1.13 SCRIPT_NAME,
//! §4.1.5 PATH_INFO): the path is walked segment by segment under the mount until a
//! regular executable file is found; the rest is PATH_INFO. A `script` mount runs its one
//! script for every path under it.
//!
//! The walk looks at the file system, so this is where a symlink that leaves the mounted
//! directory is refused and where a file that is not runnable gets its 403.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::decode::{decode_path_info, decode_segment};
use super::mount::find_mount;
use super::suexec;
use crate::config::{CgiMount, Config};
use crate::error::Error;

#[derive(Debug)]
pub struct Match<'c> {
    pub mount: &'c CgiMount,
    /// Mount plus the decoded segments up to and including the script.
    pub script_name: OsString,
    /// Decoded rest of the path after the script (empty or starting with '/').
    pub path_info: OsString,
    /// Absolute path of the script, inside the mount's directory.
    pub script_path: PathBuf,
    /// Interpreter argv when the script runs through one (by file extension).
    pub interpreter: Option<&'c [OsString]>,
    /// RFC 3875 §5: scripts named `nph-*` write the whole HTTP response themselves.
    pub is_nph: bool,
}

impl Match<'_> {
    /// What the meta-variables need of this match.
    pub fn target(&self) -> crate::meta::Target<'_> {
        crate::meta::Target {
            script_name: &self.script_name,
            path_info: &self.path_info,
            script_filename: &self.script_path,
            pass_authorization: self.mount.pass_authorization,
        }
    }
}

/// Finds the script for a raw (still percent-encoded) URL path.
pub fn resolve<'c>(config: &'c Config, raw_path: &str) -> Result<Match<'c>, Error> {
    let (mount, rest) = find_mount(config, raw_path).ok_or(Error::NotFound)?;
    let owner = mount.suexec.then(|| suexec::owner(config));
    if let Some(script) = &mount.script {
        return resolve_script(mount, script, rest, owner);
    }
    let mut dir = mount.dir.clone();
    let mut script_name = mount.mount.as_bytes().to_vec();
    let mut segments = rest.split('/').skip(1);

    while let Some(raw_segment) = segments.next() {
        if raw_segment.is_empty() {
            continue;
        }
        let segment = decode_segment(raw_segment)?;
        let candidate = dir.join(OsStr::from_bytes(&segment));
        let link_meta = std::fs::symlink_metadata(&candidate).map_err(io_to_error)?;
        let meta = if link_meta.file_type().is_symlink() {
            // A link may point anywhere; it is followed only when it stays inside.
            if !is_inside(&candidate, &mount.dir) {
                return Err(Error::Forbidden("symlink leaves the mounted directory"));
            }
            std::fs::metadata(&candidate).map_err(io_to_error)?
        } else {
            link_meta
        };
        script_name.push(b'/');
        script_name.extend_from_slice(&segment);

        if meta.is_dir() {
            dir = candidate;
            continue;
        }
        if !meta.is_file() {
            return Err(Error::Forbidden("not a regular file"));
        }
        let file_name = String::from_utf8_lossy(&segment);
        let interpreter = mount.interpreter_for(&file_name);
        if !is_runnable(&meta, interpreter) {
            return Err(Error::Forbidden("not executable"));
        }
        if let Some(owner) = owner {
            suexec::check(&candidate, &meta, owner)?;
        }
        let is_nph = segment.starts_with(b"nph-");
        let path_info = decode_path_info(segments)?;
        return Ok(Match {
            mount,
            script_name: OsString::from_vec(script_name),
            path_info,
            script_path: candidate,
            interpreter,
            is_nph,
        });
    }
    Err(Error::Forbidden("a directory, not a script"))
}

/// A `script` mount: the mount is SCRIPT_NAME and all of the rest is PATH_INFO, decoded
/// with the same rules as a directory mount's path.
fn resolve_script<'c>(
    mount: &'c CgiMount,
    script: &std::path::Path,
    rest: &str,
    suexec_owner: Option<u32>,
) -> Result<Match<'c>, Error> {
    let path_info = decode_path_info(rest.split('/').skip(1))?;
    // Looked at on every request, as a directory mount's scripts are: it may be replaced.
    let meta = std::fs::metadata(script).map_err(io_to_error)?;
    let name = script.file_name().unwrap_or_default();
    let interpreter = mount.interpreter_for(&name.to_string_lossy());
    if !meta.is_file() || !is_runnable(&meta, interpreter) {
        return Err(Error::Forbidden("not executable"));
    }
    if let Some(owner) = suexec_owner {
        suexec::check(script, &meta, owner)?;
    }
    Ok(Match {
        mount,
        script_name: OsString::from(&mount.mount),
        path_info,
        script_path: script.to_path_buf(),
        interpreter,
        is_nph: name.as_bytes().starts_with(b"nph-"),
    })
}

/// A regular file runs when it is executable or has an interpreter by its extension.
fn is_runnable(meta: &std::fs::Metadata, interpreter: Option<&[OsString]>) -> bool {
    interpreter.is_some() || meta.permissions().mode() & 0o111 != 0
}

fn is_inside(path: &std::path::Path, root: &std::path::Path) -> bool {
    path.canonicalize().is_ok_and(|p| p.starts_with(root))
}

fn io_to_error(err: std::io::Error) -> Error {
    match err.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Error::NotFound,
        _ => Error::Forbidden("cannot read the path"),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    pub(in crate::router) struct Tree {
        _dir: tempfile::TempDir,
        pub(in crate::router) config: Config,
    }

    /// A mount's directory of scripts, with links that stay inside it and links that
    /// leave it; shared with the FastCGI tests, whose config it also carries.
    pub(in crate::router) fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let bin = root.join("bin");
        let write = |rel: &str, mode: u32| {
            let path = bin.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("hello.sh", 0o755);
        write("sub/deep.sh", 0o755);
        write("my script.sh", 0o755);
        write("plain.txt", 0o644);
        write("app.pl", 0o644);
        write("nph-raw", 0o755);
        std::fs::write(root.join("outside.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("outside.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink(root.join("outside.sh"), bin.join("escape.sh")).unwrap();
        symlink(&root, bin.join("up")).unwrap();
        symlink(bin.join("hello.sh"), bin.join("alias.sh")).unwrap();
        let config = Config {
            cgi: vec![CgiMount {
                mount: "/cgi-bin".into(),
                dir: bin,
                script: None,
                auth: None,
                pass_authorization: false,
                authorizer: None,
                x_sendfile: None,
                interpreters: vec![(".pl".into(), vec!["perl".into()])],
                suexec: false,
                persistent: Vec::new(),
            }],
            ..Default::default()
        };
        Tree { _dir: dir, config }
    }

    #[test]
    fn resolution_table() {
        let t = tree();
        // (path, Ok((script_name, path_info)) or Err(status))
        type Want = Result<(&'static str, &'static str), u16>;
        let cases: &[(&str, Want)] = &[
            ("/cgi-bin/hello.sh", Ok(("/cgi-bin/hello.sh", ""))),
            ("/cgi-bin/hello.sh/", Ok(("/cgi-bin/hello.sh", "/"))),
            (
                "/cgi-bin/hello.sh/a/b%20c",
                Ok(("/cgi-bin/hello.sh", "/a/b c")),
            ),
            ("/cgi-bin/hello.sh/a%2fb", Ok(("/cgi-bin/hello.sh", "/a/b"))),
            ("/cgi-bin/sub/deep.sh/x", Ok(("/cgi-bin/sub/deep.sh", "/x"))),
            ("/cgi-bin//hello.sh", Ok(("/cgi-bin/hello.sh", ""))),
            ("/cgi-bin/my%20script.sh", Ok(("/cgi-bin/my script.sh", ""))),
            ("/cgi-bin/hell%6f.sh", Ok(("/cgi-bin/hello.sh", ""))),
            ("/cgi-bin/app.pl", Ok(("/cgi-bin/app.pl", ""))),
            ("/cgi-bin/alias.sh", Ok(("/cgi-bin/alias.sh", ""))),
            ("/cgi-bin/missing", Err(404)),
            ("/cgi-binx/hello.sh", Err(404)),
            ("/other", Err(404)),
            ("/cgi-bin/plain.txt", Err(403)),
            ("/cgi-bin/", Err(403)),
            ("/cgi-bin/sub", Err(403)),
            ("/cgi-bin/../outside.sh", Err(403)),
            ("/cgi-bin/%2e%2e/outside.sh", Err(403)),
            ("/cgi-bin/%2E%2e/outside.sh", Err(403)),
            ("/cgi-bin/sub/..%2f..%2foutside.sh", Err(403)),
            ("/cgi-bin/..%5coutside.sh", Err(403)),
            ("/cgi-bin/%252e%252e/outside.sh", Err(404)),
            ("/cgi-bin/hello.sh%00.txt", Err(400)),
            ("/cgi-bin/hello.sh/%00", Err(400)),
            ("/cgi-bin/hello.sh/../x", Err(403)),
            ("/cgi-bin/escape.sh", Err(403)),
            ("/cgi-bin/up/outside.sh", Err(403)),
            ("/cgi-bin/hello.sh/sub%2f..%2fx", Err(403)),
        ];
        for (path, want) in cases {
            let got = resolve(&t.config, path);
            match (want, got) {
                (Ok((name, info)), Ok(m)) => {
                    assert_eq!(m.script_name, *name, "{path}");
                    assert_eq!(m.path_info, *info, "{path}");
                    assert!(m.script_path.starts_with(&t.config.cgi[0].dir), "{path}");
                }
                (Err(status), Err(e)) => assert_eq!(e.status().as_u16(), *status, "{path}: {e}"),
                (want, got) => panic!("{path}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_script_mount_runs_its_script_for_every_path_under_it() {
        let mut t = tree();
        let bin = t.config.cgi[0].dir.clone();
        let mount = |mount: &str, script: &str| CgiMount {
            mount: mount.into(),
            dir: bin.clone(),
            script: Some(bin.join(script)),
            auth: None,
            pass_authorization: false,
            authorizer: None,
            x_sendfile: None,
            interpreters: vec![(".pl".into(), vec!["perl".into()])],
            suexec: false,
            persistent: Vec::new(),
        };
        t.config.cgi.push(mount("/git", "hello.sh"));
        t.config.cgi.push(mount("/perl", "app.pl"));
        t.config.cgi.push(mount("/text", "plain.txt"));
        t.config.cgi.push(mount("/gone", "missing.sh"));
        type Want = Result<(&'static str, &'static str, &'static str), u16>;
        let cases: &[(&str, Want)] = &[
            ("/git", Ok(("/git", "", "hello.sh"))),
            ("/git/", Ok(("/git", "/", "hello.sh"))),
            (
                "/git/repo/tree/a%20b",
                Ok(("/git", "/repo/tree/a b", "hello.sh")),
            ),
            ("/git/plain.txt", Ok(("/git", "/plain.txt", "hello.sh"))),
            ("/perl/x", Ok(("/perl", "/x", "app.pl"))),
            ("/gitx", Err(404)),
            ("/git/../outside.sh", Err(403)),
            ("/git/a%2f..%2fb", Err(403)),
            ("/git/%00", Err(400)),
            ("/text/x", Err(403)),
            ("/gone", Err(404)),
        ];
        for (path, want) in cases {
            match (want, resolve(&t.config, path)) {
                (Ok((name, info, script)), Ok(m)) => {
                    assert_eq!(m.script_name, *name, "{path}");
                    assert_eq!(m.path_info, *info, "{path}");
                    assert_eq!(m.script_path, bin.join(script), "{path}");
                    assert_eq!(m.interpreter.is_some(), script.ends_with(".pl"), "{path}");
                }
                (Err(status), Err(e)) => assert_eq!(e.status().as_u16(), *status, "{path}: {e}"),
                (want, got) => panic!("{path}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn nph_and_interpreter_are_recognized() {
        let t = tree();
        assert!(resolve(&t.config, "/cgi-bin/nph-raw").unwrap().is_nph);
        assert!(!resolve(&t.config, "/cgi-bin/hello.sh").unwrap().is_nph);
        assert!(
            resolve(&t.config, "/cgi-bin/app.pl")
                .unwrap()
                .interpreter
                .is_some()
        );
    }
}
