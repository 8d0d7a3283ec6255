//! The `environ` the adapter (`portico_wsgi.py`, `Request.environ`) builds from one
//! request's FCGI_PARAMS, as a view for `portico explain`: every pair decoded as latin-1
//! (PEP 3333's native strings), then the `wsgi.*` keys, then SCRIPT_NAME and PATH_INFO
//! defaulted to "" (PEP 3333 requires both). It follows the adapter, not the other way
//! round: the test at the end fails when the adapter sets a key this view does not name.
//! The objects behind `wsgi.input` and `wsgi.errors` are described, not built.
//! `wsgi.multithread` depends on the mount's `threads`, which `threads` reads back from
//! the mount the config made.

use crate::config::FastcgiMount;
use crate::fastcgi::params::Pair;

/// The environ of a worker serving one request at a time (the default), as (key, value)
/// in the dict's order, values as Python would show them.
pub fn view(params: &[Pair<'_>]) -> Vec<(String, String)> {
    view_with_threads(params, 1)
}

/// The environ of a worker serving `threads` requests at once: PEP 3333's
/// `wsgi.multithread` is True when another thread may call the app at the same time.
pub fn view_with_threads(params: &[Pair<'_>], threads: usize) -> Vec<(String, String)> {
    let mut environ = Environ::default();
    for (name, value) in params {
        environ.set(latin1(name), latin1(value));
    }
    let https = environ
        .get("HTTPS")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "1"));
    let scheme = match environ.get("REQUEST_SCHEME") {
        Some(scheme) if !scheme.is_empty() => scheme.to_owned(),
        _ if https => "https".to_owned(),
        _ => "http".to_owned(),
    };
    for (key, value) in [
        ("wsgi.version", "(1, 0)".to_owned()),
        ("wsgi.url_scheme", scheme),
        ("wsgi.input", "FCGI_STDIN, read as the app asks".to_owned()),
        ("wsgi.errors", "FCGI_STDERR, into Portico's log".to_owned()),
        ("wsgi.multithread", python_bool(threads > 1)),
        ("wsgi.multiprocess", "True".to_owned()),
        ("wsgi.run_once", "False".to_owned()),
    ] {
        environ.set(key.to_owned(), value);
    }
    for key in ["SCRIPT_NAME", "PATH_INFO"] {
        if environ.get(key).is_none() {
            environ.set(key.to_owned(), String::new());
        }
    }
    environ.0
}

/// The requests each of `mount`'s workers serves at once: its `threads` when it is a
/// `[[wsgi]]` mount (the only one whose workers run the adapter), else 1.
pub fn threads(mount: &FastcgiMount) -> usize {
    match is_wsgi(mount) {
        true => mount.max_connections.unwrap_or(1),
        false => 1,
    }
}

/// Whether `mount` came from a `[[wsgi]]` table: its workers run the adapter.
pub fn is_wsgi(mount: &FastcgiMount) -> bool {
    mount
        .launch
        .as_ref()
        .is_some_and(|launch| launch.script == Some(super::ADAPTER))
}

fn python_bool(value: bool) -> String {
    if value { "True" } else { "False" }.to_owned()
}

/// A Python dict's semantics: a key set again keeps its place and takes the new value.
#[derive(Default)]
struct Environ(Vec<(String, String)>);

impl Environ {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: String, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

/// PEP 3333: bytes become a native string one code point per byte.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(environ: &'a [(String, String)], key: &str) -> Option<&'a str> {
        environ
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_environ_is_the_params_then_the_wsgi_keys() {
        let environ = view(&[(b"REQUEST_METHOD", b"GET"), (b"SCRIPT_NAME", b"/wsgi")]);
        let keys: Vec<&str> = environ.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "REQUEST_METHOD",
                "SCRIPT_NAME",
                "wsgi.version",
                "wsgi.url_scheme",
                "wsgi.input",
                "wsgi.errors",
                "wsgi.multithread",
                "wsgi.multiprocess",
                "wsgi.run_once",
                "PATH_INFO",
            ]
        );
        assert_eq!(get(&environ, "PATH_INFO"), Some(""));
        assert_eq!(get(&environ, "wsgi.multiprocess"), Some("True"));
    }

    #[test]
    fn wsgi_multithread_is_true_only_when_a_worker_has_more_than_one_thread() {
        for (threads, want) in [(1, "False"), (2, "True"), (8, "True")] {
            let environ = view_with_threads(&[], threads);
            assert_eq!(get(&environ, "wsgi.multithread"), Some(want), "{threads}");
            assert_eq!(get(&environ, "wsgi.multiprocess"), Some("True"));
        }
        assert_eq!(view(&[]), view_with_threads(&[], 1));
    }

    #[test]
    fn a_mounts_threads_are_read_back_from_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portico.toml");
        let text = "[[wsgi]]\nmount = \"/one\"\napp = \"a:app\"\n\n\
                    [[wsgi]]\nmount = \"/four\"\napp = \"a:app\"\nthreads = 4\n\n\
                    [[fastcgi]]\nmount = \"/f\"\nupstream = \"tcp:127.0.0.1:9000\"\n\
                    script = \"x\"\nmax_connections = 4\n";
        let config = crate::config::load_text(&path, text).unwrap();
        let threads = |mount: &str| {
            let found = config.fastcgi.iter().find(|m| m.mount == mount).unwrap();
            threads(found)
        };
        // A FastCGI app's capacity is not a WSGI worker's threads.
        assert_eq!(
            (threads("/one"), threads("/four"), threads("/f")),
            (1, 4, 1)
        );
    }

    #[test]
    fn the_url_scheme_comes_from_request_scheme_then_https() {
        let cases: [(&[Pair<'_>], &str); 4] = [
            (&[], "http"),
            (&[(b"REQUEST_SCHEME", b"https")], "https"),
            (&[(b"HTTPS", b"on")], "https"),
            (&[(b"REQUEST_SCHEME", b""), (b"HTTPS", b"1")], "https"),
        ];
        for (params, scheme) in cases {
            assert_eq!(
                get(&view(params), "wsgi.url_scheme"),
                Some(scheme),
                "{params:?}"
            );
        }
    }

    #[test]
    fn bytes_are_decoded_as_latin1_and_a_repeated_name_keeps_its_place() {
        let environ = view(&[
            (b"PATH_INFO", b"/caf\xc3\xa9"),
            (b"X", b"1"),
            (b"PATH_INFO", b"/b"),
        ]);
        assert_eq!(environ[0], ("PATH_INFO".to_owned(), "/b".to_owned()));
        assert_eq!(latin1(b"/caf\xc3\xa9"), "/caf\u{c3}\u{a9}");
    }

    #[test]
    fn every_key_the_adapter_sets_is_in_the_view() {
        let adapter = super::super::ADAPTER.1;
        let environ = view(&[]);
        for line in adapter.lines() {
            let Some(key) = line.trim().strip_prefix("\"wsgi.") else {
                continue;
            };
            let key = format!("wsgi.{}", key.split('"').next().unwrap_or(""));
            assert!(get(&environ, &key).is_some(), "{key} is not in the view");
        }
        for key in ["SCRIPT_NAME", "PATH_INFO"] {
            assert!(adapter.contains(&format!("environ.setdefault(\"{key}\", \"\")")));
        }
    }
}
