//! Persistent CGI's safety: nothing of one request is seen by the next (module globals,
//! %ENV, CGI.pm's params); a syntax error is the same 502 as plain CGI; a script its runner
//! cannot host (it execs, it does not compile there) is answered by plain CGI, with a log
//! line saying why, until its file changes; scripts a mount does not list stay plain CGI.

use std::time::Duration;

use crate::harness::Fixture;
use crate::http::Request;
use crate::persistent::{EVERY_SCRIPT, pair, request_id};

const SECOND: Duration = Duration::from_secs(1);

const SYNTAX_PL: &str = "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\n\\n\"\nprint 'x' +;\n";
const SYNTAX_PY: &str = "#!/usr/bin/env python3\nprint(\"Content-Type: text/plain\\n\"\n";

#[test]
fn a_syntax_error_is_the_same_502_and_a_fixed_script_is_kept_warm_again() {
    let fx = Fixture::new();
    fx.script("syntax.pl", SYNTAX_PL);
    fx.script("syntax.py", SYNTAX_PY);
    let pair = pair(&fx, EVERY_SCRIPT);
    for (script, cause) in [("syntax.pl", "syntax error"), ("syntax.py", "SyntaxError")] {
        let target = format!("/cgi-bin/{script}");
        let answer = pair.same(&Request::get(&target));
        assert_eq!(answer.status, 502);
        pair.warm.wait_for_log_line(
            &[
                "runs as plain CGI until its file changes",
                &format!("script={target}"),
                cause,
            ],
            5 * SECOND,
        );
        // Marked: the next request goes straight to a process of its own.
        let answer = pair.warm.get(&target);
        assert_eq!(answer.status, 502);
        pair.warm.wait_for_log_line(
            &[
                "portico::access",
                &format!("id={}", request_id(&answer)),
                "pid=",
            ],
            5 * SECOND,
        );
    }
    // Fixed (a new size), the script is tried in its runner again.
    fx.script(
        "syntax.pl",
        "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\n\\nfixed\\n\";\n",
    );
    fx.script(
        "syntax.py",
        "#!/usr/bin/env python3\nprint('Content-Type: text/plain\\n\\nfixed')\n",
    );
    for script in ["syntax.pl", "syntax.py"] {
        let answer = pair.same_from_runner(&Request::get(&format!("/cgi-bin/{script}")));
        assert_eq!(answer.text(), "fixed\n");
    }
}

#[test]
fn nothing_of_one_request_is_seen_by_the_next() {
    let fx = Fixture::new();
    // A module global, a variable of os.environ, and a module the script imports (which
    // stays imported: that is what is saved).
    fx.script(
        "state.py",
        "#!/usr/bin/env python3\nimport os, sys\nwas_imported = 'wave' in sys.modules\nimport wave\ntry:\n    count += 1\nexcept NameError:\n    count = 1\nprint('Content-Type: text/plain\\n')\nprint('count=%d leaked=%s imported=%s' % (count, os.environ.get('LEAKED', 'no'), was_imported))\nos.environ['LEAKED'] = 'yes'\n",
    );
    // CGI.pm's function interface keeps a default object across calls: its params must
    // be the request's own, as must %ENV.
    fx.script(
        "params.pl",
        "#!/usr/bin/perl\nuse strict;\nuse warnings;\nuse CGI qw(:standard);\nprint header('text/plain');\nprint 'q=', param('q') // 'none', ' leaked=', $ENV{LEAKED} // 'no', ' method=', request_method(), \"\\n\";\n$ENV{LEAKED} = param('q') // 'none';\n",
    );
    // A signal handler a script sets is its process's: gone with it, and so are its
    // `__WARN__` and `__DIE__` hooks, which `keys %SIG` does not list.
    fx.script(
        "signals.pl",
        "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\n\\n\", join(' ', map { defined $SIG{$_} ? 'set' : 'unset' } qw(USR1 __WARN__ __DIE__)), \"\\n\";\n$SIG{USR1} = sub {};\n$SIG{__WARN__} = sub {};\n$SIG{__DIE__} = sub {};\n",
    );
    let pair = pair(&fx, EVERY_SCRIPT);
    for _ in 0..3 {
        assert_eq!(
            pair.warm.get("/cgi-bin/signals.pl").text(),
            "unset unset unset\n"
        );
    }
    for round in 1..=3 {
        let answer = pair.warm.get("/cgi-bin/state.py").text();
        let imported = if round == 1 { "False" } else { "True" };
        assert_eq!(answer, format!("count=1 leaked=no imported={imported}\n"));
    }
    for i in 0..40 {
        let (target, q) = match i % 3 {
            0 => (format!("/cgi-bin/params.pl?q={i}"), i.to_string()),
            1 => ("/cgi-bin/params.pl".to_owned(), "none".to_owned()),
            _ => (format!("/cgi-bin/params.pl?other={i}"), "none".to_owned()),
        };
        let answer = pair.warm.get(&target);
        assert_eq!(
            answer.text(),
            format!("q={q} leaked=no method=GET\n"),
            "{target}"
        );
        if i % 2 == 0 {
            let post = Request::post("/cgi-bin/params.pl", format!("q=p{i}"))
                .header("Content-Type", "application/x-www-form-urlencoded");
            let answer = pair.warm.send(&post);
            assert_eq!(answer.text(), format!("q=p{i} leaked=no method=POST\n"));
        }
    }
    pair.warm
        .wait_for_log_line(&["path=/cgi-bin/params.pl", "upstream=unix:"], 5 * SECOND);
}

#[test]
fn a_script_its_runner_cannot_host_runs_as_plain_cgi_until_it_changes() {
    let fx = Fixture::new();
    // A script that ends by exec'ing another program is a process of its own under CGI;
    // in a runner it would replace the worker, which then answers nothing.
    let exec = "exec '/bin/sh', '-c', 'printf \"Content-Type: text/plain\\\\n\\\\nexec\\\\n\"';";
    fx.script("exec.pl", &format!("#!/usr/bin/perl\n{exec}\n"));
    fx.script(
        "exec.py",
        "#!/usr/bin/env python3\nimport os\nos.execv('/bin/sh', ['sh', '-c', 'printf \"Content-Type: text/plain\\\\n\\\\nexec\\\\n\"'])\n",
    );
    let pair = pair(&fx, EVERY_SCRIPT);
    for script in ["exec.pl", "exec.py"] {
        let target = format!("/cgi-bin/{script}");
        let first = pair.warm.get(&target);
        assert_eq!((first.status, first.text().as_str()), (200, "exec\n"));
        let why = pair.warm.wait_for_log_line(
            &[
                "runs as plain CGI until its file changes",
                &format!("script={target}"),
                &format!("id={}", request_id(&first)),
            ],
            5 * SECOND,
        );
        assert!(why.contains("its worker broke off"), "{why}");
        assert!(why.contains("again=true"), "{why}");
        // From now on a process of its own, a POST too.
        pair.same(&Request::get(&target));
        let post = pair.warm.send(&Request::post(&target, "x=1"));
        assert_eq!(post.text(), "exec\n");
        pair.warm.wait_for_log_line(
            &[
                "portico::access",
                &format!("id={}", request_id(&post)),
                "pid=",
            ],
            5 * SECOND,
        );
    }
    // Edited, it is tried in its runner again.
    fx.script(
        "exec.pl",
        "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\n\\nwarm\\n\";\n",
    );
    let answer = pair.same_from_runner(&Request::get("/cgi-bin/exec.pl"));
    assert_eq!(answer.text(), "warm\n");
}

#[test]
fn only_the_listed_scripts_are_kept_warm() {
    let fx = Fixture::new();
    let pair = pair(&fx, r#"{ perl = ["hello.pl"], workers = 1 }"#);
    let warm = pair.same(&Request::get("/cgi-bin/hello.pl"));
    let plain = pair.same(&Request::get("/cgi-bin/form.pl"));
    let python = pair.same(&Request::get("/cgi-bin/hello.py"));
    pair.warm.wait_for_log_line(
        &[&format!("id={}", request_id(&warm)), "upstream=unix:"],
        5 * SECOND,
    );
    for answer in [plain, python] {
        pair.warm.wait_for_log_line(
            &[
                "portico::access",
                &format!("id={}", request_id(&answer)),
                "pid=",
            ],
            5 * SECOND,
        );
    }
}

#[test]
fn scripts_of_a_runner_that_cannot_start_are_answered_by_plain_cgi() {
    // A runner that dies at start, as one whose perl lacks CGI::Compile does: Portico stops
    // it after its start retries, and its scripts are answered by plain CGI meanwhile.
    let fx = Fixture::new();
    let pair = pair(
        &fx,
        r#"{ perl = ["*.pl"], perl_command = "/bin/false", workers = 1 }"#,
    );
    let answer = pair.same(&Request::get("/cgi-bin/hello.pl"));
    assert_eq!((answer.status, answer.text().as_str()), (200, "hello\n"));
    pair.warm.wait_for_log_line(
        &[
            "answered by plain CGI: its persistent runner is down",
            "script=/cgi-bin/hello.pl",
            &format!("id={}", request_id(&answer)),
        ],
        5 * SECOND,
    );
}
