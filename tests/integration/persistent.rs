//! Persistent CGI (`[[cgi]] persistent`): Perl and Python CGI scripts kept warm in
//! launched runners answer byte for byte as they do spawned per request (status, reason,
//! fields but Date and the request id, body), from the repository's examples to scripts
//! written for each case: PATH_INFO and QUERY_STRING, the body, a file upload, local and
//! client redirects, an early exit, stderr in the log with the request id, every way Perl
//! and Python write to stdout; gitweb's pages. What the runners must not do (leak state,
//! fail where plain CGI would not) is `persistent_safety`.
//!
//! Every comparison runs two Portico instances on the same directory and mount, one
//! plain and one persistent, with one worker per runner so that every request meets
//! whatever the previous one left behind.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{Fixture, Portico, unique};
use crate::http::{Framing, Request, Response};

const SECOND: Duration = Duration::from_secs(1);
const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/apps");
pub const EVERY_SCRIPT: &str = r#"{ perl = ["*.pl"], python = ["*.py"], workers = 1 }"#;

/// The same directory served twice: spawned per request, and kept warm.
pub struct Pair {
    pub plain: Portico,
    pub warm: Portico,
}

pub fn pair(fx: &Fixture, persistent: &str) -> Pair {
    let base = "request_id_header = \"X-Request-Id\"\n\n[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"cgi-bin\"\n";
    let start = |name: &str, toml: &str| {
        let config = fx.file(name, toml, 0o644);
        Portico::launch().arg("--config").arg(config).start()
    };
    Pair {
        plain: start("plain.toml", base),
        warm: start("warm.toml", &format!("{base}persistent = {persistent}\n")),
    }
}

/// What must be equal: the fields but Date, the request id and Connection (hop-by-hop,
/// hyper's), and but the framing when one side streamed (Portico frames a response that
/// ends within a millisecond of its head with a Content-Length, and streams it otherwise:
/// timing, not the script, decides).
type Seen = (u16, String, Vec<(String, String)>, Vec<u8>, bool);

fn compared(ours: &Response, other: &Response) -> Seen {
    let streamed = [ours, other]
        .iter()
        .any(|r| r.framing == Framing::Chunked || r.framing == Framing::Close);
    let headers = ours
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| !matches!(n.as_str(), "date" | "x-request-id" | "connection"))
        .filter(|(n, _)| !streamed || !matches!(n.as_str(), "content-length" | "transfer-encoding"))
        .collect();
    (
        ours.status,
        ours.reason.clone(),
        headers,
        ours.body.clone(),
        ours.complete,
    )
}

impl Pair {
    /// Sends `request` to both, twice to the warm one (compiled, then from its cache), and
    /// asserts that the three answers are the same. Returns the warm one's last.
    pub fn same(&self, request: &Request) -> Response {
        let plain = self.plain.send(request);
        let check = |round: &str, warm: &Response| {
            assert_eq!(
                compared(warm, &plain),
                compared(&plain, warm),
                "{round} warm answer to {request:?}\nwarm:  {}\nplain: {}",
                warm.text(),
                plain.text()
            );
        };
        check("first", &self.warm.send(request));
        let warm = self.warm.send(request);
        check("second", &warm);
        warm
    }

    /// `same`, and the warm answer came from the runner, not a process of its own.
    pub fn same_from_runner(&self, request: &Request) -> Response {
        let warm = self.same(request);
        let id = request_id(&warm);
        self.warm.wait_for_log_line(
            &["portico::access", &format!("id={id}"), "upstream=unix:"],
            5 * SECOND,
        );
        warm
    }
}

pub fn request_id(response: &Response) -> String {
    response
        .header("X-Request-Id")
        .expect("X-Request-Id on every answer")
        .to_owned()
}

/// `apps/hello_wsgi.py` where `cgi-bin/hello-wsgi.py` looks for it.
fn with_apps(fx: &Fixture) {
    let app = std::fs::read_to_string(PathBuf::from(APPS).join("hello_wsgi.py")).unwrap();
    fx.file("apps/hello_wsgi.py", &app, 0o644);
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
    let mut body = String::new();
    for (name, file, content) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        ));
        match file {
            Some(file) => body.push_str(&format!(
                "; filename=\"{file}\"\r\nContent-Type: text/plain\r\n\r\n{content}\r\n"
            )),
            None => body.push_str(&format!("\r\n\r\n{content}\r\n")),
        }
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body.into_bytes()
}

#[test]
fn the_perl_and_python_examples_answer_the_same_kept_warm() {
    let fx = Fixture::new();
    with_apps(&fx);
    let pair = pair(&fx, EVERY_SCRIPT);
    // hello-fcgi.pl and hello-fcgi.py are FastCGI apps already, kept warm by a launch of
    // their own: not CGI scripts to keep warm (FCGI's CGI mode answers once per process).
    for script in [
        "hello.pl",
        "hello.py",
        "hello-wsgi.py",
        "form.pl",
        "echo.py",
    ] {
        pair.same_from_runner(&Request::get(&format!("/cgi-bin/{script}")));
    }
    let form = Request::post("/cgi-bin/form.pl", "name=Ada+Lovelace+%3Cb%3E")
        .header("Content-Type", "application/x-www-form-urlencoded");
    let answer = pair.same_from_runner(&form);
    assert!(
        answer.text().contains("Hello, Ada Lovelace &lt;b&gt;"),
        "{}",
        answer.text()
    );
    let upload = multipart(
        "PorticoBoundary",
        &[
            ("name", None, "Grace"),
            ("notes", Some("notes.txt"), "a file\nof two lines\n"),
        ],
    );
    let upload = Request::post("/cgi-bin/form.pl", upload).header(
        "Content-Type",
        "multipart/form-data; boundary=PorticoBoundary",
    );
    assert!(
        pair.same_from_runner(&upload)
            .text()
            .contains("Hello, Grace")
    );
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let echo = pair.same_from_runner(&Request::post("/cgi-bin/echo.py", body.clone()));
    assert_eq!(echo.body, body);
}

const ENV_PL: &str = r#"#!/usr/bin/perl
# The request as the script sees it: every variable's name, the CGI ones' values, its
# arguments, working directory and body.
use strict;
use warnings;
use Cwd ();
print "Content-Type: text/plain\n\n";
print join(' ', sort grep { !/^(SERVER_PORT|REMOTE_PORT|UNIQUE_ID|HTTP_HOST)$/ } keys %ENV), "\n";
for my $name (qw(REQUEST_METHOD SCRIPT_NAME PATH_INFO PATH_TRANSLATED QUERY_STRING
                 CONTENT_LENGTH CONTENT_TYPE SCRIPT_FILENAME GATEWAY_INTERFACE PATH)) {
    print "$name=", $ENV{$name} // '(unset)', "\n";
}
print "ARGV=@ARGV\n";
print "cwd=", Cwd::getcwd(), "\n";
print "0=$0\n";
my $length = $ENV{CONTENT_LENGTH} || 0;
read(STDIN, my $body, $length) if $length;
print "body=", $body // '', "\n";
"#;

const ENV_PY: &str = r#"#!/usr/bin/env python3
# The request as the script sees it, as env.pl prints it.
import os
import sys

skip = {"SERVER_PORT", "REMOTE_PORT", "UNIQUE_ID", "HTTP_HOST"}
print("Content-Type: text/plain\n")
print(" ".join(sorted(n for n in os.environ if n not in skip)))
for name in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING",
             "CONTENT_LENGTH", "CONTENT_TYPE", "SCRIPT_FILENAME", "GATEWAY_INTERFACE", "PATH"):
    print("%s=%s" % (name, os.environ.get(name, "(unset)")))
print("argv=%s" % sys.argv)
print("cwd=%s" % os.getcwd())
print("name=%s file=%s" % (__name__, __file__))
length = int(os.environ.get("CONTENT_LENGTH") or 0)
print("body=%s" % sys.stdin.read(length))
"#;

const OUTPUT_PL: &str = r#"#!/usr/bin/perl
# Every way a Perl script writes to STDOUT.
use strict;
use warnings;
use feature 'say';
$| = 1;
print "Content-Type: text/plain; charset=utf-8\r\n\r\n";
printf "%-5s|%03d\n", "pf", 7;
syswrite STDOUT, "syswrite whole\n";
syswrite STDOUT, "xxpart of syswrite\nyy", 19, 2;
say "said";
{ local $, = "-"; local $\ = "!\n"; print "a", "b", "c"; }
print STDOUT "latin1 caf\x{e9}\n";
binmode STDOUT, ':encoding(UTF-8)';
print "encoded caf\x{e9} \x{263a}\n";
binmode STDOUT;
print "raw caf\x{e9}\n";
binmode STDOUT, ':utf8';
printf "%s\n", "utf8 \x{263a}";
close STDOUT;
print "after close\n";
"#;

const OUTPUT_PY: &str = r#"#!/usr/bin/env python3
# Every way a Python script writes to stdout: text, print, the binary buffer.
import sys

sys.stdout.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
print("print", 1, 2.5, sep="|", end="!\n")
print("caf\u00e9 \u263a")
sys.stdout.flush()
sys.stdout.buffer.write(b"bytes \xff\n")
sys.stdout.writelines(["one\n", "two\n"])
print("to a file argument", file=sys.stdout)
"#;

const EXIT_PL: &str = r#"#!/usr/bin/perl
use strict;
use warnings;
sub done { print "in done\n"; exit(shift) }
print "Content-Type: text/plain\n\nbefore\n";
done(($ENV{QUERY_STRING} // '') eq 'fail' ? 3 : 0);
print "after exit\n";
"#;

const EXIT_PY: &str = r#"#!/usr/bin/env python3
import os
import sys

print("Content-Type: text/plain\n\nbefore")
try:
    sys.exit(3 if os.environ["QUERY_STRING"] == "fail" else None)
finally:
    print("finally")
print("after exit")
"#;

const PRAGMAS_PL: &str = r#"#!/usr/bin/perl
# A CGI.pm pragma set at compile time: -nosticky leaves .cgifields out of end_form.
use strict;
use warnings;
use CGI qw(:standard -nosticky);
print header('text/html'), start_form(-action => '/f'), checkbox(-name => 'c'), end_form, "\n";
"#;

const UPLOAD_PL: &str = r#"#!/usr/bin/perl
# A file upload read through CGI.pm's upload handle.
use strict;
use warnings;
use CGI;
my $q = CGI->new;
my $fh = $q->upload('file');
my $content = $fh ? do { local $/; <$fh> } : '(none)';
print $q->header('text/plain'), "who=", scalar $q->param('who'), "\n",
    "name=", scalar $q->param('file'), "\n", "content=$content";
"#;

const BEGIN_PL: &str = r#"#!/usr/bin/perl
# Output and %ENV at compile time: a BEGIN block runs before the rest, in the request.
BEGIN { print "Content-Type: text/plain\n\nbegin saw $ENV{REQUEST_METHOD}\n" }
print "run\n";
"#;

const REDIRECT_PL: &str = "#!/usr/bin/perl\nprint \"Location: /cgi-bin/hello.py\\n\\n\";\n";
const REDIRECT_PY: &str = "#!/usr/bin/env python3\nprint(\"Location: http://example.org/moved\\nContent-Type: text/plain\\n\\nmoved\")\n";

#[test]
fn scripts_see_the_same_request_and_write_the_same_answer_kept_warm() {
    let fx = Fixture::new();
    for (name, body) in [
        ("env.pl", ENV_PL),
        ("env.py", ENV_PY),
        ("output.pl", OUTPUT_PL),
        ("output.py", OUTPUT_PY),
        ("exit.pl", EXIT_PL),
        ("exit.py", EXIT_PY),
        ("pragmas.pl", PRAGMAS_PL),
        ("begin.pl", BEGIN_PL),
        ("upload.pl", UPLOAD_PL),
        ("redirect.pl", REDIRECT_PL),
        ("redirect.py", REDIRECT_PY),
    ] {
        fx.script(name, body);
    }
    let pair = pair(&fx, EVERY_SCRIPT);
    for script in ["env.pl", "env.py"] {
        let get = Request::get(&format!("/cgi-bin/{script}/a%20b/c?x=1&y=%C3%A9"));
        let answer = pair.same_from_runner(&get);
        assert!(
            answer.text().contains("PATH_INFO=/a b/c\n"),
            "{}",
            answer.text()
        );
        assert!(answer.text().contains("QUERY_STRING=x=1&y=%C3%A9\n"));
        let post = Request::post(&format!("/cgi-bin/{script}"), "k=v&w=1")
            .header("Content-Type", "application/x-www-form-urlencoded");
        assert!(
            pair.same_from_runner(&post)
                .text()
                .contains("body=k=v&w=1\n")
        );
    }
    for target in [
        "/cgi-bin/output.pl",
        "/cgi-bin/output.py",
        "/cgi-bin/exit.pl",
        "/cgi-bin/exit.pl?fail",
        "/cgi-bin/exit.py",
        "/cgi-bin/exit.py?fail",
        "/cgi-bin/pragmas.pl",
        "/cgi-bin/redirect.py",
    ] {
        pair.same_from_runner(&Request::get(target));
    }
    let early = pair.same(&Request::get("/cgi-bin/exit.pl")).text();
    assert_eq!(early, "before\nin done\n");
    assert!(
        pair.same(&Request::get("/cgi-bin/pragmas.pl"))
            .text()
            .contains("checkbox")
    );
    // A BEGIN block runs when the script compiles, in the request that compiles it, whose
    // answer is the same; it does not run again (the README's caveat, as mod_perl's).
    let plain = pair.plain.get("/cgi-bin/begin.pl");
    let first = pair.warm.get("/cgi-bin/begin.pl");
    assert_eq!(compared(&first, &plain), compared(&plain, &first));
    assert_eq!(first.text(), "begin saw GET\nrun\n");
    assert_eq!(pair.warm.get("/cgi-bin/begin.pl").status, 502);
    let redirected = pair.same(&Request::get("/cgi-bin/redirect.pl"));
    assert_eq!(
        redirected.text(),
        "hello\n",
        "the local redirect was followed"
    );
    assert_eq!(pair.same(&Request::get("/cgi-bin/redirect.py")).status, 302);
    let upload = multipart(
        "B0undary",
        &[
            ("who", None, "Ada"),
            ("file", Some("a.txt"), "uploaded\ncontent\n"),
        ],
    );
    let upload = Request::post("/cgi-bin/upload.pl", upload)
        .header("Content-Type", "multipart/form-data; boundary=B0undary");
    let answer = pair.same_from_runner(&upload);
    assert_eq!(
        answer.text(),
        "who=Ada\nname=a.txt\ncontent=uploaded\ncontent\n"
    );
}

#[test]
fn stderr_reaches_the_log_with_the_request_id() {
    let fx = Fixture::new();
    let marker = unique("stderr-line");
    fx.script(
        "stderr.pl",
        &format!(
            "#!/usr/bin/perl\nprint STDERR \"{marker} print\\n\";\nwarn \"{marker} warn\\n\";\nprint \"Content-Type: text/plain\\n\\nok\\n\";\n"
        ),
    );
    fx.script(
        "stderr.py",
        &format!(
            "#!/usr/bin/env python3\nimport sys\nprint('{marker} python', file=sys.stderr)\nprint('Content-Type: text/plain\\n\\nok')\n"
        ),
    );
    let pair = pair(&fx, EVERY_SCRIPT);
    for (script, lines) in [
        ("stderr.pl", &["print", "warn"][..]),
        ("stderr.py", &["python"][..]),
    ] {
        let answer = pair.same_from_runner(&Request::get(&format!("/cgi-bin/{script}")));
        let id = request_id(&answer);
        for line in lines {
            let text = format!("{marker} {line}");
            pair.warm
                .wait_for_log_line(&["portico::stderr", &text, &format!("id={id}")], 5 * SECOND);
        }
    }
}

const GITWEB: &str = "/usr/share/gitweb/gitweb.cgi";

/// `git/demo.git`, one commit of `README` at a fixed date (so a fixed hash), and the
/// gitweb config that serves `git/`.
fn git_projects(fx: &Fixture) -> PathBuf {
    let git = |dir: &std::path::Path, args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_DATE", "2020-01-02T03:04:05Z")
            .env("GIT_COMMITTER_DATE", "2020-01-02T03:04:05Z")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", fx.root())
            .status()
            .expect("git is installed");
        assert!(status.success(), "git {args:?}");
    };
    let work = fx.dir("work");
    fx.file("work/README", "hello from gitweb\n", 0o644);
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "README"]);
    git(
        &work,
        &[
            "-c",
            "user.name=Ada",
            "-c",
            "user.email=ada@example.org",
            "commit",
            "-q",
            "-m",
            "the first commit",
        ],
    );
    let projects = fx.dir("git");
    git(&projects, &["clone", "-q", "--bare", "../work", "demo.git"]);
    fx.file("git/demo.git/description", "a demo project\n", 0o644);
    fx.file(
        "gitweb.conf",
        &format!(
            "$projectroot = \"{}\";\n$GIT = \"git\";\n",
            projects.display()
        ),
        0o644,
    )
}

#[test]
fn gitweb_renders_the_same_pages_kept_warm() {
    assert!(
        std::path::Path::new(GITWEB).is_file(),
        "{GITWEB} is missing: Debian's gitweb package (scripts/test installs it)"
    );
    let fx = Fixture::new();
    let config = git_projects(&fx);
    let base = format!(
        "request_id_header = \"X-Request-Id\"\n\n[env]\nset = {{ GITWEB_CONFIG = \"{}\" }}\n\n[[cgi]]\nmount = \"/gitweb\"\nscript = \"{GITWEB}\"\n",
        config.display()
    );
    let start = |name: &str, toml: &str| {
        let config = fx.file(name, toml, 0o644);
        Portico::launch().arg("--config").arg(config).start()
    };
    let pair = Pair {
        plain: start("plain.toml", &base),
        warm: start(
            "warm.toml",
            &format!("{base}persistent = {{ perl = [\"gitweb.cgi\"], workers = 1 }}\n"),
        ),
    };
    for (target, text) in [
        ("/gitweb/", "a demo project"),
        ("/gitweb/?p=demo.git;a=summary", "the first commit"),
        ("/gitweb/?p=demo.git;a=commit;h=HEAD", "the first commit"),
        (
            "/gitweb/?p=demo.git;a=blob;f=README;hb=HEAD",
            "hello&nbsp;from&nbsp;gitweb",
        ),
        (
            "/gitweb/?p=demo.git;a=blob_plain;f=README;hb=HEAD",
            "hello from gitweb",
        ),
    ] {
        let answer = pair.same_from_runner(&Request::get(target));
        assert_eq!(answer.status, 200, "{target}");
        assert!(answer.text().contains(text), "{target}: {}", answer.text());
    }
}
