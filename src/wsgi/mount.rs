//! The `[[wsgi]]` table: a WSGI callable (`app = "module:callable"`), its interpreter, its
//! sys.path entries, its workers and their threads, turned into the FastCGI mount that
//! serves it: launched workers running the adapter (`ADAPTER`), recycled and scaled by the
//! same `launch` rules as a `[[fastcgi]]` mount.
//!
//! `threads = N` makes each worker serve N FastCGI connections at once, a thread each
//! (gunicorn's and uWSGI's `--threads`), so the mount's capacity per worker is N: the pool
//! then keeps up to N connections to every worker. One thread, the default, is the plain
//! process of a multiprocess server, exactly as before the key existed.
//!
//! Config reads the table (this file gives it the type) and calls `fastcgi_mount`; the
//! checks shared with `[[fastcgi]]` (`launch`, seconds, directories, mount prefixes) stay
//! in config, and nothing here runs per request.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ADAPTER;
use crate::config::fastcgi::{Balance, FastcgiMount, RawLaunch};
use crate::config::limits::Limits;
use crate::config::source::{ConfigError, Validator};
use crate::config::value::normalize_mount;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWsgi {
    pub(crate) mount: Spanned<String>,
    /// `module:callable`, as gunicorn takes it.
    app: Spanned<String>,
    python: Option<Spanned<String>>,
    /// Entries put first on sys.path (relative ones to the config file).
    #[serde(default)]
    path: Vec<Spanned<String>>,
    workers: Option<Spanned<usize>>,
    /// Requests each worker serves at once, a thread each.
    threads: Option<Spanned<usize>>,
    min_workers: Option<Spanned<usize>>,
    max_workers: Option<Spanned<usize>>,
    idle_timeout_seconds: Option<Spanned<f64>>,
    max_requests: Option<Spanned<u64>>,
    max_requests_jitter: Option<u64>,
    max_memory_mb: Option<Spanned<u64>>,
    request_timeout_seconds: Option<Spanned<f64>>,
    start_retries: Option<Spanned<u32>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    read_timeout_seconds: Option<Spanned<f64>>,
}

/// The FastCGI mount serving `raw`'s callable, checked by `v` (which knows the file).
pub(crate) fn fastcgi_mount(v: &Validator<'_>, raw: &RawWsgi) -> Result<FastcgiMount, ConfigError> {
    let mount =
        normalize_mount(raw.mount.get_ref()).map_err(|m| v.spanned_error(raw.mount.span(), m))?;
    let app = raw.app.get_ref();
    let (module, callable) = app.split_once(':').unwrap_or((app, "application"));
    if module.is_empty() || callable.is_empty() || module.contains('/') {
        return Err(v.spanned_error(raw.app.span(), "must be like \"module:callable\""));
    }
    let python = raw
        .python
        .clone()
        .unwrap_or_else(|| Spanned::new(raw.app.span(), "python3".to_owned()));
    let launch = RawLaunch {
        command: Spanned::new(python.span(), vec![python.into_inner()]),
        workers: raw.workers.clone(),
        min_workers: raw.min_workers.clone(),
        max_workers: raw.max_workers.clone(),
        idle_timeout_seconds: raw.idle_timeout_seconds.clone(),
        max_requests: raw.max_requests.clone(),
        max_requests_jitter: raw.max_requests_jitter,
        max_memory_mb: raw.max_memory_mb.clone(),
        request_timeout_seconds: raw.request_timeout_seconds.clone(),
        socket: None,
        start_retries: raw.start_retries.clone(),
        env: raw.env.clone(),
    };
    let mut launch = v.launch(&Spanned::new(raw.mount.span(), launch))?;
    let threads = match &raw.threads {
        Some(n) if *n.get_ref() == 0 => return Err(v.spanned_error(n.span(), "must be at least 1")),
        other => other.as_ref().map_or(1, |n| *n.get_ref()),
    };
    // python ADAPTER [--threads N] module:callable [sys.path entries...]
    launch.script = Some(ADAPTER);
    if threads > 1 {
        launch
            .command
            .extend(["--threads".into(), threads.to_string().into()]);
    }
    launch.command.push(format!("{module}:{callable}").into());
    for entry in &raw.path {
        // Absolute: the workers run in their interpreter's directory.
        launch.command.push(v.directory(entry)?.into_os_string());
    }
    Ok(FastcgiMount {
        mount,
        upstreams: Vec::new(),
        script: Some(launch.command[0].clone().into()),
        launch: Some(launch),
        balance: Balance::LeastBusy,
        // One thread: the pool asks the worker (FCGI_GET_VALUES), which answers 1, as it
        // always did. More: the config says so at once, so a worker slow to import its app
        // cannot miss the question and be left at one request.
        max_connections: (threads > 1).then_some(threads),
        fail_timeout: Duration::from_secs(10),
        root: None,
        split_path_info: None,
        params: Vec::new(),
        auth: None,
        pass_authorization: false,
        authorizer: None,
        x_sendfile: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: v.seconds(
            None,
            &raw.read_timeout_seconds,
            Limits::default().script_head_timeout,
        )?,
    })
}

/// The callable a `[[wsgi]]` mount serves (`module:callable`), for the status page: read
/// back from the command `fastcgi_mount` built, `python [--threads N] module:callable
/// [path...]`. `None` for a mount that is not a `[[wsgi]]` one.
pub fn app(mount: &FastcgiMount) -> Option<String> {
    if !super::environ::is_wsgi(mount) {
        return None;
    }
    let mut args = mount.launch.as_ref()?.command.iter().skip(1);
    let mut arg = args.next()?;
    if arg == "--threads" {
        arg = args.nth(1)?;
    }
    Some(arg.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::config::source::Source;

    fn mount(text: &str) -> Result<FastcgiMount, ConfigError> {
        let config = std::path::Path::new("/etc/portico.toml");
        let raw: RawWsgi = toml::from_str(text).unwrap();
        let v = Validator {
            source: Some(Source::new(config, text)),
        };
        fastcgi_mount(&v, &raw)
    }

    #[test]
    fn threads_reach_the_adapter_and_the_pools_capacity() {
        let base = "mount = \"/w\"\napp = \"app:application\"\npython = \"/bin/sh\"\n";
        let cases: [(&str, &[&str], Option<usize>); 3] = [
            ("", &["app:application"], None),
            ("threads = 1\n", &["app:application"], None),
            (
                "threads = 8\n",
                &["--threads", "8", "app:application"],
                Some(8),
            ),
        ];
        for (extra, args, capacity) in cases {
            let mount = mount(&format!("{base}{extra}")).unwrap();
            let launch = mount.launch.as_ref().unwrap();
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            assert_eq!(launch.command[1..], args, "{extra}");
            assert_eq!(mount.max_connections, capacity, "{extra}");
            assert_eq!(app(&mount).as_deref(), Some("app:application"), "{extra}");
        }
    }

    #[test]
    fn zero_threads_is_an_error_at_its_line() {
        let error = mount("mount = \"/w\"\napp = \"app:application\"\nthreads = 0\n").unwrap_err();
        assert_eq!(
            (error.line, error.key.as_deref(), error.message.as_str()),
            (Some(3), Some("threads"), "must be at least 1")
        );
    }

    #[test]
    fn a_venv_python_is_launched_by_its_own_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("venv/bin")).unwrap();
        // What `python3 -m venv` makes: bin/python, a symlink to the base interpreter.
        symlink("/bin/sh", dir.path().join("venv/bin/python")).unwrap();
        let config = dir.path().join("portico.toml");
        let text = "mount = \"/w\"\napp = \"app:application\"\npython = \"venv/bin/python\"\n";
        let raw: RawWsgi = toml::from_str(text).unwrap();
        let v = Validator {
            source: Some(Source::new(&config, text)),
        };
        let mount = fastcgi_mount(&v, &raw).unwrap();
        let launch = mount.launch.as_ref().unwrap();
        let python = dir.path().join("venv/bin/python");
        assert_eq!(launch.command[0], python.as_os_str());
        assert_eq!(mount.script.as_deref(), Some(python.as_path()));
    }
}
