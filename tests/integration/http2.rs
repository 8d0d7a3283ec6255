//! HTTP/2 streams on one connection (h2c with prior knowledge), from the `h2` crate's client
//! because it can reset one stream of several: RST_STREAM ends that stream's script group
//! or aborts its FastCGI request, and the other streams on the connection go on.

use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;

use crate::harness::{Fixture, assert_no_process_with_arg, assert_process_with_arg_runs};

const SECOND: Duration = Duration::from_secs(1);
const FCGI_APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

fn runtime() -> tokio::runtime::Runtime {
    // Two threads: the connection's task must go on while the test waits on processes.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn get(
    client: &mut SendRequest<Bytes>,
    addr: std::net::SocketAddr,
    path: &str,
) -> h2::client::ResponseFuture {
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    *client = ready;
    response
}

async fn text(response: h2::client::ResponseFuture) -> (u16, String) {
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_reset_stream_ends_its_script_or_fastcgi_request_and_only_that() {
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let (marker, _) = fx.script_with_child("ticking", crate::scripts::TICKING_WITH_CHILD);
    let portico = fx.serve_config(
        &format!(
            "[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{FCGI_APP}'], workers = 1 }}\n"
        ),
        &[],
    );
    let addr = portico.addr();
    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });

        // A script that ticks for ever, its first line read, then its stream reset.
        let request = http::Request::get(format!("http://{addr}/cgi-bin/ticking"))
            .body(())
            .unwrap();
        let mut ready = client.clone().ready().await.unwrap();
        let (response, mut stream) = ready.send_request(request, true).unwrap();
        client = ready;
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = body.data().await.unwrap().unwrap();
        assert!(first.starts_with(b"tick"), "{first:?}");
        assert_process_with_arg_runs(&marker, 5 * SECOND);
        // Another stream, in flight across the reset.
        let sleeping = get(&mut client, addr, "/app/sleep?1").await;
        stream.send_reset(h2::Reason::CANCEL);
        drop(body);

        // Its whole group is ended, the other stream and the connection go on.
        assert_no_process_with_arg(&marker, 5 * SECOND, &portico.log());
        assert_eq!(text(sleeping).await, (200, "hello\n".to_owned()));
        let after = get(&mut client, addr, "/cgi-bin/hello").await;
        assert_eq!(text(after).await, (200, "hello\n".to_owned()));

        // A FastCGI request reset mid-way is aborted, and its worker serves the next one.
        let request = http::Request::get(format!("http://{addr}/app/sleep?30"))
            .body(())
            .unwrap();
        let mut ready = client.clone().ready().await.unwrap();
        let (_response, mut stream) = ready.send_request(request, true).unwrap();
        client = ready;
        tokio::time::sleep(SECOND / 2).await;
        stream.send_reset(h2::Reason::CANCEL);
        let line = portico.wait_for_log_line(&["path=/app/sleep", "client gone"], 10 * SECOND);
        assert!(line.contains("status="), "{line}");
        let next = get(&mut client, addr, "/app/hello").await;
        assert_eq!(text(next).await, (200, "hello\n".to_owned()));
    });
    portico.assert_no_zombies();
}
