//! The teaching page's HTML: the form, then the explanation in the terminal's six parts,
//! with the FastCGI records and the WSGI environ side by side. Every value is escaped:
//! they come from the form, the config and the program's answer. Long values wrap, so a
//! long URL never widens the page.

use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute as attribute, encode_text as escape};

use super::form::Form;
use crate::config::Config;
use crate::explain::records::runs;
use crate::explain::variables::GROUPS;
use crate::explain::{CgiRun, ExplainError, Explanation, fastcgi_kind};

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222;\
    overflow-wrap:anywhere}\
    form{display:grid;grid-template-columns:max-content minmax(0,50em);gap:.4em .8em;\
    align-items:start}\
    input[name=url],textarea{width:100%;box-sizing:border-box;font:13px ui-monospace,monospace}\
    table{border-collapse:collapse;margin:.5em 0 1em;width:100%;table-layout:fixed}\
    td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
    th{background:#f4f4f4}th.group{background:#e8eef6}col.name{width:14em}col.small{width:7em}\
    pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em}\
    .side{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1.5em}\
    .note{color:#555}.bad{color:#b00}tr.pair td{border-top:none;padding-left:2em}";

/// Writing to a String cannot fail: the `fmt::Result`s below are ignored for that reason.
pub(super) fn render(
    path: &str,
    config: &Config,
    form: &Form,
    outcome: Option<&Result<Explanation, ExplainError>>,
) -> String {
    let mut out = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <title>Portico explain</title><link rel=icon href=\"data:,\"><style>{STYLE}</style>\
         </head><body>\
         <h1>Explain a request</h1>\
         <p class=note>One request, run for real with this Portico's config, shown the three \
         ways Portico hands it to a program: CGI (RFC 3875), FastCGI records and a WSGI \
         environ (PEP 3333). The same as <code>portico explain</code>.</p>"
    );
    form_part(&mut out, path, config, form);
    match outcome {
        None => {}
        Some(Ok(explanation)) => explanation_part(&mut out, explanation),
        Some(Err(ExplainError::Route(error))) => {
            let status = error.status();
            let _ = write!(
                out,
                "<p id=answer>No program runs: Portico answers this request itself with \
                 <b>{} {}</b> ({}).</p>",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                escape(&error.to_string())
            );
        }
        Some(Err(error)) => {
            let _ = write!(
                out,
                "<p id=answer class=bad>Cannot explain it: {}</p>",
                escape(&error.to_string())
            );
        }
    }
    out.push_str("</body></html>");
    out
}

/// The form, filled in as it was sent. The HTML parser drops a newline right after
/// `<textarea>`: one is written there, so that a value beginning with one keeps it.
fn form_part(out: &mut String, path: &str, config: &Config, form: &Form) {
    let _ = write!(
        out,
        "<form method=get action=\"{}\">\
         <label for=method>Method</label><div><input id=method name=method list=methods \
         value=\"{}\" size=10><datalist id=methods><option>GET<option>HEAD<option>POST\
         <option>PUT<option>DELETE<option>OPTIONS<option>PATCH</datalist></div>\
         <label for=url>URL</label><input id=url name=url value=\"{}\" \
         placeholder=\"/cgi-bin/printenv.sh/a/b?x=1\" required>\
         <label for=headers>Header fields<br><span class=note>Name: value, one a line</span>\
         </label><textarea id=headers name=headers rows=3>\n{}</textarea>\
         <label for=body>Body</label><textarea id=body name=body rows=3>\n{}</textarea>\
         <span></span><label><input type=checkbox name=show_secrets value=1{}> show Cookie \
         and Authorization values</label>\
         <span></span><div><button>Explain</button></div></form>",
        attribute(path),
        attribute(&form.method),
        attribute(&form.url),
        escape(&form.headers),
        escape(&form.body),
        if form.show_secrets { " checked" } else { "" },
    );
    let cgi = config.cgi.iter().map(|m| (m.mount.as_str(), "CGI"));
    let fastcgi = config.fastcgi.iter().map(|m| {
        let kind = match fastcgi_kind(m) {
            "wsgi" => "WSGI",
            _ => "FastCGI",
        };
        (m.mount.as_str(), kind)
    });
    let mounts: Vec<String> = cgi
        .chain(fastcgi)
        .map(|(mount, kind)| {
            let mount = if mount.is_empty() { "/" } else { mount };
            format!("<code>{}</code> {kind}", escape(mount))
        })
        .collect();
    let _ = write!(out, "<p class=note>Mounts: {}</p>", mounts.join(" · "));
}

fn explanation_part(out: &mut String, e: &Explanation) {
    let r = &e.route;
    let mount = if r.mount.is_empty() { "/" } else { &r.mount };
    let _ = write!(
        out,
        "<h2 id=request>{} {}</h2>\
         <section id=route><h3>1. Route: a {} mount at {}</h3><table><col class=name><col>\
         <tr><th>SCRIPT_NAME</th><td>{}</td></tr><tr><th>PATH_INFO</th><td>{}</td></tr>\
         <tr><th>SCRIPT_FILENAME</th><td>{}</td></tr></table></section>",
        escape(&e.method),
        escape(&e.url),
        escape(r.kind),
        escape(mount),
        escape(&r.script_name),
        escape(&r.path_info),
        escape(&r.script_filename),
    );

    out.push_str(
        "<section id=meta><h3>2. Meta-variables</h3><table><col class=name><col>\
         <col style=width:16em><tr><th>name</th><th>value</th><th>defined by</th></tr>",
    );
    for group in GROUPS {
        let mut vars = e
            .meta_variables
            .iter()
            .filter(|v| v.group == group)
            .peekable();
        if vars.peek().is_none() {
            continue;
        }
        let _ = write!(
            out,
            "<tr><th class=group colspan=3>{}</th></tr>",
            escape(group)
        );
        for v in vars {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&v.name),
                escape(&v.value),
                escape(v.source)
            );
        }
    }
    out.push_str("</table></section><section id=cgi><h3>3. As CGI</h3>");
    match &e.cgi {
        Some(cgi) => cgi_part(out, cgi),
        None => out
            .push_str("<p class=note>This route is served by persistent workers; see 4 and 5.</p>"),
    }
    out.push_str("</section>");

    out.push_str(
        "<div class=side><section id=fastcgi><h3>4. As FastCGI records</h3>\
         <p class=note>The same meta-variables, as FCGI_PARAMS.</p><table><col>\
         <col class=small><col class=small><tr><th>record</th><th>request id</th>\
         <th>bytes</th></tr>",
    );
    for (rec, run) in runs(&e.fastcgi_records) {
        let times = if run > 1 {
            format!(" × {run}")
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr><td>{}{times}</td><td>{}</td><td>{}</td></tr>",
            rec.kind, rec.request_id, rec.content_length
        );
        for (name, value) in &rec.params {
            let _ = write!(
                out,
                "<tr class=pair><td colspan=3>{} = {}</td></tr>",
                escape(name),
                escape(value)
            );
        }
    }
    out.push_str(
        "</table></section><section id=wsgi><h3>5. As a WSGI environ (PEP 3333)</h3>\
         <p class=note>What the adapter gives the callable.</p><table><col class=name><col>\
         <tr><th>key</th><th>value</th></tr>",
    );
    for (key, value) in &e.wsgi_environ {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(key),
            escape(value)
        );
    }
    let t = &e.timing_ms;
    let _ = write!(
        out,
        "</table></section></div>\
         <section id=time><h3>6. Time (status {})</h3><table><col class=name><col>\
         <tr><th>first byte</th><td>{:.3} ms</td></tr><tr><th>last byte</th><td>{:.3} ms</td></tr>\
         <tr><th>body</th><td>{} bytes{}</td></tr></table>\
         <p class=note>From the first byte of the request written.</p></section>",
        e.status,
        t.first_byte,
        t.last_byte,
        e.response_body_bytes,
        if e.response_complete {
            ""
        } else {
            ", cut short"
        },
    );
}

fn cgi_part(out: &mut String, cgi: &CgiRun) {
    let _ = write!(
        out,
        "<p>Command: <code>{}</code></p>",
        escape(&cgi.command.join(" "))
    );
    if let Some(run) = &cgi.script {
        let _ = write!(
            out,
            "<p>{} spawned by Portico's CGI backend as pid {}: {}</p>",
            escape(&run.script_name),
            run.pid.map_or("?".to_owned(), |p| p.to_string()),
            escape(&run.facts().join(", "))
        );
    }
    let _ = write!(
        out,
        "<p>{}</p><pre id=response-head>{}</pre><p>Response type: <b id=response-type>{}</b></p>",
        cgi.head_note(),
        escape(&cgi.response_head),
        escape(&cgi.response_type)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{FastcgiRecord, MetaVariable, Route, Timing};

    fn explanation(value: &str) -> Explanation {
        Explanation {
            method: "GET".into(),
            url: format!("/cgi-bin/a?{value}"),
            route: Route {
                kind: "cgi",
                mount: "/cgi-bin".into(),
                script_name: "/cgi-bin/a".into(),
                path_info: value.into(),
                script_filename: "/srv/cgi-bin/a".into(),
            },
            meta_variables: vec![MetaVariable {
                name: "QUERY_STRING".into(),
                value: value.into(),
                group: "RFC 3875",
                source: "RFC 3875 §4.1.7",
            }],
            cgi: Some(CgiRun {
                command: vec!["/srv/cgi-bin/a".into()],
                script: None,
                response_head: format!("HTTP/1.1 200 OK\nX-Echo: {value}"),
                response_type: "document response (RFC 3875 §6.2.1)".into(),
                exit_status: Some(0),
            }),
            fastcgi_records: vec![FastcgiRecord {
                kind: "FCGI_PARAMS",
                request_id: 1,
                content_length: 20,
                params: vec![("QUERY_STRING".into(), value.into())],
            }],
            wsgi_environ: vec![("QUERY_STRING".into(), value.into())],
            timing_ms: Timing {
                first_byte: 1.0,
                last_byte: 2.0,
            },
            status: 200,
            response_body_bytes: 6,
            response_complete: true,
        }
    }

    #[test]
    fn every_value_shown_is_escaped() {
        let hostile = "<script>alert(1)</script>\"&";
        let form = Form::read(Some(
            "url=%22%3E%3Cscript%3E&headers=%3C%2Ftextarea%3E%3Cscript%3E&body=%3Cb%3E",
        ));
        let page = render(
            "/portico-explain",
            &Config::default(),
            &form,
            Some(&Ok(explanation(hostile))),
        );
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("</textarea><script"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        for part in [
            "1. Route",
            "2. Meta-variables",
            "3. As CGI",
            "4. As FastCGI",
            "5. As a WSGI",
            "6. Time (status 200)",
        ] {
            assert!(page.contains(part), "no {part}");
        }
    }

    #[test]
    fn a_request_no_program_runs_for_names_portico_s_own_answer() {
        let form = Form::read(Some("url=/nowhere"));
        let error = ExplainError::Route(crate::error::Error::NotFound);
        let page = render("/e", &Config::default(), &form, Some(&Err(error)));
        assert!(page.contains("with <b>404 Not Found</b>"), "{page}");
    }
}
