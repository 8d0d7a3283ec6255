//! X-Sendfile (lighttpd, Apache's mod_xsendfile): a script or app that answers with
//! `X-Sendfile: /path` has Portico send that file in its place, so a large download does
//! not pass through the program's stdout. Opt-in per mount (`x_sendfile = "DIR"`), for
//! files under that directory only.
//!
//! The file is served by tower-http's `ServeFile`: Range requests (RFC 9110 §14), HEAD,
//! Last-Modified with If-Modified-Since and If-Unmodified-Since. An ETag made from the
//! file's size and modification time, with If-None-Match (§13.1.2), is added here.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::body::ResponseBody;
use crate::error::Error;

/// The response field a program names its file in.
pub const X_SENDFILE: &str = "x-sendfile";

/// Bytes per read of the file.
const READ_CHUNK: usize = 1 << 20;

/// The request fields that decide what part of the file, if any, goes out.
const CONDITIONS: [header::HeaderName; 4] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// `response` with the file its X-Sendfile names in place of its body, for a mount that
/// allows files under `allowed` (canonical); a response without the field is unchanged.
pub async fn apply(
    allowed: &Path,
    method: &Method,
    request: &HeaderMap,
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, Error> {
    let Some(named) = response.headers().get(X_SENDFILE) else {
        return Ok(response);
    };
    let path = resolve(allowed, named)?;
    let (mut parts, body) = response.into_parts();
    // Whatever the program wrote after its head is not the answer: it stops being read.
    drop(body);
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|_| Error::NotFound)?;
    let etag = etag(&meta);
    if request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| matches_etag(list, &etag))
    {
        let mut response = Response::new(crate::body::full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response.headers_mut().insert(header::ETAG, etag);
        return Ok(response);
    }

    let mut question = Request::builder().method(method.clone()).uri("/");
    for name in &CONDITIONS {
        for value in request.get_all(name) {
            question = question.header(name, value);
        }
    }
    let question = question.body(()).map_err(|_| Error::NotFound)?;
    // Large reads: each is a trip to the blocking pool (tokio::fs), which costs more
    // than the copy itself at ServeFile's 64 KiB default.
    let served = ServeFile::new(&path)
        .with_buf_chunk_size(READ_CHUNK)
        .oneshot(question)
        .await
        .unwrap_or_else(|never| match never {});
    let (mut served_parts, served_body) = served.into_parts();
    // The program's own fields stay (Content-Type, Content-Disposition, Cache-Control...),
    // except those that described the body it did not send.
    for name in [X_SENDFILE, "content-length", "transfer-encoding"] {
        parts.headers.remove(name);
    }
    for (name, value) in std::mem::take(&mut served_parts.headers) {
        if let Some(name) = name
            && (name != header::CONTENT_TYPE || !parts.headers.contains_key(&name))
        {
            parts.headers.insert(name, value);
        }
    }
    parts.headers.insert(header::ETAG, etag);
    parts.status = served_parts.status;
    Ok(Response::from_parts(parts, relay(served_body)))
}

/// The file's body as Portico's: ServeFile's is not `Sync`, so a task reads it and hands
/// the frames over a channel, a few at a time (the client's pace holds the reading back).
fn relay(mut body: tower_http::services::fs::ServeFileSystemResponseBody) -> ResponseBody {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            if tx.send(frame.map_err(std::io::Error::other)).await.is_err() {
                break;
            }
        }
    });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    http_body_util::StreamBody::new(frames).boxed()
}

/// The file named, if it is a regular file under `allowed` once every link is followed.
fn resolve(allowed: &Path, named: &HeaderValue) -> Result<PathBuf, Error> {
    let named = Path::new(named.to_str().map_err(|_| Error::SendfileOutside)?);
    if !named.is_absolute() {
        return Err(Error::SendfileOutside);
    }
    let path = named.canonicalize().map_err(|_| Error::NotFound)?;
    if !path.starts_with(allowed) {
        return Err(Error::SendfileOutside);
    }
    if !path.is_file() {
        return Err(Error::NotFound);
    }
    Ok(path)
}

/// A weak validator (RFC 9110 §8.8.3): a file rewritten within the same nanosecond at the
/// same size would keep it, which a byte-for-byte comparison of ranges could not afford.
fn etag(meta: &std::fs::Metadata) -> HeaderValue {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let tag = format!(
        "W/\"{:x}-{:x}.{:x}\"",
        meta.len(),
        modified.as_secs(),
        modified.subsec_nanos()
    );
    HeaderValue::from_str(&tag).expect("hex digits are a valid field value")
}

/// If-None-Match's weak comparison (§13.1.2): `*`, or any tag equal once `W/` is set aside.
fn matches_etag(list: &str, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default().trim_start_matches("W/");
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_takes_a_list_or_a_star() {
        let etag = HeaderValue::from_static("W/\"10-5.0\"");
        assert!(matches_etag("W/\"10-5.0\"", &etag));
        assert!(matches_etag("\"10-5.0\"", &etag));
        assert!(matches_etag("\"x\", W/\"10-5.0\"", &etag));
        assert!(matches_etag("*", &etag));
        assert!(!matches_etag("\"10-5.1\"", &etag));
        assert!(!matches_etag("", &etag));
    }

    #[test]
    fn only_absolute_paths_under_the_allowed_directory_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().canonicalize().unwrap().join("files");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("a.bin"), b"a").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), allowed.join("link")).unwrap();
        let value = |p: &Path| HeaderValue::from_str(p.to_str().unwrap()).unwrap();
        assert!(resolve(&allowed, &value(&allowed.join("a.bin"))).is_ok());
        for outside in [
            dir.path().join("secret"),
            allowed.join("../secret"),
            allowed.join("link"),
            PathBuf::from("files/a.bin"),
        ] {
            assert!(
                matches!(
                    resolve(&allowed, &value(&outside)),
                    Err(Error::SendfileOutside)
                ),
                "{outside:?}"
            );
        }
        assert!(matches!(
            resolve(&allowed, &value(&allowed.join("missing"))),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            resolve(&allowed, &value(&allowed)),
            Err(Error::NotFound)
        ));
    }
}
