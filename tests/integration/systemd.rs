//! systemd: socket activation through Debian's `systemd-socket-activate` (the sockets it
//! hands over replace `listen`, TCP and unix alike) and the sd_notify(3) states a
//! `Type=notify` service sends, read from a datagram socket of the test's own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{Fixture, PORTICO, Portico, wait_until};

const SECOND: Duration = Duration::from_secs(1);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `systemd-socket-activate` and the Portico it starts, in a process group killed on drop.
struct Activated(Child);

impl Drop for Activated {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group this test started; no memory-safety preconditions.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn http_get(mut stream: impl Read + Write, path: &str) -> String {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn socket_activation_serves_the_tcp_and_unix_sockets_systemd_hands_over_instead_of_listen() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let (port, unused) = (free_port(), free_port());
    let socket = fx.path("activated.sock");
    let config = fx.config(&format!(
        "listen = '127.0.0.1:{unused}'\n[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n"
    ));
    let log = std::fs::File::create(fx.path("portico.log")).unwrap();
    let child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}"), "-l"])
        .arg(&socket)
        .args(["--fdname=http:http", "-E", "PATH", "--"])
        .arg(PORTICO)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("systemd-socket-activate runs (scripts/test installs systemd)");
    let _activated = Activated(child);
    assert!(
        wait_until(10 * SECOND, || TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "the socket is not listening"
    );

    // The first connection starts Portico, which answers it from the backlog.
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(20 * SECOND)).unwrap();
    let answer = http_get(stream, "/cgi-bin/hello");
    let log = || std::fs::read_to_string(fx.path("portico.log")).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{}", log());
    assert!(answer.ends_with("hello\n"), "{answer}");

    let unix = UnixStream::connect(&socket).unwrap();
    unix.set_read_timeout(Some(20 * SECOND)).unwrap();
    let answer = http_get(unix, "/cgi-bin/hello");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{}", log());

    // The config's own `listen` is not bound: the unit decides where Portico listens.
    assert!(
        TcpStream::connect(("127.0.0.1", unused)).is_err(),
        "{}",
        log()
    );
    let log = log();
    assert!(
        log.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("listening on unix:{}", socket.display())),
        "{log}"
    );
}

#[test]
fn sd_notify_says_ready_reloading_and_stopping() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    fx.script("env", crate::scripts::ENV);
    let notify = UnixDatagram::bind(fx.path("notify.sock")).unwrap();
    notify.set_read_timeout(Some(10 * SECOND)).unwrap();
    let config = fx.config("[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n");
    let mut portico = Portico::launch()
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", fx.path("notify.sock").to_str().unwrap())
        .start();
    let next = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1\n");
    assert_eq!(portico.get("/cgi-bin/hello").status, 200);
    // The variable is Portico's: no script sees it.
    let env = portico.get("/cgi-bin/env").text();
    assert!(env.contains("GATEWAY_INTERFACE=CGI/1.1"), "{env}");
    assert!(!env.contains("NOTIFY_SOCKET"), "{env}");

    portico.signal(libc::SIGHUP);
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(), "READY=1\n");
    portico.wait_for_log("config reloaded", 10 * SECOND);

    portico.sigterm();
    assert_eq!(next(), "STOPPING=1\n");
    assert!(portico.wait_exit(10 * SECOND).success());
}
