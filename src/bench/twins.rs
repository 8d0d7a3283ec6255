//! The three generations one script is measured in, and which targets are the same script
//! in another: the spawned row (CGI), its kept-warm twin (persistent CGI: the same script
//! name on a mount whose `persistent` lists it) and its rewritten twin (FastCGI: the app of
//! the same name). The report divides each twin by its spawned row and lists it under it.
//!
//! Which mode a target is in comes from the config (`server`); here only names are
//! compared, so a mount's name never decides anything.

use serde::Serialize;

/// How Portico answers a target, in the order the generations came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A process per request.
    Cgi,
    /// An unmodified CGI script, compiled once by a launched runner.
    PersistentCgi,
    /// A program rewritten as a FastCGI (or WSGI) app, run by launched workers.
    Fastcgi,
}

impl Mode {
    /// The mode's name for people.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Cgi => "CGI",
            Mode::PersistentCgi => "persistent CGI",
            Mode::Fastcgi => "FastCGI",
        }
    }
}

/// `/cgi-bin/hello.py`, `/cgi-bin/hello-c` and `/fcgi/hello` are all the app `hello`.
pub fn app_name(target: &str) -> String {
    app_and_language(target).0
}

/// The last segment of the path: the script's name.
fn script_name(target: &str) -> &str {
    let path = target.split('?').next().unwrap_or(target);
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("")
}

/// The app and the language its name says, if any: `hello-c` and `hello.c` are ("hello",
/// "c"), `hello.py` is ("hello", "py"), `/fcgi/hello` is ("hello", "").
fn app_and_language(target: &str) -> (String, String) {
    let last = script_name(target);
    let (stem, ext) = last.split_once('.').unwrap_or((last, ""));
    let stem = stem.strip_suffix("-fcgi").unwrap_or(stem);
    match stem.strip_suffix("-c") {
        Some(app) if ext.is_empty() => (app.to_owned(), "c".to_owned()),
        _ => (stem.to_owned(), ext.to_owned()),
    }
}

/// Whether `other`, answered in `mode`, is the twin of the spawned script `cgi`: kept warm,
/// the same script name; rewritten, the same app in the same language, or a FastCGI app
/// whose name says no language.
pub fn is_twin(cgi: &str, other: &str, mode: Mode) -> bool {
    match mode {
        Mode::Cgi => false,
        Mode::PersistentCgi => script_name(cgi) == script_name(other),
        Mode::Fastcgi => {
            let ((app, language), (other_app, other_language)) =
                (app_and_language(cgi), app_and_language(other));
            app == other_app && (other_language.is_empty() || language == other_language)
        }
    }
}

/// Each target's spawned row: the index of the one CGI target it is a twin of. None for a
/// CGI target, and for a twin of no CGI target or of several (`/fcgi/hello` beside
/// `hello.sh` and `hello.pl`), which is compared in the ratio lines instead.
pub fn spawned_rows(targets: &[(&str, Mode)]) -> Vec<Option<usize>> {
    targets
        .iter()
        .map(|&(target, mode)| {
            let mut rows = targets
                .iter()
                .enumerate()
                .filter(|(_, (cgi, m))| *m == Mode::Cgi && is_twin(cgi, target, mode))
                .map(|(i, _)| i);
            match (rows.next(), rows.next()) {
                (Some(row), None) => Some(row),
                _ => None,
            }
        })
        .collect()
}

/// The targets in the order the report teaches: each spawned script, then its kept-warm
/// twin, then its FastCGI twin; a target with no one spawned row keeps its place.
pub fn grouped(targets: Vec<(String, Mode)>) -> Vec<(String, Mode)> {
    let refs: Vec<(&str, Mode)> = targets.iter().map(|(t, m)| (t.as_str(), *m)).collect();
    let rows = spawned_rows(&refs);
    let mut order = Vec::with_capacity(targets.len());
    for (i, row) in rows.iter().enumerate() {
        if row.is_some() {
            continue;
        }
        order.push(i);
        let mut twins: Vec<usize> = (0..targets.len()).filter(|&j| rows[j] == Some(i)).collect();
        twins.sort_by_key(|&j| targets[j].1);
        order.extend(twins);
    }
    order.into_iter().map(|i| targets[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::Mode::{Cgi, Fastcgi, PersistentCgi};
    use super::*;

    #[test]
    fn the_same_app_has_one_name_in_every_mode() {
        for target in [
            "/cgi-bin/hello.py",
            "/cgi-bin/hello-c",
            "/fcgi/hello",
            "/cgi-bin/hello-fcgi.pl",
            "/x/hello/?a=b",
        ] {
            assert_eq!(app_name(target), "hello", "{target}");
        }
        assert_eq!(app_name("/"), "");
    }

    #[test]
    fn twins_are_recognised_by_name_and_mode() {
        let cases = [
            // (spawned, other, its mode, twins?)
            ("/cgi-bin/hello.pl", "/warm/hello.pl", PersistentCgi, true),
            ("/cgi-bin/hello.pl", "/warm/hello.py", PersistentCgi, false),
            ("/cgi-bin/hello.pl", "/warm/form.pl", PersistentCgi, false),
            (
                "/cgi-bin/hello.pl",
                "/warm/hello.pl?a=b",
                PersistentCgi,
                true,
            ),
            ("/cgi-bin/hello-c", "/fcgi/hello.c", Fastcgi, true),
            ("/cgi-bin/hello.pl", "/fcgi/hello.pl", Fastcgi, true),
            ("/cgi-bin/hello.pl", "/fcgi/hello.py", Fastcgi, false),
            ("/cgi-bin/hello.sh", "/fcgi/hello", Fastcgi, true),
            ("/cgi-bin/hello.sh", "/fcgi/other", Fastcgi, false),
            ("/cgi-bin/hello.pl", "/other-cgi/hello.pl", Cgi, false),
        ];
        for (cgi, other, mode, expected) in cases {
            assert_eq!(
                is_twin(cgi, other, mode),
                expected,
                "{cgi} {other} {mode:?}"
            );
        }
    }

    fn targets(list: &[(&str, Mode)]) -> Vec<(String, Mode)> {
        list.iter().map(|&(t, m)| (t.to_owned(), m)).collect()
    }

    #[test]
    fn each_script_is_followed_by_its_warm_then_its_rewritten_twin() {
        let given = targets(&[
            ("/cgi-bin/hello-c", Cgi),
            ("/cgi-bin/hello.sh", Cgi),
            ("/cgi-bin/hello.pl", Cgi),
            ("/cgi-bin/hello.py", Cgi),
            ("/warm/hello.pl", PersistentCgi),
            ("/warm/hello.py", PersistentCgi),
            ("/fcgi/hello.c", Fastcgi),
            ("/fcgi/hello.pl", Fastcgi),
            ("/fcgi/hello.py", Fastcgi),
        ]);
        let order: Vec<String> = grouped(given).into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            order,
            [
                "/cgi-bin/hello-c",
                "/fcgi/hello.c",
                "/cgi-bin/hello.sh",
                "/cgi-bin/hello.pl",
                "/warm/hello.pl",
                "/fcgi/hello.pl",
                "/cgi-bin/hello.py",
                "/warm/hello.py",
                "/fcgi/hello.py",
            ]
        );
    }

    #[test]
    fn a_twin_of_several_scripts_keeps_its_place_and_has_no_spawned_row() {
        let given = [
            ("/cgi-bin/hello.sh", Cgi),
            ("/fcgi/hello", Fastcgi),
            ("/cgi-bin/hello.pl", Cgi),
            ("/warm/hello.pl", PersistentCgi),
            ("/warm/form.pl", PersistentCgi),
        ];
        assert_eq!(spawned_rows(&given), [None, None, None, Some(2), None]);
        let order: Vec<(String, Mode)> = grouped(targets(&given));
        assert_eq!(order, targets(&given));
    }

    #[test]
    fn modes_are_named_for_people_and_for_json() {
        let names: Vec<String> = [Cgi, PersistentCgi, Fastcgi]
            .iter()
            .map(|m| format!("{} {}", m.label(), serde_json::to_string(m).unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                "CGI \"cgi\"",
                "persistent CGI \"persistent-cgi\"",
                "FastCGI \"fastcgi\""
            ]
        );
    }
}
