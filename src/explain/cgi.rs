//! Part 3, the request as CGI: the command Portico's CGI backend ran, what the access line
//! says of the script's run, the head Portico answered with and which of RFC 3875's
//! response types the script's head was.
//!
//! Portico turns a script's head into an HTTP response head (RFC 3875 §6.3) and hides a
//! local redirect (§6.2.2), so the type is told from the response by Portico's own head
//! parser, given the status as a Status field, and from the access line for the rest.

use serde::Serialize;

use super::access_line::AccessLine;
use super::exchange::Response;
use crate::cgi::response::{self, Kind};
use crate::router;

#[derive(Serialize)]
pub struct CgiRun {
    pub command: Vec<String>,
    /// The script that answered, by its access line; another than the route's after a
    /// local redirect.
    pub script: Option<ScriptRun>,
    /// The status line and header fields Portico sent; for an NPH script, its own.
    pub response_head: String,
    /// RFC 3875 §6.2's response types, or NPH (§5), or why Portico answered itself.
    pub response_type: String,
    pub exit_status: Option<i32>,
}

#[derive(Serialize)]
pub struct ScriptRun {
    pub script_name: String,
    pub pid: Option<u32>,
    /// `0`, `1`, `signal 9`...
    pub exit: Option<String>,
    pub cpu_ms: Option<f64>,
    pub max_rss_kib: Option<u64>,
    /// Why its output stopped, when not by its end: a deadline, a client gone...
    pub ended: Option<String>,
}

impl ScriptRun {
    /// How the run went, in words: the exit status, CPU time, peak memory, and why its
    /// output stopped when not by its end.
    pub fn facts(&self) -> Vec<String> {
        let mut facts = vec![format!(
            "exit status {}",
            self.exit.as_deref().unwrap_or("?")
        )];
        if let Some(cpu) = self.cpu_ms {
            facts.push(format!("{cpu:.2} ms CPU"));
        }
        if let Some(rss) = self.max_rss_kib {
            facts.push(format!("peak RSS {rss} KiB"));
        }
        if let Some(ended) = &self.ended {
            facts.push(format!("ended: {ended}"));
        }
        facts
    }
}

impl CgiRun {
    /// Whose head `response_head` is: an NPH script's own, or Portico's made from the
    /// script's (RFC 3875 §6.3).
    pub fn head_note(&self) -> &'static str {
        if self.response_type.starts_with("NPH") {
            "the script printed this head, which Portico passed on as it was:"
        } else {
            "Portico answered with this head, made from the one the script printed:"
        }
    }
}

pub fn run(
    script: &router::Match<'_>,
    path: &str,
    response: &Response,
    line: Option<&AccessLine>,
) -> CgiRun {
    let mut command: Vec<String> = script
        .interpreter
        .unwrap_or_default()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    command.push(script.script_path.display().to_string());
    let run = line.and_then(|line| {
        Some(ScriptRun {
            script_name: line.get("script")?.to_owned(),
            pid: line.get("pid").and_then(|v| v.parse().ok()),
            exit: line.get("exit").map(str::to_owned),
            cpu_ms: line.get("cpu_ms").and_then(|v| v.parse().ok()),
            max_rss_kib: line.get("max_rss_kb").and_then(|v| v.parse().ok()),
            ended: line.get("ended").map(str::to_owned),
        })
    });
    let served = line.and_then(|l| l.get("path")).filter(|p| *p != path);
    let cause = line.and_then(|l| l.get("cause"));
    let response_type = match (served, cause) {
        _ if script.is_nph => describe(Kind::Nph).to_owned(),
        (Some(other), _) => format!(
            "{}: Portico served {other} instead",
            describe(Kind::LocalRedirect)
        ),
        (None, Some(cause)) => format!("none: Portico answered {} ({cause})", response.status),
        (None, None) => response_kind(response).map_or_else(
            || format!("unknown: Portico answered {}", response.status),
            |kind| describe(kind).to_owned(),
        ),
    };
    CgiRun {
        command,
        exit_status: run.as_ref().and_then(|r| r.exit.as_deref()?.parse().ok()),
        script: run,
        response_head: response_head(&response.head, script.is_nph),
        response_type,
    }
}

/// The type Portico's parser gives the fields it sent, with the status as a Status field:
/// where the script gave none, it is the status the parser would have chosen.
fn response_kind(response: &Response) -> Option<Kind> {
    let mut head = format!("Status: {}\n", response.status);
    for line in response.head.lines().skip(1) {
        head.push_str(line);
        head.push('\n');
    }
    response::parse(head.as_bytes()).ok().map(|head| head.kind)
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Document => "document response (RFC 3875 §6.2.1)",
        Kind::LocalRedirect => "local redirect response (RFC 3875 §6.2.2)",
        Kind::ClientRedirect => "client redirect response (RFC 3875 §6.2.3)",
        Kind::ClientRedirectWithDocument => {
            "client redirect response with document (RFC 3875 §6.2.4)"
        }
        Kind::Nph => "NPH: the script's own HTTP response (RFC 3875 §5)",
    }
}

/// HTTP/1.1 sends field names in lower case; they are shown as scripts write them
/// (`Content-Type`), the names being case-insensitive (RFC 9110 §5.1). An NPH script's
/// head is shown as it came, byte for byte the script's.
fn response_head(head: &str, is_nph: bool) -> String {
    if is_nph {
        return head.to_owned();
    }
    let mut lines = head.lines();
    let mut out = lines.next().unwrap_or("").to_owned();
    for line in lines {
        out.push('\n');
        match line.split_once(':') {
            Some((name, value)) => {
                let mut upper = true;
                for c in name.chars() {
                    out.push(if upper { c.to_ascii_uppercase() } else { c });
                    upper = c == '-';
                }
                out.push(':');
                out.push_str(value);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn response(head: &str) -> Response {
        Response {
            status: head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap(),
            head: head.to_owned(),
            body_bytes: 0,
            complete: true,
            first_byte: Duration::ZERO,
            last_byte: Duration::ZERO,
        }
    }

    #[test]
    fn the_response_type_is_what_portico_parses_from_the_fields_it_sent() {
        let cases = [
            (
                "HTTP/1.1 200 OK\ncontent-type: text/plain\ncontent-length: 3",
                Some(Kind::Document),
            ),
            (
                "HTTP/1.1 404 Not Found\ncontent-type: text/html",
                Some(Kind::Document),
            ),
            (
                "HTTP/1.1 302 Found\nlocation: http://example.invalid/\ncontent-length: 0",
                Some(Kind::ClientRedirect),
            ),
            (
                "HTTP/1.1 302 Found\nlocation: http://a.invalid/\ncontent-type: text/html",
                Some(Kind::ClientRedirectWithDocument),
            ),
            // A path with a Status of its own is not a local redirect (§6.2.2).
            (
                "HTTP/1.1 301 Moved Permanently\nlocation: /elsewhere",
                Some(Kind::ClientRedirect),
            ),
        ];
        for (head, kind) in cases {
            assert_eq!(response_kind(&response(head)), kind, "{head}");
        }
    }

    #[test]
    fn field_names_are_shown_capitalised_except_an_nph_scripts() {
        let head = "HTTP/1.1 200 OK\ncontent-type: text/plain\nx-nph: yes";
        assert_eq!(
            response_head(head, false),
            "HTTP/1.1 200 OK\nContent-Type: text/plain\nX-Nph: yes"
        );
        assert_eq!(response_head(head, true), head);
    }
}
