//! Portico behind a real nginx (`proxy_pass`, realip-style headers), as the application
//! server of a web server in front: the script sees the client's address and scheme as
//! nginx saw them, an `X-Forwarded-For` the client wrote itself is not believed, an upload
//! and a streamed response pass through unbuffered. The client is curl, bound to
//! 127.0.0.2 so that it is no trusted proxy (only nginx, on 127.0.0.1, is). nginx also
//! reaches Portico over a unix socket, trusted as `"unix"`.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::harness::{Fixture, Portico, wait_until};

/// nginx in front of `upstream`, on a port of its own; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    /// `upstream` as `proxy_pass` takes it: `127.0.0.1:8080`, or `unix:/path:`.
    fn start(dir: &Path, upstream: &str) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{}}\nhttp {{\n access_log off;\n\
             client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
             server {{\n  listen 127.0.0.1:{port};\n  location / {{\n\
               proxy_pass http://{upstream};\n\
               proxy_http_version 1.1;\n\
               proxy_set_header Host $host;\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
               proxy_set_header X-Forwarded-Proto $scheme;\n\
               proxy_buffering off;\n  proxy_request_buffering off;\n\
               client_max_body_size 10m;\n  }}\n }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (scripts/test installs it)");
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "nginx did not listen: {:?}",
            std::fs::read_to_string(dir.join("error.log"))
        );
        Nginx { child, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -s --interface 127.0.0.2 ARGS... URL`, started.
fn curl(args: &[&str], url: &str) -> Child {
    Command::new("curl")
        .args(["-s", "-N", "--interface", "127.0.0.2"])
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs")
}

fn output(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn behind_nginx_the_script_sees_the_client_and_bodies_stream_both_ways() {
    let fx = Fixture::new();
    fx.script(
        "show",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
         printf 'REMOTE_ADDR=%s\\nREQUEST_SCHEME=%s\\nXFF=%s\\n' \
         \"$REMOTE_ADDR\" \"$REQUEST_SCHEME\" \"$HTTP_X_FORWARDED_FOR\"\n",
    );
    fx.script("echo", crate::scripts::ECHO);
    fx.script(
        "stream",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfirst\\n'\nsleep 2\nprintf 'second\\n'\n",
    );
    let portico = fx.serve_config(
        "trusted_proxies = ['127.0.0.1']\n[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n",
        &[],
    );
    let nginx_dir = fx.dir("nginx");
    let nginx = Nginx::start(&nginx_dir, &portico.addr().to_string());
    let base = format!("http://127.0.0.1:{}", nginx.port);

    let shown = output(curl(
        &["-H", "X-Forwarded-For: 6.6.6.6"],
        &format!("{base}/cgi-bin/show"),
    ));
    assert!(shown.contains("REMOTE_ADDR=127.0.0.2\n"), "{shown}");
    assert!(shown.contains("REQUEST_SCHEME=http\n"), "{shown}");
    // nginx appended the address it saw; the one the client wrote is still there, unbelieved.
    assert!(shown.contains("XFF=6.6.6.6, 127.0.0.2\n"), "{shown}");

    // An upload of 1 MiB comes back whole.
    let body = fx.file("upload", &"x".repeat(1 << 20), 0o644);
    let echoed = output(curl(
        &["--data-binary", &format!("@{}", body.display())],
        &format!("{base}/cgi-bin/echo"),
    ));
    assert_eq!(echoed.len(), 1 << 20);

    // The first line arrives while the script is still asleep.
    let start = Instant::now();
    let mut stream = curl(&[], &format!("{base}/cgi-bin/stream"));
    let mut stdout = stream.stdout.take().unwrap();
    let mut first = [0u8; 6];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first\n");
    let first_after = start.elapsed();
    assert!(
        first_after < Duration::from_millis(1500),
        "first line after {first_after:?}"
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
    stream.wait().unwrap();
}

#[test]
fn behind_nginx_over_a_unix_socket_the_script_sees_the_client_nginx_saw() {
    let fx = Fixture::new();
    fx.script(
        "show",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
         printf 'REMOTE_ADDR=%s\\nREQUEST_SCHEME=%s\\n' \"$REMOTE_ADDR\" \"$REQUEST_SCHEME\"\n",
    );
    // Reads the whole body before it answers, as CGI.pm and PHP do: nginx sends no more of
    // a request body once the response head has come, so a script that answers first
    // stalls once the body outgrows the socket's buffers (smaller for unix sockets).
    fx.script(
        "count",
        "#!/bin/sh\nn=$(wc -c | tr -d ' ')\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$n\"\n",
    );
    let socket = fx.path("portico.sock");
    // A socket file left by a server that died is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let config = fx.config(
        "listen = ['127.0.0.1:0', 'unix:portico.sock']\ntrusted_proxies = ['unix']\n\
         [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n",
    );
    let mut portico = Portico::launch()
        .arg("--config")
        .arg(config)
        .listen_from_config(1)
        .start();
    portico.wait_for_log(
        &format!("listening on unix:{}", socket.display()),
        Duration::from_secs(5),
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "php-fpm's default listen.mode");

    let nginx_dir = fx.dir("nginx");
    let nginx = Nginx::start(&nginx_dir, &format!("unix:{}:", socket.display()));
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let shown = output(curl(
        &["-H", "X-Forwarded-For: 6.6.6.6"],
        &format!("{base}/cgi-bin/show"),
    ));
    assert!(shown.contains("REMOTE_ADDR=127.0.0.2\n"), "{shown}");
    assert!(shown.contains("REQUEST_SCHEME=http\n"), "{shown}");
    let body = fx.file("upload", &"y".repeat(3_000_000), 0o644);
    let counted = output(curl(
        &["--data-binary", &format!("@{}", body.display())],
        &format!("{base}/cgi-bin/count"),
    ));
    assert_eq!(
        counted,
        "3000000\n",
        "{}\n{}",
        portico.log(),
        std::fs::read_to_string(nginx_dir.join("error.log")).unwrap_or_default()
    );

    // Over TCP, 127.0.0.1 is no trusted proxy here: its X-Forwarded-For is not believed.
    let direct = portico
        .send(&crate::http::Request::get("/cgi-bin/show").header("X-Forwarded-For", "6.6.6.6"));
    assert!(
        direct.text().contains("REMOTE_ADDR=127.0.0.1\n"),
        "{}",
        direct.text()
    );

    // A clean stop removes the socket file.
    portico.sigterm();
    portico.wait_exit(Duration::from_secs(10));
    assert!(!socket.exists(), "the socket file is left behind");
}

#[test]
fn a_unix_socket_takes_its_mode_and_group_and_never_replaces_a_live_one_or_a_file() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let config = "listen = ['127.0.0.1:0', 'unix:p.sock']\nunix_socket_mode = '0600'\n\
                  unix_socket_group = '0'\n[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n";
    let first = Portico::launch()
        .arg("--config")
        .arg(fx.config(config))
        .listen_from_config(1)
        .start();
    let meta = std::fs::metadata(fx.path("p.sock")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.gid(), 0);
    let mut raw = std::os::unix::net::UnixStream::connect(fx.path("p.sock")).unwrap();
    std::io::Write::write_all(
        &mut raw,
        b"GET /cgi-bin/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello\n"),
        "{answer}"
    );

    // A second server on the same path: refused, the first one's socket untouched.
    let outcome = crate::harness::run_portico(
        &["serve", "--config", fx.config(config).to_str().unwrap()],
        fx.root(),
        Duration::from_secs(10),
    );
    assert_ne!(outcome.code, Some(0));
    assert!(
        outcome.stderr.contains("another server is listening on it"),
        "{}",
        outcome.stderr
    );
    assert!(std::os::unix::net::UnixStream::connect(fx.path("p.sock")).is_ok());
    drop(first);

    // A regular file in the way is never removed.
    std::fs::remove_file(fx.path("p.sock")).unwrap();
    std::fs::write(fx.path("p.sock"), "data").unwrap();
    let outcome = crate::harness::run_portico(
        &["serve", "--config", fx.config(config).to_str().unwrap()],
        fx.root(),
        Duration::from_secs(10),
    );
    assert!(
        outcome.stderr.contains("not a socket"),
        "{}",
        outcome.stderr
    );
    assert_eq!(std::fs::read_to_string(fx.path("p.sock")).unwrap(), "data");

    // A bad mode or group names its line and key.
    let bad = fx.check("unix_socket_mode = '999'\n[[cgi]]\nmount = '/c'\ndir = 'cgi-bin'\n");
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains(":1") && bad.stderr.contains("unix_socket_mode"),
        "{}",
        bad.stderr
    );
    let bad =
        fx.check("unix_socket_group = 'no-such-group-x'\n[[cgi]]\nmount = '/c'\ndir = 'cgi-bin'\n");
    assert!(
        bad.stderr.contains("unix_socket_group") && bad.stderr.contains("no group"),
        "{}",
        bad.stderr
    );
}
