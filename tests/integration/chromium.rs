//! Headless Chromium for the tests that check Portico's pages in a real browser: Debian's
//! `chromium`, each run with a fresh profile under the test's fixture, its console read
//! from its own log on stderr (`--enable-logging=stderr`). Screenshots go to the fixture
//! too, and go with it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Fixture, Portico};

/// A page Chromium has not rendered in this long is a hung browser.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The width of the frame a page is laid out in by `layout`, and of screenshots.
pub const WIDTH: u32 = 1000;

pub struct Chromium {
    binary: PathBuf,
}

/// A page as Chromium rendered it.
pub struct Rendered {
    /// The DOM after the load event, serialized.
    pub dom: String,
    /// What the page wrote to its console, uncaught errors included.
    pub console: Vec<String>,
}

/// How a page is laid out in a frame `WIDTH` pixels wide.
#[derive(Debug)]
pub struct Layout {
    /// The page's own width: more than `client_width` when something widens it.
    pub scroll_width: u32,
    pub client_width: u32,
}

/// The test's own page that measures another of the same origin in a frame: a page cannot
/// measure itself without a script, and Portico's pages carry none. Served as a CGI
/// script, it takes the URL to frame, percent-encoded, as its query string.
const LAYOUT_PROBE: &str = r#"#!/bin/sh
printf 'Content-Type: text/html\r\n\r\n'
cat <<'HTML'
<!doctype html><meta charset=utf-8><title>layout probe</title>
<iframe id=page style="width:@WIDTH@px;height:800px;border:0"></iframe>
<script>
var frame = document.getElementById('page');
frame.onload = function () {
  var root = frame.contentDocument.documentElement;
  document.body.dataset.scrollWidth = root.scrollWidth;
  document.body.dataset.clientWidth = root.clientWidth;
};
frame.src = decodeURIComponent(location.search.slice(1));
</script>
HTML
"#;

impl Chromium {
    /// Chromium, or `None` with a note where it is not installed (scripts/test installs it).
    pub fn find() -> Option<Chromium> {
        let path = std::env::var_os("PATH")?;
        let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable(candidate))
        });
        if found.is_none() {
            eprintln!("skipped: no chromium on PATH (scripts/test installs Debian's chromium)");
        }
        found.map(|binary| Chromium { binary })
    }

    /// Loads `url` and gives its DOM once loaded, and its console.
    pub fn render(&self, fx: &Fixture, url: &str) -> Rendered {
        let (stdout, stderr) = self.run(fx, &["--dump-dom", url]);
        assert!(
            stdout.contains("</html>"),
            "chromium rendered nothing of {url}:\n{stderr}"
        );
        Rendered {
            dom: stdout,
            console: console(&stderr),
        }
    }

    /// Renders `url` in a window `WIDTH` by `height` pixels into `png`, and checks that the
    /// file is a PNG of that size.
    pub fn screenshot(&self, fx: &Fixture, url: &str, png: &Path, height: u32) {
        let shot = format!("--screenshot={}", png.display());
        let size = format!("--window-size={WIDTH},{height}");
        let (_, stderr) = self.run(fx, &[&shot, &size, "--hide-scrollbars", url]);
        let bytes =
            std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot of {url}: {e}\n{stderr}"));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        // The IHDR chunk comes first: width and height, big-endian, at bytes 16 and 20.
        let dimension = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!((dimension(16), dimension(20)), (WIDTH, height), "{url}");
    }

    /// How the page at `path` of `portico` lays out in a frame `WIDTH` pixels wide,
    /// measured by `LAYOUT_PROBE`, which it writes into the fixture's `cgi-bin/`.
    pub fn layout(&self, fx: &Fixture, portico: &Portico, path: &str) -> Layout {
        let probe = LAYOUT_PROBE.replace("@WIDTH@", &WIDTH.to_string());
        fx.script("layout-probe", &probe);
        let target: String = percent_encode(path);
        let url = format!("http://{}/cgi-bin/layout-probe?{target}", portico.addr());
        let page = self.render(fx, &url);
        assert!(page.console.is_empty(), "{:?}", page.console);
        let attribute = |name: &str| -> u32 {
            let start = format!("{name}=\"");
            let at = page.dom.find(&start).map(|i| i + start.len());
            let value = at.and_then(|i| page.dom[i..].split('"').next()?.parse().ok());
            value.unwrap_or_else(|| panic!("no {name} measured for {path}:\n{}", page.dom))
        };
        Layout {
            scroll_width: attribute("data-scroll-width"),
            client_width: attribute("data-client-width"),
        }
    }

    /// Chromium headless on `args`, with a profile of its own; its stdout and stderr.
    fn run(&self, fx: &Fixture, args: &[&str]) -> (String, String) {
        let profile = tempfile::tempdir_in(fx.root()).expect("a profile directory");
        let mut child = Command::new(&self.binary)
            .args(["--headless", "--no-sandbox", "--disable-gpu"])
            .args(["--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // Both pipes are drained while it runs: a DOM past the pipe's 64 KiB would
        // otherwise block Chromium's write, and the wait below, until the timeout.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            let mut pipe = pipe.expect("a piped output");
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("chromium is waited for") {
                break status;
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                break child.wait().expect("chromium is reaped");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = stderr.join().expect("chromium's stderr");
        assert!(status.success(), "chromium failed: {stderr}");
        (stdout.join().expect("chromium's stdout"), stderr)
    }
}

/// The console's messages in Chromium's log: `...:INFO:CONSOLE:LINE] "message", source:`.
/// Portico's pages have no script, so any message at all is a fault of the page's.
fn console(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(":CONSOLE") || line.contains("Uncaught"))
        .map(str::to_owned)
        .collect()
}

/// Everything but unreserved characters (RFC 3986 §2.3), percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The checker sees what a broken page writes to its console: an uncaught error.
#[test]
fn the_console_check_of_the_status_explain_and_bench_pages_sees_an_uncaught_error() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let fx = Fixture::new();
    let page = fx.file(
        "broken.html",
        "<!doctype html><title>broken</title><p>x</p><script>undefined_function();</script>",
        0o644,
    );
    let rendered = chromium.render(&fx, &format!("file://{}", page.display()));
    assert!(
        rendered
            .console
            .iter()
            .any(|m| m.contains("Uncaught ReferenceError")),
        "{:?}",
        rendered.console
    );
}
