//! The teaching page: `portico explain` as a form in a browser, at `[explain] path` (off by
//! default; loopback clients only unless `allow_remote`). It is the one part of the tools
//! the gateway calls, and only for that path.
//!
//! - `form`: the form's fields, from the query string: a GET form, so that an
//!   explanation is a link a teacher can hand out;
//! - `html`: the form and the explanation, every value escaped.
//!
//! The request runs as the terminal command runs it, against a second server in this
//! process ([`crate::server::Local`]) with the config in force: the route's real backend
//! runs it, body and all, so a POST has whatever effect its program gives it, and it is
//! counted in the metrics like any request. The explanation is the same `Explanation`
//! the terminal prints. That server runs on a thread of its own, for the explanation's
//! subscriber to see its access lines and nothing of the serving threads', and one
//! explanation runs at a time in the process. Its own `[explain]` is off, so a URL naming
//! the page cannot start a server inside a server.

mod form;
mod html;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};
use tokio::sync::{Semaphore, oneshot};

use super::{ExplainError, Explanation};
use crate::body::{ResponseBody, full};
use crate::config::{Config, StatusPage};
use crate::error::Error;
use form::Form;

/// Each explanation starts a server and perhaps a launched app's workers: one asked for
/// while another runs is told to retry (503) rather than starting them again.
static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// No script runs on the page, and its form goes nowhere else; it may be framed only by
/// its own origin. Its one image is its empty icon, a `data:` URL, so that a browser asks
/// for no `/favicon.ico`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    img-src data:; form-action 'self'; frame-ancestors 'self'";

pub async fn respond(
    config: &Config,
    page: &StatusPage,
    uri: &Uri,
    headers: &HeaderMap,
    remote: SocketAddr,
) -> Result<Response<ResponseBody>, Error> {
    if !page.allow_remote && !remote.ip().to_canonical().is_loopback() {
        return Err(Error::Forbidden("the explain page is for loopback clients"));
    }
    if is_cross_site(headers) {
        return Err(Error::Forbidden(
            "the explain page runs requests from its own form only",
        ));
    }
    let form = Form::read(uri.query());
    let outcome = if form.is_submitted() {
        Some(run(config, &form).await?)
    } else {
        None
    };
    let status = match &outcome {
        Some(Err(ExplainError::Request(_))) => StatusCode::BAD_REQUEST,
        Some(Err(ExplainError::Io(_) | ExplainError::Config(_))) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::OK,
    };
    let mut response = Response::new(full(html::render(
        &page.path,
        config,
        &form,
        outcome.as_ref(),
    )));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    Ok(response)
}

/// A browser says where a request comes from (Fetch Metadata, `Sec-Fetch-Site`): only the
/// page's own form (`same-origin`) or the address bar and bookmarks (`none`) may run a
/// request through it, not a page of another site the operator happens to visit. A
/// client that sends no such field (curl) is not a browser tricked into it.
fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|site| site != "same-origin" && site != "none")
}

/// The form's request explained on a thread of its own; 503 while another explanation
/// runs.
async fn run(config: &Config, form: &Form) -> Result<Result<Explanation, ExplainError>, Error> {
    let request = match form.request() {
        Ok(request) => request,
        Err(error) => return Ok(Err(error)),
    };
    let permit = ONE_AT_A_TIME.try_acquire().map_err(|_| Error::Overloaded)?;
    let mut config = config.clone();
    config.explain = None;
    let config = Arc::new(config);
    let show = form.show_secrets;
    let (answer, answered) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("portico-explain".into())
        .spawn(move || {
            let explained = super::explain(config, &request, show);
            // Free before the answer goes out: the next explanation may start once this
            // one is shown.
            drop(permit);
            let _ = answer.send(explained);
        });
    if let Err(error) = thread {
        return Ok(Err(error.into()));
    }
    Ok(answered.await.unwrap_or_else(|_| {
        Err(std::io::Error::other("the explanation ended without an answer").into())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_request_from_the_page_itself_or_the_address_bar_runs() {
        let cases = [
            (None, false),
            (Some("same-origin"), false),
            (Some("none"), false),
            (Some("same-site"), true),
            (Some("cross-site"), true),
        ];
        for (site, refused) in cases {
            let mut headers = HeaderMap::new();
            if let Some(site) = site {
                headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            }
            assert_eq!(is_cross_site(&headers), refused, "{site:?}");
        }
    }
}
