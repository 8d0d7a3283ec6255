//! The explanation as terminal text, part by part.

use std::fmt::Write;

use super::Explanation;
use super::cgi::CgiRun;
use super::records::FastcgiRecord;

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
        for group in ["RFC 3875", "extra", "configured", "HTTP_*"] {
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
        let mut facts = vec![format!(
            "exit status {}",
            run.exit.as_deref().unwrap_or("?")
        )];
        if let Some(cpu) = run.cpu_ms {
            facts.push(format!("{cpu:.2} ms CPU"));
        }
        if let Some(rss) = run.max_rss_kib {
            facts.push(format!("peak RSS {rss} KiB"));
        }
        if let Some(ended) = &run.ended {
            facts.push(format!("ended: {ended}"));
        }
        let pid = run.pid.map_or("?".to_owned(), |p| p.to_string());
        let _ = writeln!(
            out,
            "   {} spawned by Portico's CGI backend as pid {pid}: {}",
            run.script_name,
            facts.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "   {}",
        if cgi.response_type.starts_with("NPH") {
            "the script printed this head, which Portico passed on as it was:"
        } else {
            "Portico answered with this head, made from the one the script printed:"
        }
    );
    for line in cgi.response_head.lines() {
        let _ = writeln!(out, "     | {line}");
    }
    let _ = writeln!(out, "   response type: {}", cgi.response_type);
}

/// A body's STDIN records all but the last are full: a run of them is one line.
fn records_part(out: &mut String, records: &[FastcgiRecord]) {
    let mut i = 0;
    while i < records.len() {
        let rec = &records[i];
        let run = records[i..]
            .iter()
            .take_while(|r| r.kind == rec.kind && r.content_length == rec.content_length)
            .count();
        let repeat = if run > 2 && rec.params.is_empty() && rec.content_length > 0 {
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
        i += if repeat.is_empty() { 1 } else { run };
    }
}
