//! The teaching page's form: its fields as a browser sends them, in the query string of a
//! GET, and the request they describe.

use bytes::Bytes;
use percent_encoding::percent_decode_str;

use crate::explain::error::ExplainError;
use crate::explain::request::Request;

/// The form's fields, as typed.
#[derive(Debug, PartialEq)]
pub struct Form {
    pub method: String,
    pub url: String,
    /// `Name: value` fields, one a line.
    pub headers: String,
    pub body: String,
    /// Cookie and Authorization values shown, as `--show-secrets` shows them.
    pub show_secrets: bool,
}

impl Form {
    /// The fields of a query string: a field named twice keeps its last value, and
    /// fields the form does not have are ignored. An empty method is GET, as a browser's.
    pub fn read(query: Option<&str>) -> Form {
        let mut form = Form {
            method: String::new(),
            url: String::new(),
            headers: String::new(),
            body: String::new(),
            show_secrets: false,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match decode(name).as_str() {
                "method" => form.method = value.trim().to_owned(),
                "url" => form.url = value.trim().to_owned(),
                "headers" => form.headers = value,
                "body" => form.body = value,
                "show_secrets" => form.show_secrets = !value.is_empty(),
                _ => {}
            }
        }
        if form.method.is_empty() {
            form.method = "GET".to_owned();
        }
        form
    }

    /// Whether a request was asked for, rather than the empty form.
    pub fn is_submitted(&self) -> bool {
        !self.url.is_empty()
    }

    /// The request to explain: blank header lines are skipped, and an empty body is none.
    pub fn request(&self) -> Result<Request, ExplainError> {
        let fields: Vec<&str> = self
            .headers
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let body = (!self.body.is_empty()).then(|| Bytes::from(self.body.clone()));
        Request::new(&self.method, &self.url, &fields, body)
    }
}

/// The URL Standard's application/x-www-form-urlencoded parsing (§5.1): `+` is a space,
/// then percent-decoding; bytes that are not UTF-8 become U+FFFD, as a browser shows them.
fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_as_a_browser_encodes_them() {
        let form = Form::read(Some(
            "method=POST&url=%2Fcgi-bin%2Fecho.py%3Fa%3D1+2&headers=X-A%3A+1%0D%0A%0D%0AX-B%3A2\
             &body=a%3D%C3%A9&show_secrets=1&other=x",
        ));
        assert_eq!(
            form,
            Form {
                method: "POST".into(),
                url: "/cgi-bin/echo.py?a=1 2".into(),
                headers: "X-A: 1\r\n\r\nX-B:2".into(),
                body: "a=é".into(),
                show_secrets: true,
            }
        );
        assert!(form.is_submitted());
    }

    #[test]
    fn no_query_is_the_empty_form_and_an_empty_method_is_get() {
        let empty = Form::read(None);
        assert!(!empty.is_submitted());
        assert_eq!(empty.method, "GET");
        assert_eq!(Form::read(Some("method=&url=/x")).method, "GET");
        assert_eq!(Form::read(Some("url=/x&url=/y")).url, "/y");
        assert_eq!(Form::read(Some("&&url&=")).url, "");
    }

    #[test]
    fn the_request_has_the_header_lines_and_a_body_only_when_one_was_typed() {
        let form = Form::read(Some(
            "method=POST&url=/a&headers=X-A%3A+1%0D%0A+%0D%0A&body=b%3D2",
        ));
        let request = form.request().unwrap();
        assert_eq!(request.headers["x-a"], "1");
        assert_eq!(request.headers["content-length"], "3");
        assert_eq!(&request.body[..], b"b=2");
        let request = Form::read(Some("url=/a")).request().unwrap();
        assert!(request.body.is_empty() && !request.headers.contains_key("content-type"));
        let bad = Form::read(Some("url=/a&headers=no+colon")).request();
        assert!(matches!(bad, Err(ExplainError::Request(_))));
    }
}
