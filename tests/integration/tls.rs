//! `[tls]`: HTTPS with a real client (curl, built on OpenSSL) against certificates made by
//! `openssl req` at test time. Scripts and apps see HTTPS=on, REQUEST_SCHEME=https and the
//! TLS port; ALPN gives HTTP/2 with many streams on one connection and HTTP/1.1 on request;
//! plain HTTP or garbage on the TLS port closes that connection only; SIGHUP presents a new
//! certificate and keeps the running one when the new files are bad; `portico check`
//! names the file, line and key of a missing or mismatched certificate or key.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{Fixture, Portico};

const SECOND: Duration = Duration::from_secs(1);
const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/apps");
const FCGI_APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

/// A self-signed certificate for 127.0.0.1 and localhost, as `stem.crt` and `stem.key`.
fn certificate(dir: &Path, stem: &str) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args([
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.crt"),
        ])
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn config() -> String {
    format!(
        "listen = '127.0.0.1:0'\n\
         [tls]\nlisten = '127.0.0.1:0'\ncertificate = 'server.crt'\nkey = 'server.key'\n\
         [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
         [[fastcgi]]\nmount = '/fcgi'\nlaunch = {{ command = ['{FCGI_APP}'], workers = 1 }}\n\
         [[wsgi]]\nmount = '/wsgi'\napp = 'hello_wsgi:app'\npath = ['{APPS}']\nworkers = 1\n"
    )
}

/// Portico with a plain listener (`addrs()[0]`) and a TLS one (`addrs()[1]`).
fn serve(fx: &Fixture) -> Portico {
    certificate(fx.root(), "server");
    fx.script("env", crate::scripts::ENV);
    fx.script("echo", crate::scripts::ECHO);
    fx.script("hello", crate::scripts::HELLO);
    fx.script(
        "nph-hello",
        "#!/bin/sh\nprintf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nnph\\n'\n",
    );
    let config = fx.config(&config());
    Portico::launch()
        .arg("--config")
        .arg(config)
        .listen_from_config(2)
        .start()
}

fn tls_addr(portico: &Portico) -> SocketAddr {
    portico.addrs()[1]
}

/// curl with the test's CA and `args`; its stdout, and the whole output.
fn curl(fx: &Fixture, ca: &str, args: &[&str]) -> Output {
    Command::new("curl")
        .current_dir(fx.root())
        .args(["-sS", "--max-time", "20", "--cacert", ca])
        .args(args)
        .output()
        .expect("curl runs")
}

fn text(output: &Output) -> String {
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn scripts_and_apps_behind_tls_see_https_and_the_tls_port() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let base = format!("https://{}", tls_addr(&portico));
    let port = format!("SERVER_PORT={}", tls_addr(&portico).port());

    let env = text(&curl(&fx, "server.crt", &[&format!("{base}/cgi-bin/env")]));
    for expected in ["HTTPS=on", "REQUEST_SCHEME=https", &port] {
        assert!(
            env.lines().any(|line| line == expected),
            "{expected} in\n{env}"
        );
    }
    let fcgi = text(&curl(&fx, "server.crt", &[&format!("{base}/fcgi/env")]));
    for expected in ["HTTPS=on", "REQUEST_SCHEME=https", &port] {
        assert!(
            fcgi.lines().any(|line| line == expected),
            "{expected} in\n{fcgi}"
        );
    }
    let wsgi = text(&curl(&fx, "server.crt", &[&format!("{base}/wsgi/env")]));
    assert!(
        wsgi.lines().any(|line| line == "wsgi.url_scheme=https"),
        "{wsgi}"
    );

    // The plain listener beside it says http, and sets no HTTPS.
    let plain = portico.get("/cgi-bin/env").text();
    assert!(
        plain.lines().any(|line| line == "REQUEST_SCHEME=http"),
        "{plain}"
    );
    assert!(
        !plain.lines().any(|line| line.starts_with("HTTPS=")),
        "{plain}"
    );
}

#[test]
fn alpn_gives_http2_with_many_streams_on_one_connection_and_http1_on_request() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let base = format!("https://{}", tls_addr(&portico));

    let version = |extra: &str| {
        let output = curl(
            &fx,
            "server.crt",
            &[
                extra,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version}",
                &format!("{base}/cgi-bin/hello"),
            ],
        );
        text(&output)
    };
    assert_eq!(version("--http2"), "2");
    assert_eq!(version("--http1.1"), "1.1");

    // 30 requests over CGI, FastCGI and WSGI, in parallel on one HTTP/2 connection.
    let mut args: Vec<String> = ["--http2", "--parallel", "--parallel-max", "30"]
        .map(String::from)
        .to_vec();
    args.extend([
        "-w".into(),
        "%{http_version} %{response_code} %{num_connects}\\n".into(),
    ]);
    for i in 0..10 {
        for path in ["/cgi-bin/hello", "/fcgi/hello", "/wsgi/"] {
            args.push(format!("{base}{path}?{i}"));
            args.push("-o".into());
            args.push("/dev/null".into());
        }
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let summary = text(&curl(&fx, "server.crt", &refs));
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 30, "{summary}");
    assert!(
        lines.iter().all(|line| line.starts_with("2 200 ")),
        "{summary}"
    );
    let connects: usize = lines
        .iter()
        .map(|line| line.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(connects, 1, "all streams on one connection:\n{summary}");

    // h2c with prior knowledge on the plain listener, to each kind of mount. (One request
    // per curl: curl 7.88 fails a second request on a reused prior-knowledge connection
    // without sending it.)
    let plain = format!("http://{}", portico.addrs()[0]);
    for (path, body) in [
        ("/cgi-bin/hello", "hello\n"),
        ("/fcgi/hello", "hello\n"),
        ("/wsgi/", "hello\n"),
    ] {
        let output = curl(
            &fx,
            "server.crt",
            &[
                "--http2-prior-knowledge",
                "-w",
                " %{http_version}",
                &format!("{plain}{path}"),
            ],
        );
        assert_eq!(text(&output), format!("{body} 2"), "{path}");
    }

    // A POST body over HTTP/2 comes back whole; an NPH script's head is parsed, not sent raw.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(fx.path("body.bin"), &body).unwrap();
    let echoed = curl(
        &fx,
        "server.crt",
        &[
            "--http2",
            "--data-binary",
            "@body.bin",
            &format!("{base}/cgi-bin/echo"),
        ],
    );
    assert!(echoed.status.success());
    assert_eq!(echoed.stdout, body);
    let nph = text(&curl(
        &fx,
        "server.crt",
        &["--http1.1", "-i", &format!("{base}/cgi-bin/nph-hello")],
    ));
    assert!(nph.starts_with("HTTP/1.1 200"), "{nph}");
    assert!(nph.ends_with("\r\n\r\nnph\n"), "{nph}");
}

#[test]
fn plain_http_or_garbage_on_the_tls_port_closes_only_that_connection() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let base = format!("https://{}", tls_addr(&portico));
    for attempt in [
        &b"GET /cgi-bin/hello HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xff; 4096][..],
    ] {
        let mut stream = TcpStream::connect(tls_addr(&portico)).unwrap();
        stream.set_read_timeout(Some(5 * SECOND)).unwrap();
        let _ = stream.write_all(attempt);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        // At most a TLS alert record (content type 21), never an HTTP answer.
        assert!(
            answer.is_empty() || answer[0] == 21,
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
        assert_eq!(
            text(&curl(
                &fx,
                "server.crt",
                &[&format!("{base}/cgi-bin/hello")]
            )),
            "hello\n"
        );
    }
    // A client that connects and says nothing is cut at the header read timeout, like on HTTP.
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
}

#[test]
fn sighup_presents_a_new_certificate_and_keeps_the_old_one_when_the_new_files_are_bad() {
    let fx = Fixture::new();
    let portico = serve(&fx);
    let url = format!("https://{}/cgi-bin/hello", tls_addr(&portico));
    assert!(curl(&fx, "server.crt", &[&url]).status.success());

    // A new key and certificate in place of the old, then SIGHUP.
    std::fs::copy(fx.path("server.crt"), fx.path("old.crt")).unwrap();
    certificate(fx.root(), "server");
    portico.signal(libc::SIGHUP);
    portico.wait_for_log("config reloaded", 10 * SECOND);
    assert!(curl(&fx, "server.crt", &[&url]).status.success());
    let old = curl(&fx, "old.crt", &[&url]);
    assert!(
        !old.status.success(),
        "the old certificate is no longer presented"
    );

    // A key that is not the certificate's: the reload is refused, the running one stays.
    certificate(fx.root(), "other");
    std::fs::copy(fx.path("server.crt"), fx.path("good.crt")).unwrap();
    std::fs::copy(fx.path("other.key"), fx.path("server.key")).unwrap();
    portico.signal(libc::SIGHUP);
    let refused = portico.wait_for_log("config reload refused", 10 * SECOND);
    assert!(
        refused.contains("tls.key") && refused.contains("does not match"),
        "{refused}"
    );
    assert!(curl(&fx, "good.crt", &[&url]).status.success());
}

#[test]
fn check_names_the_file_line_and_key_of_a_bad_certificate_or_key() {
    let fx = Fixture::new();
    certificate(fx.root(), "server");
    certificate(fx.root(), "other");
    fx.dir("cgi-bin");
    std::fs::write(fx.path("empty.pem"), "").unwrap();
    let cases = [
        (
            "missing.crt",
            "server.key",
            4,
            "tls.certificate",
            "cannot read",
        ),
        (
            "empty.pem",
            "server.key",
            4,
            "tls.certificate",
            "no PEM certificate",
        ),
        ("server.crt", "missing.key", 5, "tls.key", "cannot read"),
        (
            "server.crt",
            "server.crt",
            5,
            "tls.key",
            "no PEM private key",
        ),
        (
            "server.crt",
            "other.key",
            5,
            "tls.key",
            "does not match the certificate",
        ),
    ];
    for (cert, key, line, name, message) in cases {
        let toml = format!(
            "[tls]\nlisten = '127.0.0.1:0'\n\ncertificate = '{cert}'\nkey = '{key}'\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n"
        );
        let outcome = fx.check(&toml);
        assert_eq!(outcome.code, Some(2), "{cert} {key}: {}", outcome.stderr);
        let stderr = &outcome.stderr;
        assert!(
            stderr.contains(&format!(":{line}")),
            "{cert} {key}: {stderr}"
        );
        assert!(
            stderr.contains(name) && stderr.contains(message),
            "{cert} {key}: {stderr}"
        );
    }
    let good = "[tls]\nlisten = '127.0.0.1:0'\ncertificate = 'server.crt'\nkey = 'server.key'\n\
                [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n";
    assert_eq!(fx.check(good).code, Some(0));
}
