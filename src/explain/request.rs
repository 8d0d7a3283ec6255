//! The request `portico explain` sends, from its command line or the teaching page's form:
//! the method, the target in origin form, the header fields exactly as they go on the wire
//! (Host, the given fields, a form Content-Type for a body without one, Content-Length)
//! and the body.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};

use super::error::ExplainError;
use crate::cli::ExplainArgs;

pub struct Request {
    pub method: Method,
    /// The URL as it was given: a path, or a full http:// URL naming the Host.
    pub url: String,
    /// The path and query, as the request line carries them and as `meta` reads them.
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn from_args(args: &ExplainArgs) -> Result<Request, ExplainError> {
        let body =
            match (&args.data, &args.data_file) {
                (Some(data), _) => Some(Bytes::from(data.clone())),
                (None, Some(file)) => Some(Bytes::from(std::fs::read(file).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", file.display()))
                })?)),
                (None, None) => None,
            };
        Request::new(&args.method, &args.url, &args.headers, body)
    }

    /// The request from its parts as a person writes them: `headers` are `Name: value`
    /// fields, and a `body` without a Content-Type among them is sent as a form.
    pub fn new(
        method: &str,
        url: &str,
        fields: &[impl AsRef<str>],
        body: Option<Bytes>,
    ) -> Result<Request, ExplainError> {
        let bad = |what: String| ExplainError::Request(what);
        let method: Method = method
            .parse()
            .map_err(|_| bad(format!("method `{method}`")))?;
        let parsed: Uri = url.parse().map_err(|_| bad(format!("URL `{url}`")))?;
        let target = parsed.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = target.parse().map_err(|_| bad(format!("URL `{url}`")))?;
        let mut headers = HeaderMap::new();
        let host = parsed.authority().map_or("localhost", |a| a.as_str());
        headers.insert(
            header::HOST,
            HeaderValue::from_str(host).map_err(|_| bad("host".into()))?,
        );
        for field in fields {
            let field = field.as_ref();
            let (name, value) = field
                .split_once(':')
                .ok_or_else(|| bad(format!("header `{field}`: NAME: value")))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad(format!("header name `{name}`")))?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| bad(format!("header value of `{name}`")))?;
            headers.append(name, value);
        }
        if body.is_some() && !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        let body = body.unwrap_or_default();
        // RFC 3875 §4.1.2: no data, no CONTENT_LENGTH; Portico reads `Content-Length: 0`
        // so, and a request without a body sends none.
        if !body.is_empty() {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        Ok(Request {
            method,
            url: url.to_owned(),
            uri,
            headers,
            body,
        })
    }

    /// CONTENT_LENGTH as the script gets it.
    pub fn content_length(&self) -> Option<u64> {
        (!self.body.is_empty()).then_some(self.body.len() as u64)
    }

    /// The request line and header fields, as sent.
    pub fn head(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.uri).into_bytes();
        for (name, value) in &self.headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }
}
