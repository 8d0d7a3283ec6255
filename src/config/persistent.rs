//! A `[[cgi]]` mount's `persistent` table: which of its scripts are kept warm, in which
//! language's runner, on how many workers.
//!
//! ```toml
//! persistent = { perl = ["*.pl", "gitweb.cgi"], python = ["*.py"], workers = 2, max_requests = 1000 }
//! ```
//!
//! Each language listed becomes a FastCGI mount of its own, named after the CGI mount and
//! never routed to (as an `authorizer` does): launched workers running the runner Portico
//! ships for that language (`crate::persistent`), so that their pool, supervision and
//! recycling come from the same code as any launched app's. Running a script there, and
//! falling back to plain CGI, is the gateway's.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::fastcgi::{Balance, FastcgiMount, RawLaunch};
use super::limits::Limits;
use super::source::{ConfigError, Validator};
use crate::persistent::{PERL_RUNNER, PYTHON_RUNNER};
use crate::wsgi::ADAPTER;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPersistent {
    /// File-name patterns of the scripts run by the Perl runner.
    #[serde(default)]
    perl: Vec<Spanned<String>>,
    #[serde(default)]
    python: Vec<Spanned<String>>,
    /// The interpreters the runners start with: `perl` and `python3` on PATH by default.
    perl_command: Option<Spanned<String>>,
    python_command: Option<Spanned<String>>,
    /// Workers of each language's runner.
    workers: Option<Spanned<usize>>,
    max_requests: Option<Spanned<u64>>,
}

/// The language of a runner: which program Portico ships for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Perl,
    Python,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::Perl => "perl",
            Language::Python => "python",
        }
    }
}

/// The scripts of a CGI mount that one language's runner keeps warm, and that runner as
/// the hidden FastCGI mount its requests go to.
#[derive(Debug, Clone)]
pub struct Runner {
    pub language: Language,
    pub scripts: Vec<Pattern>,
    pub mount: FastcgiMount,
}

/// A file-name pattern as a shell writes one: `*` any run of characters, `?` any one
/// character, everything else itself. It never spans a `/`: it matches a file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

/// Iterative wildcard matching with one backtrack point (the last `*`): linear in
/// practice, and never exponential however many stars a pattern has.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The name of `mount`'s runner for `language`: a pool's and a supervisor's name, and
/// what the log calls it. Never a URL path, so no request is routed to it.
pub fn runner_name(mount: &str, language: Language) -> String {
    let mount = if mount.is_empty() { "/" } else { mount };
    format!("{mount} (persistent {})", language.name())
}

impl Validator<'_> {
    /// The runners of `mount`'s `persistent` table, one per language it lists.
    pub(super) fn persistent(
        &self,
        mount: &str,
        raw: Option<&Spanned<RawPersistent>>,
        limits: &Limits,
    ) -> Result<Vec<Runner>, ConfigError> {
        let Some(spanned) = raw else {
            return Ok(Vec::new());
        };
        let raw = spanned.get_ref();
        if raw.perl.is_empty() && raw.python.is_empty() {
            return Err(self.spanned_error(
                spanned.span(),
                "lists no scripts: `perl = [\"*.pl\"]`, `python = [\"*.py\"]` or both",
            ));
        }
        let languages = [
            (Language::Perl, &raw.perl, &raw.perl_command, "perl"),
            (
                Language::Python,
                &raw.python,
                &raw.python_command,
                "python3",
            ),
        ];
        let mut runners = Vec::new();
        for (language, patterns, command, default) in languages {
            if patterns.is_empty() {
                continue;
            }
            let scripts = patterns
                .iter()
                .map(|p| self.pattern(p))
                .collect::<Result<_, _>>()?;
            let program = command
                .clone()
                .unwrap_or_else(|| Spanned::new(spanned.span(), default.to_owned()));
            let mount = self.runner_mount(mount, language, program, raw, limits)?;
            runners.push(Runner {
                language,
                scripts,
                mount,
            });
        }
        Ok(runners)
    }

    fn pattern(&self, raw: &Spanned<String>) -> Result<Pattern, ConfigError> {
        let text = raw.get_ref();
        if text.is_empty() || text.contains('/') || text.contains('\0') {
            return Err(self.spanned_error(
                raw.span(),
                "must be a file-name pattern like \"*.pl\", without `/`",
            ));
        }
        Ok(Pattern(text.clone()))
    }

    /// The hidden FastCGI mount of one runner: launched workers with the runner as their
    /// program's first argument, one request at a time each, under the scripts' deadlines.
    fn runner_mount(
        &self,
        mount: &str,
        language: Language,
        program: Spanned<String>,
        raw: &RawPersistent,
        limits: &Limits,
    ) -> Result<FastcgiMount, ConfigError> {
        let span = program.span();
        let launch = RawLaunch {
            command: Spanned::new(span.clone(), vec![program.into_inner()]),
            workers: raw.workers.clone(),
            min_workers: None,
            max_workers: None,
            idle_timeout_seconds: None,
            max_requests: raw.max_requests.clone(),
            max_requests_jitter: None,
            max_memory_mb: None,
            request_timeout_seconds: None,
            socket: None,
            start_retries: None,
            env: Default::default(),
        };
        let mut launch = self.launch(&Spanned::new(span, launch))?;
        // A script past its total deadline is ended as plain CGI ends it: its worker is
        // killed (and replaced), the client gets the 504.
        launch.request_timeout = Some(limits.script_total_timeout);
        (launch.script, launch.modules) = match language {
            Language::Perl => (Some(PERL_RUNNER), &[][..]),
            // The Python runner speaks FastCGI through the WSGI adapter's code.
            Language::Python => (Some(PYTHON_RUNNER), &[ADAPTER][..]),
        };
        Ok(FastcgiMount {
            mount: runner_name(mount, language),
            upstreams: Vec::new(),
            script: Some(PathBuf::from(&launch.command[0])),
            launch: Some(launch),
            balance: Balance::LeastBusy,
            // A runner serves one request at a time, whatever its FastCGI library answers.
            max_connections: Some(1),
            fail_timeout: Duration::from_secs(10),
            root: None,
            split_path_info: None,
            params: Vec::new(),
            auth: None,
            pass_authorization: false,
            authorizer: None,
            x_sendfile: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: limits.script_head_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::Source;

    #[test]
    fn a_pattern_matches_a_file_name_as_a_shell_would() {
        // (pattern, name, matches)
        let cases = [
            ("*.pl", "form.pl", true),
            ("*.pl", ".pl", true),
            ("*.pl", "form.py", false),
            ("*.pl", "form.pl.bak", false),
            ("gitweb.cgi", "gitweb.cgi", true),
            ("gitweb.cgi", "gitweb.cgi2", false),
            ("hello?.py", "hello2.py", true),
            ("hello?.py", "hello.py", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*-fcgi*", "hello-fcgi.pl", true),
            ("**.py", "x.py", true),
            ("", "", true),
            ("x", "", false),
        ];
        for (pattern, name, expected) in cases {
            let pattern = Pattern(pattern.to_owned());
            assert_eq!(pattern.matches(name), expected, "{pattern:?} on {name:?}");
        }
    }

    #[test]
    fn many_stars_stay_linear() {
        let pattern = Pattern(format!("{}b", "*a".repeat(50)));
        assert!(!pattern.matches(&"a".repeat(5000)));
    }

    fn runners(table: &str) -> Result<Vec<Runner>, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            persistent: Spanned<RawPersistent>,
        }
        let text = format!("persistent = {table}\n");
        let file: File = toml::from_str(&text).unwrap();
        let config = std::path::Path::new("/etc/portico.toml");
        let v = Validator {
            source: Some(Source::new(config, &text)),
        };
        v.persistent("/cgi-bin", Some(&file.persistent), &Limits::default())
    }

    #[test]
    fn each_language_listed_gets_a_hidden_launched_mount() {
        let both = runners(
            "{ perl = ['*.pl'], python = ['*.py'], python_command = 'sh', perl_command = 'sh', workers = 3, max_requests = 50 }",
        )
        .unwrap();
        let names: Vec<_> = both.iter().map(|r| r.mount.mount.as_str()).collect();
        assert_eq!(
            names,
            ["/cgi-bin (persistent perl)", "/cgi-bin (persistent python)"]
        );
        for runner in &both {
            let launch = runner.mount.launch.as_ref().unwrap();
            assert_eq!((launch.min_workers, launch.max_workers), (3, 3));
            assert_eq!(launch.max_requests, Some(50));
            assert_eq!(runner.mount.max_connections, Some(1));
            assert_eq!(
                launch.request_timeout,
                Some(Limits::default().script_total_timeout)
            );
        }
        assert_eq!(
            both[0].mount.launch.as_ref().unwrap().script,
            Some(PERL_RUNNER)
        );
        let python = both[1].mount.launch.as_ref().unwrap();
        assert_eq!(python.script, Some(PYTHON_RUNNER));
        assert_eq!(python.modules, [ADAPTER]);

        let perl_only = runners("{ perl = ['*.pl'], perl_command = 'sh' }").unwrap();
        assert_eq!(perl_only.len(), 1);
        assert_eq!(perl_only[0].language, Language::Perl);
    }

    #[test]
    fn mistakes_are_named_at_their_line() {
        let cases = [
            ("{ workers = 2 }", "lists no scripts"),
            ("{ perl = ['bin/*.pl'] }", "without `/`"),
            ("{ perl = [''] }", "without `/`"),
            (
                "{ perl = ['*.pl'], perl_command = 'no-such-perl-here' }",
                "not an executable",
            ),
            (
                "{ perl = ['*.pl'], perl_command = 'sh', max_requests = 0 }",
                "at least 1",
            ),
        ];
        for (table, message) in cases {
            let error = runners(table).unwrap_err();
            assert_eq!(error.line, Some(1), "{table}");
            assert!(
                error.message.contains(message),
                "{table}: {}",
                error.message
            );
        }
    }
}
