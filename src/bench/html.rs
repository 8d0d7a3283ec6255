//! `portico bench --html FILE`: one self-contained page with three SVG charts a reader
//! takes in at a glance: requests/s per target, latency by percentile, and where each
//! request's CPU goes (Portico versus the script, runner or worker it ran). A colour per
//! mode: spawned, kept warm, rewritten.

use std::fmt::Write;

use super::report::{Report, TargetReport};
use super::twins::Mode;
use html_escape::encode_text as escape;

const WIDTH: f64 = 760.0;
const LABEL: f64 = 190.0;
const ROW: f64 = 28.0;

pub fn page(report: &Report) -> String {
    let mut out = String::from(
        "<!doctype html><meta charset=utf-8><title>portico bench</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em;max-width:820px;color:#222}\
         h2{margin-top:2em}svg text{font:12px system-ui,sans-serif}.note{color:#555}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}\
         td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}</style>",
    );
    let _ = write!(
        out,
        "<h1>portico bench</h1><p class=note>{} connections, {} load threads, {} s per target, \
         {} round(s), nproc {}, Portico {}; server: {}. \
         <span style=color:#d9822b>■</span> CGI (a process per request) \
         <span style=color:#2f855a>■</span> persistent CGI (the same script, kept warm) \
         <span style=color:#2b6cb0>■</span> FastCGI (rewritten, persistent workers)</p>",
        report.connections,
        report.threads,
        report.duration_seconds,
        report.rounds,
        report.nproc,
        report.portico_version,
        escape(&report.server)
    );
    out.push_str("<h2>Requests per second</h2><p class=note>Logarithmic scale: each grid line is ten times the one before.</p>");
    out.push_str(&throughput(&report.targets));
    for cgi in report.targets.iter().map(|t| &t.target) {
        let warm = report.persistent_ratios.iter().filter(|r| &r.cgi == cgi);
        let warm = warm.map(|r| (&r.app, "persistent CGI", &r.persistent, r.ratio));
        let fast = report.ratios.iter().filter(|r| &r.cgi == cgi);
        let fast = fast.map(|r| (&r.app, "FastCGI", &r.fastcgi, r.ratio));
        for (app, mode, target, ratio) in warm.chain(fast) {
            let _ = write!(
                out,
                "<p>App <b>{}</b>: {mode} {} answers <b>{ratio:.1}×</b> the requests of CGI {}.</p>",
                escape(app),
                escape(target),
                escape(cgi)
            );
        }
    }
    out.push_str("<h2>Latency by percentile</h2><p class=note>Milliseconds, logarithmic scale; lower is better.</p>");
    out.push_str(&latency(&report.targets));
    if report
        .targets
        .iter()
        .any(|t| t.gateway_cpu_ms_per_request.is_some())
    {
        out.push_str(
            "<h2>Where each request's CPU goes</h2><p class=note>Share of the CPU one request \
             costs: Portico itself, and the script, runner or worker it ran (for CGI that is mostly \
             starting a process). Milliseconds per request in the labels.</p>",
        );
        out.push_str(&cpu_split(&report.targets));
    }
    out.push_str("<h2>Figures</h2><table><tr><th>target</th><th>mode</th><th>req/s</th><th>× CGI</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th><th>spawns/s</th></tr>");
    for t in &report.targets {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
            escape(&t.target),
            t.mode.map_or("-", Mode::label),
            t.requests_per_second,
            t.ratio_to_cgi.map_or("-".to_owned(), |r| format!("{r:.2}")),
            t.latency_ms.p50,
            t.latency_ms.p99,
            t.latency_ms.max,
            t.errors.total(),
            t.spawns_per_second
                .map_or("-".to_owned(), |s| format!("{s:.0}"))
        );
    }
    out.push_str("</table>");
    out
}

fn color(t: &TargetReport) -> &'static str {
    shade(t, 0)
}

/// Line colours: shades of the mode's colour, so lines of one mode stay apart; the first is
/// the legend's.
fn shade(t: &TargetReport, n: usize) -> &'static str {
    const CGI: [&str; 4] = ["#d9822b", "#9c4221", "#ecc94b", "#c53030"];
    const PERSISTENT: [&str; 3] = ["#2f855a", "#22543d", "#68d391"];
    const FASTCGI: [&str; 3] = ["#2b6cb0", "#2c7a7b", "#553c9a"];
    let shades: &[&'static str] = match t.mode {
        Some(Mode::Cgi) => &CGI,
        Some(Mode::PersistentCgi) => &PERSISTENT,
        Some(Mode::Fastcgi) => &FASTCGI,
        None => &["#718096"],
    };
    shades[n % shades.len()]
}

/// Horizontal bars on a log10 axis, one per target, with the value at the end.
fn throughput(targets: &[TargetReport]) -> String {
    let max = targets
        .iter()
        .map(|t| t.requests_per_second)
        .fold(1.0, f64::max);
    let decades = max.log10().ceil().max(1.0);
    let plot = WIDTH - LABEL - 70.0;
    let x = |v: f64| LABEL + plot * (v.max(1.0).log10() / decades);
    let height = ROW * targets.len() as f64 + 30.0;
    let mut svg = format!("<svg width={WIDTH} height={height} role=img>");
    for d in 0..=decades as u32 {
        let gx = x(10f64.powi(d as i32));
        let _ = write!(
            svg,
            "<line x1={gx:.1} x2={gx:.1} y1=0 y2={:.1} stroke=#ddd /><text x={gx:.1} y={:.1} text-anchor=middle fill=#777>{}</text>",
            height - 18.0,
            height - 4.0,
            10u64.pow(d)
        );
    }
    for (i, t) in targets.iter().enumerate() {
        let y = i as f64 * ROW;
        let end = x(t.requests_per_second);
        row_label(&mut svg, y, &t.target);
        let _ = write!(
            svg,
            "<rect x={LABEL} y={:.1} width={:.1} height={:.1} fill={} /><text x={:.1} y={:.1}>{:.0}</text>",
            y + 5.0,
            (end - LABEL).max(1.0),
            ROW - 10.0,
            color(t),
            end + 6.0,
            y + 18.0,
            t.requests_per_second
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One polyline per target across p50, p90, p99, p99.9 and max, on a log10 axis.
fn latency(targets: &[TargetReport]) -> String {
    let points = ["p50", "p90", "p99", "p99.9", "max"];
    let values = |t: &TargetReport| {
        let l = &t.latency_ms;
        [l.p50, l.p90, l.p99, l.p99_9, l.max]
    };
    let (mut low, mut high) = (f64::MAX, 0.0f64);
    for t in targets {
        for v in values(t) {
            low = low.min(v.max(0.001));
            high = high.max(v);
        }
    }
    let (lo, hi) = (
        low.log10().floor(),
        high.max(0.001)
            .log10()
            .ceil()
            .max(low.log10().floor() + 1.0),
    );
    let (left, top, plot_w, plot_h) = (60.0, 10.0, WIDTH - 260.0, 260.0);
    let x = |i: usize| left + plot_w * i as f64 / (points.len() - 1) as f64;
    let y = |v: f64| top + plot_h * (1.0 - (v.max(0.001).log10() - lo) / (hi - lo));
    let mut svg = format!("<svg width={WIDTH} height={:.0} role=img>", plot_h + 40.0);
    for d in lo as i32..=hi as i32 {
        let gy = y(10f64.powi(d));
        let _ = write!(
            svg,
            "<line x1={left} x2={:.1} y1={gy:.1} y2={gy:.1} stroke=#ddd /><text x={:.1} y={:.1} text-anchor=end fill=#777>{}</text>",
            left + plot_w,
            left - 6.0,
            gy + 4.0,
            10f64.powi(d)
        );
    }
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x={:.1} y={:.1} text-anchor=middle fill=#777>{p}</text>",
            x(i),
            top + plot_h + 20.0
        );
    }
    for (n, t) in targets.iter().enumerate() {
        let line: Vec<String> = values(t)
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let dash = if n % 2 == 1 {
            " stroke-dasharray=6,3"
        } else {
            ""
        };
        let nth_of_mode = targets[..n].iter().filter(|o| o.mode == t.mode).count();
        let stroke = shade(t, nth_of_mode);
        let key_y = top + 10.0 + 16.0 * n as f64;
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=none stroke={stroke} stroke-width=2{dash} />\
             <line x1={:.1} x2={:.1} y1={key_y:.1} y2={key_y:.1} stroke={stroke} stroke-width=2{dash} />\
             <text x={:.1} y={:.1}>{}</text>",
            line.join(" "),
            left + plot_w + 10.0,
            left + plot_w + 36.0,
            left + plot_w + 42.0,
            key_y + 4.0,
            escape(&t.target)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A 100% bar per target: Portico's CPU, then the script's, runner's or worker's.
fn cpu_split(targets: &[TargetReport]) -> String {
    let plot = WIDTH - LABEL - 20.0;
    let height = ROW * targets.len() as f64;
    let mut svg = format!("<svg width={WIDTH} height={height} role=img>");
    for (i, t) in targets.iter().enumerate() {
        let (Some(gateway), Some(app)) =
            (t.gateway_cpu_ms_per_request, t.scripts_cpu_ms_per_request)
        else {
            continue;
        };
        let total = (gateway + app).max(1e-9);
        let y = i as f64 * ROW;
        let split = LABEL + plot * gateway / total;
        row_label(&mut svg, y, &t.target);
        let _ = write!(
            svg,
            "<rect x={LABEL} y={:.1} width={:.1} height={:.1} fill=#a0aec0 />\
             <rect x={split:.1} y={:.1} width={:.1} height={:.1} fill={} />\
             <text x={:.1} y={:.1}>Portico {gateway:.3} ms · {} {app:.3} ms</text>",
            y + 5.0,
            (split - LABEL).max(0.5),
            ROW - 10.0,
            y + 5.0,
            (LABEL + plot - split).max(0.5),
            ROW - 10.0,
            color(t),
            LABEL + 6.0,
            y + 18.0,
            match t.mode {
                Some(Mode::PersistentCgi) => "runner",
                Some(Mode::Fastcgi) => "worker",
                _ => "script",
            }
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A bar's target name, right-aligned before the bar.
fn row_label(svg: &mut String, y: f64, target: &str) {
    let _ = write!(
        svg,
        "<text x={:.1} y={:.1} text-anchor=end>{}</text>",
        LABEL - 8.0,
        y + 18.0,
        escape(target)
    );
}
