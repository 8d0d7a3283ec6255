//! Micro-benchmarks of the code every request runs: building the meta-variables, parsing
//! a response head, the FastCGI codec (params and records, both ways), and what the status
//! page costs a request (its in-flight row, its mount's traffic), alone and from two
//! threads at once. `cargo bench --bench hot_paths`.

use std::ffi::OsStr;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use portico::config::{CgiMount, Config, Upstream};
use portico::fastcgi::in_flight::{self, InFlight};
use portico::fastcgi::params::{decode_pairs, encode_pair};
use portico::fastcgi::pool::Endpoint;
use portico::fastcgi::record::{self, Kind, RecordCodec};
use portico::meta;
use portico::request_id::RequestId;
use portico::traffic::Traffic;
use tokio_util::codec::Decoder;

fn config() -> Config {
    Config {
        cgi: vec![CgiMount {
            mount: "/cgi-bin".into(),
            dir: PathBuf::from("/srv/cgi"),
            script: None,
            auth: None,
            pass_authorization: false,
            interpreters: vec![],
            suexec: false,
            persistent: Vec::new(),
            authorizer: None,
            x_sendfile: None,
        }],
        ..Default::default()
    }
}

/// The headers a browser sends with a plain GET.
fn browser_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "example.org"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=0123456789abcdef; theme=dark"),
        ("connection", "keep-alive"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers
}

fn meta_variables(c: &mut Criterion) {
    let config = config();
    let headers = browser_headers();
    let uri: Uri = "/cgi-bin/env/a/b?x=1&y=2".parse().unwrap();
    let target = meta::Target {
        script_name: OsStr::new("/cgi-bin/env"),
        path_info: OsStr::new("/a/b"),
        script_filename: Path::new("/srv/cgi/env"),
        pass_authorization: false,
    };
    let info = meta::RequestInfo {
        method: &Method::GET,
        uri: &uri,
        version: Version::HTTP_11,
        headers: &headers,
        remote: "127.0.0.1:50000".parse().unwrap(),
        local: "127.0.0.1:8080".parse().unwrap(),
        content_length: None,
        remote_user: None,
        id: &portico::request_id::RequestId::new(),
        forwarded: &Default::default(),
        tls: false,
    };
    c.bench_function("meta::build (browser GET)", |b| {
        b.iter(|| meta::build(black_box(&config), &target, &info).unwrap())
    });
}

fn response_head(c: &mut Criterion) {
    let head = b"Status: 200 OK\nContent-Type: text/html; charset=utf-8\nSet-Cookie: a=1\nSet-Cookie: b=2\nCache-Control: no-store\nX-Frame-Options: DENY";
    c.bench_function("cgi::response::parse (6 fields)", |b| {
        b.iter(|| portico::cgi::response::parse(black_box(head)).unwrap())
    });
}

fn fastcgi_codec(c: &mut Criterion) {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..30)
        .map(|i| (format!("HTTP_HEADER_{i}").into_bytes(), vec![b'v'; 40]))
        .collect();
    c.bench_function("fastcgi params encode (30 pairs)", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            for (name, value) in &pairs {
                encode_pair(&mut out, name, value).unwrap();
            }
            black_box(out.len())
        })
    });
    let mut encoded = BytesMut::new();
    for (name, value) in &pairs {
        encode_pair(&mut encoded, name, value).unwrap();
    }
    c.bench_function("fastcgi params decode (30 pairs)", |b| {
        b.iter(|| decode_pairs(black_box(&encoded)).unwrap().len())
    });
    // A small response as a worker sends it: STDOUT, empty STDOUT, END_REQUEST.
    let mut response = BytesMut::new();
    record::encode_stream(
        &mut response,
        Kind::Stdout,
        1,
        b"Content-Type: text/plain\r\n\r\nhello\n",
    );
    record::encode_stream(&mut response, Kind::Stdout, 1, &[]);
    record::encode_record(
        &mut response,
        Kind::EndRequest,
        1,
        &record::end_request(0, record::ProtocolStatus::RequestComplete),
    );
    c.bench_function("fastcgi records decode (hello response)", |b| {
        b.iter(|| {
            let mut src = response.clone();
            let mut codec = RecordCodec;
            let mut n = 0;
            while let Some(record) = codec.decode(&mut src).unwrap() {
                n += record.content.len();
            }
            black_box(n)
        })
    });
    c.bench_function("fastcgi records encode (64 KiB stdin)", |b| {
        let data = vec![b'x'; 64 * 1024];
        let mut out = BytesMut::with_capacity(70 * 1024);
        b.iter(|| {
            out.clear();
            record::encode_stream(&mut out, Kind::Stdin, 1, black_box(&data));
            black_box(out.len())
        })
    });
}

/// Runs `work` `iters` times on this thread while another thread does the same, each on
/// what `make` gives it, and times this thread's share: the cost with another core busy
/// with the same mount.
fn two_threads<T>(iters: u64, make: impl Fn() -> T + Sync, work: impl Fn(&T) + Sync) -> Duration {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mine = make();
            (0..iters).for_each(|_| work(&mine));
        });
        let mine = make();
        let start = Instant::now();
        (0..iters).for_each(|_| work(&mine));
        start.elapsed()
    })
}

fn status_counters(c: &mut Criterion) {
    let endpoint = Arc::new(Endpoint::new(
        Upstream::Tcp("127.0.0.1:9000".into()),
        Some(8),
        8,
    ));
    // A request's own path and id, and the endpoint every request of the mount shares.
    let request = || in_flight::Request {
        method: Method::GET,
        path: "/app/hello".into(),
        client: "127.0.0.1".parse().unwrap(),
        id: RequestId::new(),
        started: Instant::now(),
        endpoint: endpoint.clone(),
    };
    let table = InFlight::default();
    let row = |request: &in_flight::Request| drop(black_box(table.enter(request.clone())));
    let one = request();
    c.bench_function("in-flight row entered and left", |b| b.iter(|| row(&one)));
    c.bench_function("in-flight row entered and left (2 threads)", |b| {
        b.iter_custom(|iters| two_threads(iters, request, row))
    });
    let traffic = Traffic::default();
    let count = |_: &()| traffic.record(black_box(Duration::from_micros(300)), black_box(6));
    c.bench_function("traffic counted", |b| b.iter(|| count(&())));
    c.bench_function("traffic counted (2 threads)", |b| {
        b.iter_custom(|iters| two_threads(iters, || (), count))
    });
}

criterion_group!(
    benches,
    meta_variables,
    response_head,
    fastcgi_codec,
    status_counters
);
criterion_main!(benches);
