//! The explanation as terminal text, part by part; `page::html` shows the same parts in
//! a browser.

use std::fmt::Write;

use super::Explanation;
use super::cgi::CgiRun;
use super::records::{FastcgiRecord, runs};
use super::variables::GROUPS;

impl Explanation {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let r = &self.route;
        let mount = if r.mount.is_empty() { "/" } else { &r.mount };
        let _ = writeln!(out, "{} {}\n", self.method, self.url);
        let _ = writeln!(out, "1. Route: a {} mount at {mount}", r.kind);
        let _ = writeln!(out, "   SCRIPT_NAME     = {}", r.script_name);
        let _ = writeln!(out, "   PATH_INFO       = {}", r.path_info);
        let _ = writeln!(out, "   SCRIPT_FILENAME = {}", r.script_filename);

        out += "\n2. Meta-variables\n";
        for group in GROUPS {
            let mut vars = self.meta_variables.iter().filter(|v| v.group == group);
            let Some(first) = vars.next() else { continue };
            let _ = writeln!(out, "   {group}:");
            for v in std::iter::once(first).chain(vars) {
                let _ = writeln!(out, "     {:<18} = {:<40} {}", v.name, v.value, v.source);
            }
        }

        out += "\n3. As CGI\n";
        match &self.cgi {
            Some(cgi) => cgi_part(&mut out, cgi),
            None => out += "   (this route is served by persistent workers; see 4 and 5)\n",
        }

        out += "\n4. As FastCGI records (the same meta-variables, as FCGI_PARAMS)\n";
        records_part(&mut out, &self.fastcgi_records);

        out += "\n5. As a WSGI environ (PEP 3333)\n";
        for (key, value) in &self.wsgi_environ {
            let _ = writeln!(out, "   {key:<18} {value}");
        }

        let t = &self.timing_ms;
        let _ = writeln!(out, "\n6. Time (status {})", self.status);
        let _ = writeln!(out, "   first byte  {:>9.3} ms", t.first_byte);
        let _ = write!(out, "   last byte   {:>9.3} ms", t.last_byte);
        let _ = write!(out, "  ({} body bytes", self.response_body_bytes);
        out += if self.response_complete {
            ")\n"
        } else {
            ", cut short)\n"
        };
        out
    }
}

fn cgi_part(out: &mut String, cgi: &CgiRun) {
    let _ = writeln!(out, "   command: {}", cgi.command.join(" "));
    if let Some(run) = &cgi.script {
        let pid = run.pid.map_or("?".to_owned(), |p| p.to_string());
        let _ = writeln!(
            out,
            "   {} spawned by Portico's CGI backend as pid {pid}: {}",
            run.script_name,
            run.facts().join(", ")
        );
    }
    let _ = writeln!(out, "   {}", cgi.head_note());
    for line in cgi.response_head.lines() {
        let _ = writeln!(out, "     | {line}");
    }
    let _ = writeln!(out, "   response type: {}", cgi.response_type);
}

fn records_part(out: &mut String, records: &[FastcgiRecord]) {
    for (rec, run) in runs(records) {
        let repeat = if run > 1 {
            format!("  (x {run} records)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "   {:<19} request id {}  {} bytes{repeat}",
            rec.kind, rec.request_id, rec.content_length
        );
        for (name, value) in &rec.params {
            let _ = writeln!(out, "       {name} = {value}");
        }
    }
}
