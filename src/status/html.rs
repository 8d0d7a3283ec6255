//! The page for people: the same `Status` the JSON carries, as tables. It refreshes itself
//! with a meta refresh, so it works without JavaScript; rows marked slow are highlighted
//! and long URLs wrap instead of widening the page. Its icon is empty, so that a browser
//! asks for no `/favicon.ico` on every refresh (a 404 in the log and in the page's totals).

use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute as attribute, encode_text as escape};

use super::collect::{Mount, MountTraffic, Rates, Status};
use super::scoreboard::{RequestRow, SLOW_SECONDS, ScriptRow};

/// Seconds between reloads of the page.
const REFRESH_SECONDS: u32 = 5;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em}\
    table{border-collapse:collapse;margin:.5em 0 1.5em}\
    td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right;white-space:nowrap}\
    th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
    .url{text-align:left;white-space:normal;word-break:break-all}\
    .bad{color:#b00}tr.slow td{background:#fde8e8}";

// Writing to a String cannot fail: the `fmt::Result`s below are ignored for that reason.
pub(super) fn render(status: &Status) -> String {
    let mut out = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>Portico status</title><link rel=icon href=\"data:,\"><style>{STYLE}</style>\
         </head><body>\
         <h1>Portico status</h1>"
    );
    let _ = write!(
        out,
        "<p>Portico {} · Up since {} ({})</p>\
         <p>Since the start: {} requests ({:.1}/s), {} ({}/s)</p>\
         <p>Last {:.0} s: {}</p>",
        escape(status.version),
        escape(&status.started),
        duration(status.uptime_seconds),
        status.requests,
        status.requests_per_second,
        bytes(status.bytes as f64),
        bytes(status.bytes_per_second),
        status.last_minute.seconds,
        rates(&status.last_minute),
    );
    mounts(&mut out, &status.mounts);
    let _ = write!(
        out,
        "<h2>CGI scripts running: {} of {}</h2>",
        status.cgi_running, status.cgi_limit
    );
    scripts(&mut out, &status.cgi_scripts);
    for mount in &status.fastcgi {
        fastcgi(&mut out, mount);
    }
    out.push_str("</body></html>");
    out
}

fn mounts(out: &mut String, mounts: &[MountTraffic]) {
    out.push_str(
        "<h2>Mounts</h2><table id=mounts><tr><th>mount</th><th>kind</th><th>requests</th>\
         <th>bytes</th><th>last minute</th><th>p50 (ms)</th><th>p90 (ms)</th><th>p99 (ms)</th></tr>",
    );
    for m in mounts {
        let name = match (m.kind, m.mount.as_str()) {
            ("none", _) => "(no mount)",
            (_, "") => "/",
            (_, name) => name,
        };
        let latency = |pick: fn(&super::collect::Latency) -> f64| {
            m.latency_ms
                .as_ref()
                .map_or("-".to_owned(), |l| format!("{:.1}", pick(l)))
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            kind_label(m.kind),
            m.requests,
            bytes(m.bytes as f64),
            rates(&m.last_minute),
            latency(|l| l.p50),
            latency(|l| l.p90),
            latency(|l| l.p99),
        );
    }
    out.push_str("</table>");
}

fn scripts(out: &mut String, rows: &[ScriptRow]) {
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "<table id=scripts><tr><th>URL</th><th>script</th><th>pid</th><th>age (s)</th>\
         <th>client</th><th>request id</th></tr>",
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr{}><td class=url>{} {}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            slow(r.slow),
            escape(&r.method),
            escape(&r.path),
            escape(&r.script),
            r.pid,
            r.age_seconds,
            escape(&r.client),
            escape(&r.request_id),
        );
    }
    let _ = write!(
        out,
        "</table><p>Highlighted: running for {SLOW_SECONDS:.0} s or more.</p>"
    );
}

fn fastcgi(out: &mut String, mount: &Mount) {
    let app = mount
        .app
        .as_deref()
        .map_or(String::new(), |app| format!(" ({})", escape(app)));
    let _ = write!(
        out,
        "<h2>{} {}{app}</h2><p>{}; requests waiting: {}</p>",
        kind_label(mount.kind),
        escape(&mount.mount),
        match &mount.stopped {
            Some(reason) => format!("<span class=bad>stopped: {}</span>", escape(reason)),
            None if mount.launched => "launched workers".to_owned(),
            None => "upstreams".to_owned(),
        },
        mount.waiting
    );
    in_flight(out, &mount.mount, &mount.in_flight);
    out.push_str(
        "<table><tr><th>endpoint</th><th>busy</th><th>capacity</th><th>served</th>\
         <th>failed</th><th>connect failures</th><th>health</th></tr>",
    );
    for e in &mount.endpoints {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.address),
            e.busy,
            e.capacity,
            e.served,
            e.failed,
            e.connect_failures,
            if e.healthy {
                "ok"
            } else {
                "<span class=bad>down</span>"
            }
        );
    }
    out.push_str("</table>");
    if !mount.launched {
        return;
    }
    out.push_str(
        "<table><tr><th>worker</th><th>pid</th><th>state</th><th>requests</th>\
         <th>age (s)</th><th>restarts</th><th>last exit</th></tr>",
    );
    for w in &mount.workers {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td></tr>",
            w.slot,
            w.pid.map_or("-".to_owned(), |p| p.to_string()),
            w.state,
            w.requests,
            w.age_seconds,
            w.restarts,
            escape(w.last_exit.as_deref().unwrap_or("-"))
        );
    }
    out.push_str("</table>");
}

fn in_flight(out: &mut String, mount: &str, rows: &[RequestRow]) {
    let _ = write!(
        out,
        "<table class=in-flight data-mount=\"{}\"><tr><th>URL</th><th>age (s)</th>\
         <th>client</th><th>request id</th><th>upstream</th><th>worker pid</th></tr>",
        attribute(mount)
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr{}><td class=url>{} {}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            slow(r.slow),
            escape(&r.method),
            escape(&r.path),
            r.age_seconds,
            escape(&r.client),
            escape(&r.request_id),
            escape(&r.upstream),
            r.pid.map_or("-".to_owned(), |p| p.to_string()),
        );
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=6>no request in flight</td></tr>");
    }
    out.push_str("</table>");
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "cgi" => "CGI",
        "wsgi" => "WSGI",
        "fastcgi" => "FastCGI",
        "persistent" => "Persistent CGI",
        "authorizer" => "FastCGI Authorizer",
        _ => "-",
    }
}

fn slow(is_slow: bool) -> &'static str {
    if is_slow { " class=slow" } else { "" }
}

fn rates(r: &Rates) -> String {
    format!(
        "{} requests ({:.1}/s), {} ({}/s)",
        r.requests,
        r.requests_per_second,
        bytes(r.bytes as f64),
        bytes(r.bytes_per_second)
    )
}

fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{value:.0} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        let cases = [(0.0, "0 B"), (1023.0, "1023 B"), (1536.0, "1.5 KiB")];
        for (n, text) in cases {
            assert_eq!(bytes(n), text);
        }
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(duration(59.9), "59 s");
        assert_eq!(duration(61.0), "1 min 1 s");
        assert_eq!(duration(7322.0), "2 h 2 min");
    }
}
