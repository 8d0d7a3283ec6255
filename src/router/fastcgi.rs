//! A `[[fastcgi]]` mount's path -> SCRIPT_NAME, PATH_INFO and SCRIPT_FILENAME, split as
//! nginx splits for PHP: the mount alone when it names one `script`, else up to the first
//! segment that ends with `split_path_info` (`.php`), else the whole path.
//!
//! Nothing here opens a file, but the application may open SCRIPT_FILENAME, so the path is
//! decoded with the same rules as a CGI mount's and nothing may climb out of `root`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::decode::{decode_path_info, decode_segment};
use super::mount::find_fastcgi_mount;
use crate::config::{Config, FastcgiMount};
use crate::error::Error;

/// A request for a FastCGI application: what the route makes of its path.
#[derive(Debug)]
pub struct FastcgiMatch<'c> {
    pub mount: &'c FastcgiMount,
    pub script_name: OsString,
    pub path_info: OsString,
    pub script_filename: PathBuf,
}

impl FastcgiMatch<'_> {
    pub fn target(&self) -> crate::meta::Target<'_> {
        crate::meta::Target {
            script_name: &self.script_name,
            path_info: &self.path_info,
            script_filename: &self.script_filename,
            pass_authorization: self.mount.pass_authorization,
        }
    }
}

/// The FastCGI mount for a raw URL path, if one claims it. The path is decoded with the
/// same rules as for scripts: the application may open SCRIPT_FILENAME, so nothing here
/// may climb out of `root`.
pub fn resolve_fastcgi<'c>(
    config: &'c Config,
    raw_path: &str,
) -> Option<Result<FastcgiMatch<'c>, Error>> {
    let mount = find_fastcgi_mount(config, raw_path)?;
    Some(split_fastcgi(mount, &raw_path[mount.mount.len()..]))
}

fn split_fastcgi<'c>(mount: &'c FastcgiMount, rest: &str) -> Result<FastcgiMatch<'c>, Error> {
    let mut script_name = mount.mount.as_bytes().to_vec();
    let mut relative = Vec::new();
    let mut segments = rest.split('/').skip(1);
    if mount.script.is_none() {
        // Without a split suffix the whole path names the script; with one, it ends at the
        // first segment that carries the suffix.
        for raw in segments.by_ref() {
            if raw.is_empty() {
                continue;
            }
            let segment = decode_segment(raw)?;
            script_name.push(b'/');
            script_name.extend_from_slice(&segment);
            relative.push(segment);
            let ends_script = mount.split_path_info.as_deref().is_some_and(|suffix| {
                relative
                    .last()
                    .is_some_and(|s| s.ends_with(suffix.as_bytes()))
            });
            if ends_script {
                break;
            }
        }
    }
    let path_info = decode_path_info(segments)?;
    let script_filename = match (&mount.script, &mount.root) {
        (Some(script), _) => script.clone(),
        (None, Some(root)) => relative.iter().fold(root.clone(), |path, segment| {
            path.join(OsStr::from_bytes(segment))
        }),
        (None, None) => return Err(Error::NotFound),
    };
    Ok(FastcgiMatch {
        mount,
        script_name: OsString::from_vec(script_name),
        path_info,
        script_filename,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::cgi::tests::tree;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn fastcgi_paths_split_like_nginx() {
        use crate::config::Upstream;
        let mut t = tree();
        let mount = |mount: &str, script: Option<&str>, split: Option<&str>| FastcgiMount {
            mount: mount.into(),
            upstreams: vec![Upstream::Tcp("127.0.0.1:9000".into())],
            launch: None,
            balance: crate::config::Balance::LeastBusy,
            max_connections: None,
            fail_timeout: Duration::from_secs(1),
            root: Some(PathBuf::from("/srv/php")),
            script: script.map(PathBuf::from),
            split_path_info: split.map(Into::into),
            params: vec![],
            auth: None,
            pass_authorization: false,
            authorizer: None,
            x_sendfile: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        };
        t.config.fastcgi = vec![
            mount("/php", None, Some(".php")),
            mount("/app", Some("/srv/app/main.py"), None),
            mount("/plain", None, None),
        ];
        // (path, Ok((SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME)) or Err(status))
        type Want = Result<(&'static str, &'static str, &'static str), u16>;
        let cases: &[(&str, Want)] = &[
            (
                "/php/index.php",
                Ok(("/php/index.php", "", "/srv/php/index.php")),
            ),
            (
                "/php/a/b.php/x/y",
                Ok(("/php/a/b.php", "/x/y", "/srv/php/a/b.php")),
            ),
            (
                "/php/my%20page.php",
                Ok(("/php/my page.php", "", "/srv/php/my page.php")),
            ),
            ("/php/dir/", Ok(("/php/dir", "", "/srv/php/dir"))),
            ("/app", Ok(("/app", "", "/srv/app/main.py"))),
            ("/app/users/7", Ok(("/app", "/users/7", "/srv/app/main.py"))),
            ("/plain/a/b", Ok(("/plain/a/b", "", "/srv/php/a/b"))),
            ("/php/../etc/passwd", Err(403)),
            ("/php/%2e%2e/x.php", Err(403)),
            ("/php/a%2fb.php", Err(403)),
            ("/php/x.php%00.txt", Err(400)),
        ];
        for (path, want) in cases {
            let got = resolve_fastcgi(&t.config, path).expect("a fastcgi mount");
            match (want, got) {
                (Ok((name, info, file)), Ok(m)) => {
                    assert_eq!(m.script_name, *name, "{path}");
                    assert_eq!(m.path_info, *info, "{path}");
                    assert_eq!(m.script_filename, Path::new(file), "{path}");
                }
                (Err(status), Err(e)) => assert_eq!(e.status().as_u16(), *status, "{path}"),
                (want, got) => panic!("{path}: want {want:?}, got {got:?}"),
            }
        }
        assert!(resolve_fastcgi(&t.config, "/cgi-bin/hello.sh").is_none());
    }
}
