//! Every page Portico produces, as headless Chromium renders it: the status page, the
//! `portico bench --html` report and the teaching page each load without a console
//! message; the status page's numbers in the DOM are those of its `?json`; and a 2 KiB
//! URL or a mount of 500 workers leaves each page as wide as its window, every row there
//! and a screenshot of the window's size. Skipped, saying so, without Chromium.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::chromium::{Chromium, Layout, Rendered};
use crate::harness::{Fixture, PORTICO, wait_until};
use crate::http::Request;
use crate::launch::{APP, status};

/// A path of 2 KiB with nothing to break a line at.
fn long_path(prefix: &str) -> String {
    format!("{prefix}/{}", "x".repeat(2048 - prefix.len() - 1))
}

fn assert_clean(page: &Rendered, what: &str) {
    assert!(
        page.console.is_empty(),
        "{what} wrote to the console: {:?}",
        page.console
    );
}

fn assert_fits(layout: Layout, what: &str) {
    assert!(
        layout.scroll_width <= layout.client_width,
        "{what} is wider than its window: {layout:?}"
    );
}

/// The cells of each row of the table that `start` opens, as text.
fn rows(dom: &str, start: &str) -> Vec<Vec<String>> {
    let from = dom
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in\n{dom}"));
    let table = &dom[from..from + dom[from..].find("</table>").unwrap()];
    table
        .split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').unwrap() + 1..];
                    text[..text.find("</td>").unwrap_or(text.len())].to_owned()
                })
                .collect()
        })
        .filter(|cells: &Vec<String>| !cells.is_empty())
        .collect()
}

#[test]
fn the_status_page_in_chromium_shows_the_numbers_of_its_json() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let portico = fx.serve_config(
        &format!(
            "[status]\nenabled = true\n\
             [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
             [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{APP}'], workers = 1 }}\n"
        ),
        &[],
    );
    for (path, times) in [("/cgi-bin/hello", 5), ("/app/hello", 3), ("/nowhere", 1)] {
        for _ in 0..times {
            portico.get(path);
        }
    }
    let json = status(&portico);
    let page = chromium.render(&fx, &format!("http://{}/portico-status", portico.addr()));
    assert_eq!(
        status(&portico)["requests"],
        json["requests"],
        "the view counted"
    );
    assert_clean(&page, "the status page");

    let total = page
        .dom
        .split("Since the start: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse::<u64>().ok());
    assert_eq!(total, Some(9), "{}", page.dom);
    assert_eq!(json["requests"], 9, "{json}");
    let table = rows(&page.dom, "<table id=\"mounts\">");
    let mounts = json["mounts"].as_array().unwrap();
    assert_eq!(table.len(), mounts.len(), "{table:?}\n{json}");
    for (row, mount) in table.iter().zip(mounts) {
        let name = match (mount["kind"].as_str(), mount["mount"].as_str()) {
            (Some("none"), _) => "(no mount)",
            (_, Some("")) => "/",
            (_, Some(name)) => name,
            _ => panic!("{mount}"),
        };
        assert_eq!(row[0], name, "{row:?}");
        assert_eq!(row[2], mount["requests"].to_string(), "{row:?} {mount}");
        let minute = format!("{} requests", mount["last_minute"]["requests"]);
        assert!(row[4].starts_with(&minute), "{row:?} {mount}");
    }
}

#[test]
fn the_status_page_keeps_its_layout_with_a_long_url_and_500_workers() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let fx = Fixture::new();
    fx.c_examples();
    let started = fx.slow_script("60");
    let portico = fx.serve_config(
        "[status]\nenabled = true\n\
         [[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
         [[fastcgi]]\nmount = '/many'\n\
         launch = { command = ['cgi-bin/hello-fcgi-c'], workers = 500 }\n",
        &[],
    );
    let workers = |page: &Value| page["fastcgi"][0]["workers"].as_array().unwrap().clone();
    let all_idle = || {
        let now = workers(&status(&portico));
        now.len() == 500
            && now
                .iter()
                .all(|w| w["state"] == "idle" && w["pid"].is_u64())
    };
    assert!(
        wait_until(Duration::from_secs(30), all_idle),
        "{}",
        status(&portico)
    );
    // The script runs until the connection is dropped, at the end of the test.
    let path = long_path("/cgi-bin/slow");
    let mut client = portico.connect();
    client.send(&Request::get(&path));
    crate::harness::wait_for_file(&started, Duration::from_secs(10));
    let on_board = || status(&portico)["cgi_scripts"].as_array().unwrap().len() == 1;
    assert!(wait_until(Duration::from_secs(5), on_board));

    let url = format!("http://{}/portico-status", portico.addr());
    let page = chromium.render(&fx, &url);
    assert_clean(&page, "the status page");
    let row = format!("<td class=\"url\">GET {path}</td>");
    assert!(page.dom.contains(&row), "no long URL row in\n{}", page.dom);
    let pids = workers(&status(&portico));
    let idle = page.dom.matches("<td>idle</td>").count();
    assert_eq!(idle, 500, "{}", page.dom);
    for worker in &pids {
        let cell = format!("<td>{}</td>", worker["pid"]);
        assert!(page.dom.contains(&cell), "no worker {cell}");
    }
    assert_fits(
        chromium.layout(&fx, &portico, "/portico-status"),
        "the status page",
    );
    chromium.screenshot(&fx, &url, &fx.path("status.png"), 800);
    drop(client);
}

#[test]
fn the_bench_report_renders_in_chromium_without_errors() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let fx = Fixture::new();
    fx.script("hello", crate::scripts::HELLO);
    let config = fx.config(&format!(
        "[[cgi]]\nmount = '/cgi-bin'\ndir = 'cgi-bin'\n\
         [[fastcgi]]\nmount = '/app'\nlaunch = {{ command = ['{APP}'], workers = 1 }}\n"
    ));
    let report = fx.path("report.html");
    let output = Command::new(PORTICO)
        .args(["bench", "--config"])
        .arg(&config)
        .arg("--html")
        .arg(&report)
        .args(["--requests", "50", "-c", "2", "--warmup-seconds", "0"])
        .args(["/cgi-bin/hello", "/app/hello"])
        .output()
        .expect("portico bench runs");
    assert!(output.status.success(), "{output:?}");

    let url = format!("file://{}", report.display());
    let page = chromium.render(&fx, &url);
    assert_clean(&page, "the bench report");
    assert_eq!(page.dom.matches("<svg").count(), 3, "{}", page.dom);
    let figures = rows(&page.dom, "<h2>Figures</h2>");
    let targets: Vec<&str> = figures.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(targets, ["/cgi-bin/hello", "/app/hello"], "{figures:?}");
    chromium.screenshot(&fx, &url, &fx.path("bench.png"), 800);

    // Served, so that a page of the same origin can measure it.
    fx.script(
        "report",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/html\\r\\n\\r\\n'\ncat '{}'\n",
            report.display()
        ),
    );
    let portico = fx.serve(&[]);
    assert_fits(
        chromium.layout(&fx, &portico, "/cgi-bin/report"),
        "the bench report",
    );
}

#[test]
fn the_explain_page_renders_its_explanation_in_chromium() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let fx = Fixture::new();
    let portico = fx.serve_config(&crate::wsgi::config(1, "[explain]\nenabled = true\n"), &[]);
    let page_url = |query: &str| format!("http://{}/portico-explain?{query}", portico.addr());

    let form = chromium.render(&fx, &page_url(""));
    assert_clean(&form, "the explain form");
    for field in [
        "name=\"method\"",
        "name=\"url\"",
        "name=\"headers\"",
        "name=\"body\"",
    ] {
        assert!(form.dom.contains(field), "no {field} in\n{}", form.dom);
    }

    let hostile = "X-Note%3A+%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let query = format!(
        "method=POST&url=%2Fcgi-bin%2Fprintenv.sh%2Fa%2Fb%3Fx%3D1&headers={hostile}&body=a%3D1"
    );
    let page = chromium.render(&fx, &page_url(&query));
    assert_clean(&page, "the explanation");
    for part in [
        "1. Route: a cgi mount at /cgi-bin",
        "<tr><th>SCRIPT_NAME</th><td>/cgi-bin/printenv.sh</td></tr>",
        "<tr><td>QUERY_STRING</td><td>x=1</td><td>RFC 3875 §4.1.7</td></tr>",
        "<tr><td>REQUEST_METHOD</td><td>POST</td><td>RFC 3875 §4.1.12</td></tr>",
        "3. As CGI",
        "Content-Type: text/plain",
        "<b id=\"response-type\">document response (RFC 3875 §6.2.1)</b>",
        "<div class=\"side\"><section id=\"fastcgi\">",
        "</section><section id=\"wsgi\">",
        "<tr><td>FCGI_STDIN</td><td>1</td><td>3</td></tr>",
        "<tr><td>wsgi.url_scheme</td><td>http</td></tr>",
        "6. Time (status 200)",
        "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>",
    ] {
        assert!(page.dom.contains(part), "no {part} in\n{}", page.dom);
    }
    assert!(!page.dom.contains("<script"), "a value became markup");

    let wsgi = chromium.render(&fx, &page_url("url=%2Fwsgi%2F"));
    assert_clean(&wsgi, "a WSGI explanation");
    for part in [
        "a wsgi mount at /wsgi",
        "persistent workers",
        "wsgi.multithread",
    ] {
        assert!(wsgi.dom.contains(part), "no {part} in\n{}", wsgi.dom);
    }

    let long = format!("url={}", long_path("/cgi-bin/printenv.sh"));
    assert_fits(
        chromium.layout(&fx, &portico, &format!("/portico-explain?{long}")),
        "an explanation of a 2 KiB URL",
    );
    chromium.screenshot(&fx, &page_url(&long), &fx.path("explain.png"), 800);
}
