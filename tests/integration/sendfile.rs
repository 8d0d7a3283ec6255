//! X-Sendfile: a script answers with the path of a file under its mount's `x_sendfile`
//! directory and Portico sends the file: whole, by range, as 304 to a client that has it,
//! headers only to HEAD; a file outside the directory is a 502, never sent.

use std::time::Duration;

use crate::harness::{Fixture, Portico};
use crate::http::Request;

const SECOND: Duration = Duration::from_secs(1);

fn file_bytes() -> Vec<u8> {
    (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect()
}

fn serve(fx: &Fixture, x_sendfile: bool) -> Portico {
    let files = fx.dir("files");
    std::fs::write(files.join("big.bin"), file_bytes()).unwrap();
    std::fs::write(fx.path("secret"), "not for you\n").unwrap();
    let script = |name: &str, target: &str| {
        fx.script(
            name,
            &format!(
                "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\
                 Content-Disposition: attachment\\r\\nX-Sendfile: {target}\\r\\n\\r\\nignored\\n'\n"
            ),
        );
    };
    script("download", &files.join("big.bin").display().to_string());
    script("escape", &files.join("../secret").display().to_string());
    script("missing", &files.join("gone.bin").display().to_string());
    let key = if x_sendfile {
        "x_sendfile = 'files'\n"
    } else {
        ""
    };
    fx.serve_config(
        &format!("[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n{key}"),
        &[],
    )
}

#[test]
fn the_file_named_is_sent_whole_by_range_conditionally_and_to_head() {
    let fx = Fixture::new();
    let portico = serve(&fx, true);
    let whole = file_bytes();

    let got = portico.get("/cgi-bin/download");
    assert_eq!(got.status, 200, "{}", portico.log());
    assert_eq!(got.body.len(), whole.len());
    assert!(got.body == whole, "the body is not the file");
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.header("content-disposition"), Some("attachment"));
    assert_eq!(got.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        got.header("x-sendfile"),
        None,
        "the path reached the client"
    );
    let etag = got.header("etag").expect("an ETag").to_owned();
    let modified = got
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();

    let range = portico.send(&Request::get("/cgi-bin/download").header("Range", "bytes=100-199"));
    assert_eq!(range.status, 206);
    assert_eq!(range.header("content-range"), Some("bytes 100-199/1048576"));
    assert_eq!(range.body, &whole[100..200]);
    let suffix = portico.send(&Request::get("/cgi-bin/download").header("Range", "bytes=-10"));
    assert_eq!(
        (suffix.status, suffix.body.as_slice()),
        (206, &whole[whole.len() - 10..])
    );
    let beyond = portico.send(&Request::get("/cgi-bin/download").header("Range", "bytes=2000000-"));
    assert_eq!(beyond.status, 416);

    let cached = portico.send(&Request::get("/cgi-bin/download").header("If-None-Match", &etag));
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let since =
        portico.send(&Request::get("/cgi-bin/download").header("If-Modified-Since", &modified));
    assert_eq!((since.status, since.body.len()), (304, 0));

    let head = portico.send(&Request::head("/cgi-bin/download"));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1048576"));
    assert!(head.body.is_empty());
}

#[test]
fn a_file_outside_the_directory_is_a_502_and_a_missing_one_a_404() {
    let fx = Fixture::new();
    let portico = serve(&fx, true);
    let escaped = portico.get("/cgi-bin/escape");
    assert_eq!(escaped.status, 502);
    assert!(!escaped.text().contains("not for you"));
    portico.wait_for_log_line(
        &["path=/cgi-bin/escape", "outside the mount's x_sendfile"],
        5 * SECOND,
    );
    assert_eq!(portico.get("/cgi-bin/missing").status, 404);
}

#[test]
fn without_x_sendfile_the_field_is_the_script_s_own_and_nothing_is_sent_for_it() {
    let fx = Fixture::new();
    let portico = serve(&fx, false);
    let got = portico.get("/cgi-bin/download");
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "ignored\n");
}
