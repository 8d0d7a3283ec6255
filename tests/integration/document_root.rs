//! DOCUMENT_ROOT and PATH_TRANSLATED (RFC 3875 §4.1.6): where the document root comes
//! from (the config file, `--document-root` resolved against the current directory and
//! winning over the file, or in quick mode the current directory itself), that
//! PATH_TRANSLATED maps PATH_INFO into it only when there is path info, and that a config
//! without `document_root` sets neither. The other meta-variables are `meta_variables.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::{Fixture, Portico};
use crate::http::Request;
use crate::scripts::{ENV, env_for, var};

/// `portico serve --cgi-dir <cgi-bin> FLAGS...` started in `cwd`.
fn serve_quick_in(fx: &Fixture, cwd: &Path, flags: &[&str]) -> Portico {
    Portico::launch()
        .arg("--cgi-dir")
        .arg(fx.cgi_dir())
        .args(flags)
        .current_dir(cwd)
        .start()
}

/// DOCUMENT_ROOT (canonicalized) and PATH_TRANSLATED for a request with path info, and
/// PATH_TRANSLATED for one without.
fn document_root_seen(portico: &Portico) -> (PathBuf, Option<String>, Option<String>) {
    let env = env_for(portico, &Request::get("/cgi-bin/env/some/page.html"));
    let root = var(&env, "DOCUMENT_ROOT").expect("DOCUMENT_ROOT is set");
    let root = fs::canonicalize(root).unwrap();
    let translated = var(&env, "PATH_TRANSLATED").map(str::to_owned);
    let bare = env_for(portico, &Request::get("/cgi-bin/env"));
    (
        root,
        translated,
        var(&bare, "PATH_TRANSLATED").map(str::to_owned),
    )
}

#[test]
fn document_root_and_path_translated_follow_the_config() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let htdocs = fx.dir("htdocs");
    let portico = fx.serve_config(
        r#"
document_root = "htdocs"

[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
"#,
        &[],
    );
    let env = env_for(&portico, &Request::get("/cgi-bin/env/some/page.html"));
    let root = var(&env, "DOCUMENT_ROOT").expect("DOCUMENT_ROOT is set");
    assert_eq!(
        fs::canonicalize(root).unwrap(),
        fs::canonicalize(&htdocs).unwrap()
    );
    // RFC 3875 §4.1.6: PATH_TRANSLATED maps PATH_INFO into the document tree.
    assert_eq!(
        var(&env, "PATH_TRANSLATED"),
        Some(format!("{}/some/page.html", root.trim_end_matches('/')).as_str())
    );
}

#[test]
fn a_config_without_document_root_sets_neither_document_root_nor_path_translated() {
    // conf/portico.toml: document_root "Unset: neither variable is given to scripts."
    let fx = Fixture::new();
    fx.script("env", ENV);
    let portico = fx.serve_config("[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"cgi-bin\"\n", &[]);
    let env = env_for(&portico, &Request::get("/cgi-bin/env/some/page.html"));
    assert_eq!(var(&env, "DOCUMENT_ROOT"), None);
    assert_eq!(var(&env, "PATH_TRANSLATED"), None);
}

#[test]
fn quick_mode_document_root_is_the_current_directory() {
    // Like `python -m http.server --cgi`: what is served is the directory it started in.
    let fx = Fixture::new();
    fx.script("env", ENV);
    let cwd = fx.dir("site");
    let portico = serve_quick_in(&fx, &cwd, &[]);
    let (root, translated, bare) = document_root_seen(&portico);
    assert_eq!(root, fs::canonicalize(&cwd).unwrap());
    // RFC 3875 §4.1.6: SHOULD be set when there is path info, and not without it.
    assert_eq!(
        translated,
        Some(format!("{}/some/page.html", root.display()))
    );
    assert_eq!(bare, None);
}

#[test]
fn quick_mode_document_root_flag_is_resolved_against_the_current_directory() {
    let fx = Fixture::new();
    fx.script("env", ENV);
    let htdocs = fx.dir("htdocs");
    let portico = serve_quick_in(&fx, fx.root(), &["--document-root", "htdocs"]);
    let (root, translated, bare) = document_root_seen(&portico);
    assert_eq!(root, fs::canonicalize(&htdocs).unwrap());
    assert_eq!(
        translated,
        Some(format!("{}/some/page.html", root.display()))
    );
    assert_eq!(bare, None);
}

#[test]
fn document_root_flag_beats_the_config_file() {
    // One name per setting: `--document-root` wins over `document_root`, as every flag does.
    let fx = Fixture::new();
    fx.script("env", ENV);
    fx.dir("htdocs");
    let flagged = fx.dir("flagged");
    let flag = flagged.to_str().expect("temporary paths are UTF-8");
    let portico = fx.serve_config(
        "document_root = \"htdocs\"\n[[cgi]]\nmount = \"/cgi-bin\"\ndir = \"cgi-bin\"\n",
        &["--document-root", flag],
    );
    let (root, translated, _) = document_root_seen(&portico);
    assert_eq!(root, fs::canonicalize(&flagged).unwrap());
    assert_eq!(
        translated,
        Some(format!("{}/some/page.html", root.display()))
    );
}
