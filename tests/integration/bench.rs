//! `portico bench`: end to end for a short time, against the in-process Portico of a config
//! and against a running server by URL. Asserts on structure and sanity, never on speed.

use std::process::Command;

use serde_json::Value;

use crate::harness::{Fixture, PORTICO};

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcgi_app.py");

fn config(fx: &Fixture) -> std::path::PathBuf {
    fx.script(
        "hello",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello\\n'\n",
    );
    fx.config(&format!(
        r#"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"

[[fastcgi]]
mount = "/app"
launch = {{ command = ["{APP}"], workers = 1 }}
"#
    ))
}

fn bench(args: &[&str]) -> (std::process::Output, String) {
    let output = Command::new(PORTICO)
        .arg("bench")
        .args([
            "--duration-seconds",
            "0.5",
            "--warmup-seconds",
            "0.2",
            "-c",
            "4",
        ])
        .args(args)
        .output()
        .expect("portico bench runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn bench_measures_cgi_and_fastcgi_targets_and_writes_json() {
    let fx = Fixture::new();
    let config = config(&fx);
    let json = fx.path("report.json");
    let html = fx.path("report.html");
    let (output, text) = bench(&[
        "--config",
        config.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--rounds",
        "2",
        "/cgi-bin/hello",
        "/app/hello",
    ]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("req/s") && text.contains("/app/hello"),
        "{text}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["connections"], 4);
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{report}");
    for t in targets {
        assert!(t["requests"].as_u64().unwrap() > 0, "{t}");
        assert_eq!(t["error_share"], 0.0, "{t}");
        assert_eq!(t["statuses"]["200"], t["requests"], "{t}");
        let l = &t["latency_ms"];
        let (p50, p99, max) = (
            l["p50"].as_f64().unwrap(),
            l["p99"].as_f64().unwrap(),
            l["max"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{l}");
        assert!(
            t["gateway_cpu_ms_per_request"].as_f64().unwrap() > 0.0,
            "{t}"
        );
        assert!(t["peak_rss_kib"].as_u64().unwrap() > 0, "{t}");
    }
    let (cgi, fastcgi) = (&targets[0], &targets[1]);
    assert_eq!(cgi["ratio_to_first"], 1.0);
    // Every CGI request spawned a script; FastCGI requests spawn nothing.
    let spawn_share =
        cgi["spawns_per_second"].as_f64().unwrap() / cgi["requests_per_second"].as_f64().unwrap();
    assert!((0.9..1.3).contains(&spawn_share), "{cgi}");
    assert_eq!(fastcgi["spawns_per_second"], 0.0, "{fastcgi}");
    assert!(
        cgi["scripts_cpu_ms_per_request"].as_f64().unwrap() > 0.0,
        "{cgi}"
    );
    assert_eq!(
        (cgi["mode"].as_str(), fastcgi["mode"].as_str()),
        (Some("cgi"), Some("fastcgi"))
    );
    // Both rounds are reported, A B A B.
    assert_eq!(report["rounds"], 2);
    assert_eq!(
        cgi["rounds_requests_per_second"].as_array().unwrap().len(),
        2
    );
    // The same app in both modes: one FastCGI over CGI ratio.
    let ratios = report["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 1, "{report}");
    assert_eq!(ratios[0]["app"], "hello");
    let expected = fastcgi["requests_per_second"].as_f64().unwrap()
        / cgi["requests_per_second"].as_f64().unwrap();
    assert!((ratios[0]["ratio"].as_f64().unwrap() - expected).abs() < 1e-6 * expected);
    // The page has its three charts and a row per target.
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 3, "{page}");
    assert!(page.contains("<td>/cgi-bin/hello</td>") && page.contains("<td>/app/hello</td>"));
}

#[test]
fn shorthands_name_the_same_app_in_both_modes() {
    let fx = Fixture::new();
    let config = config(&fx);
    let args = ["--config", config.to_str().unwrap(), "--requests", "20"];
    let (output, text) = bench(&[&args[..], &["cgi:hello", "fcgi:hello"]].concat());
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("/cgi-bin/hello ") && text.contains("/app/hello "),
        "{text}"
    );
    assert!(text.contains("FastCGI over CGI, app hello"), "{text}");
}

#[test]
fn a_target_that_does_not_answer_is_refused_before_any_load() {
    let fx = Fixture::new();
    let config = config(&fx);
    let (output, text) = bench(&["--config", config.to_str().unwrap(), "/cgi-bin/missing"]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("/cgi-bin/missing does not answer: status 404"),
        "{text}"
    );
    assert!(!text.contains("req/s"), "{text}");
}

#[test]
fn bench_loads_a_running_server_by_url() {
    let fx = Fixture::new();
    fx.script(
        "hello",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello\\n'\n",
    );
    let portico = fx.serve(&[]);
    let url = format!("http://{}", portico.addr());
    let output = Command::new(PORTICO)
        .args([
            "bench",
            "--url",
            &url,
            "--requests",
            "50",
            "--warmup-seconds",
            "0",
        ])
        .args(["-c", "4", "/cgi-bin/hello"])
        .output()
        .expect("portico bench runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("/cgi-bin/hello"))
        .unwrap_or_else(|| panic!("{text}"));
    // Portico's own CPU is unknown from outside: shown as "-".
    assert!(row.split_whitespace().any(|f| f == "-"), "{row}");
    // The sanity request, then exactly the 50 asked for.
    let served = || {
        portico
            .log()
            .matches("path=/cgi-bin/hello status=200")
            .count()
    };
    assert!(
        crate::harness::wait_until(std::time::Duration::from_secs(5), || served() == 51),
        "served {}",
        served()
    );
}

#[test]
fn a_bad_config_is_refused_like_serve_refuses_it() {
    let fx = Fixture::new();
    let config = fx.config("[[cgi]]\nmount = \"/c\"\ndir = \"nowhere\"\n");
    let (output, text) = bench(&["--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("cgi[0].dir"), "{text}");
}

#[test]
fn a_fixed_rate_sends_that_many_requests_per_second() {
    let fx = Fixture::new();
    let config = config(&fx);
    let json = fx.path("rate.json");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    let (output, text) = bench(
        &[
            &args[..],
            &["--rate", "200", "/app/hello", "/cgi-bin/hello"],
        ]
        .concat(),
    );
    assert!(output.status.success(), "{text}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["rate"], 200.0);
    for t in report["targets"].as_array().unwrap() {
        // 0.5 s at 200/s: about 100 requests, neither as fast as possible nor far fewer.
        let requests = t["requests"].as_u64().unwrap();
        assert!((70..=130).contains(&requests), "{t}");
    }
    // Every target answers as many requests at a fixed rate: no FastCGI over CGI ratio.
    assert_eq!(report["ratios"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn the_bench_config_measures_each_script_spawned_kept_warm_and_rewritten() {
    // conf/bench.toml as docs/benchmarks.md runs it: the hello app in each language as CGI,
    // kept warm by persistent runners, and as launched FastCGI workers. Its paths are
    // relative to it, so it goes next to a copy of cgi-bin/ with the C examples built.
    let fx = Fixture::new();
    fx.c_examples();
    fx.dir("conf");
    let config = fx.path("conf/bench.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/conf/bench.toml"),
        &config,
    )
    .unwrap();
    let json = fx.path("all.json");
    let output = Command::new(PORTICO)
        .args([
            "bench",
            "--config",
            config.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .args(["--requests", "30", "-c", "2", "--warmup-seconds", "0"])
        .output()
        .expect("portico bench runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let targets = report["targets"].as_array().unwrap();
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    // Each script, then its kept-warm twin, then its rewritten one.
    assert_eq!(
        names,
        [
            "/cgi-bin/hello-c",
            "/fcgi/hello.c",
            "/cgi-bin/hello.sh",
            "/cgi-bin/hello.pl",
            "/warm/hello.pl",
            "/fcgi/hello.pl",
            "/cgi-bin/hello.py",
            "/warm/hello.py",
            "/fcgi/hello.py"
        ]
    );
    // hello.pl's three rows: each answered every request, in its mode, against the first.
    let hello_pl = &targets[3..6];
    let modes: Vec<&str> = hello_pl
        .iter()
        .map(|t| t["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["cgi", "persistent-cgi", "fastcgi"]);
    for t in hello_pl {
        assert_eq!(t["requests"], 30, "{t}");
        assert_eq!(t["error_share"], 0.0, "{t}");
        assert_eq!(t["statuses"]["200"], 30, "{t}");
        let to_cgi = t["ratio_to_cgi"].as_f64().unwrap();
        let expected = t["requests_per_second"].as_f64().unwrap()
            / hello_pl[0]["requests_per_second"].as_f64().unwrap();
        assert!((to_cgi - expected).abs() < 1e-6 * expected, "{t}");
    }
    assert_eq!(hello_pl[0]["ratio_to_cgi"], 1.0);
    // Spawned, a process per request; kept warm or rewritten, none.
    assert!(hello_pl[0]["spawns_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(hello_pl[1]["spawns_per_second"], 0.0);
    assert_eq!(hello_pl[2]["spawns_per_second"], 0.0);
    for (mode, row) in ["CGI", "persistent CGI", "FastCGI"]
        .iter()
        .zip(&names[3..6])
    {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{row} ")))
            .unwrap_or_else(|| panic!("no {row} in\n{stdout}"));
        // The mode's column follows the target's 24.
        assert!(line[25..].starts_with(&format!("{mode} ")), "{line}");
    }
    // Each twin over its script's spawned row, rewritten in `ratios`, kept warm beside it.
    let pairs = |key: &str, twin: &str| -> Vec<[String; 2]> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| [&r[twin], &r["cgi"]].map(|t| t.as_str().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(
        pairs("ratios", "fastcgi"),
        [
            ["/fcgi/hello.c", "/cgi-bin/hello-c"],
            ["/fcgi/hello.pl", "/cgi-bin/hello.pl"],
            ["/fcgi/hello.py", "/cgi-bin/hello.py"]
        ]
    );
    assert_eq!(
        pairs("persistent_ratios", "persistent"),
        [
            ["/warm/hello.pl", "/cgi-bin/hello.pl"],
            ["/warm/hello.py", "/cgi-bin/hello.py"]
        ]
    );
    assert!(
        stdout.contains("persistent CGI over CGI, app hello: /warm/hello.pl / /cgi-bin/hello.pl"),
        "{stdout}"
    );
}
