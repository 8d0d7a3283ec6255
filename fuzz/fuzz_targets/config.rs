//! Any TOML through `config::load_text`, as read from `conf/portico.toml` in a fixed tree
//! (`portico_fuzz::config_tree`, where the repository's own configs validate): never a
//! panic; an error names the file, and the line of what is wrong unless it is about the
//! file as a whole (nothing mounted), a line that exists, and a key it names is never empty.

#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portico_fuzz::{Tree, config_path, config_tree};

static TREE: LazyLock<(Tree, PathBuf)> = LazyLock::new(|| {
    let tree = config_tree();
    let path = config_path(&tree);
    (tree, path)
});

/// Whether the config names a user file outside the tree, which the loader would read
/// whole: /dev/zero never ends, a FIFO blocks. The operator's choice, not a parsing
/// question; the same TOML parser finds the same `user_file` values the loader reads.
fn reads_outside_the_tree(text: &str) -> bool {
    fn user_files<'a>(value: &'a toml::Value, found: &mut Vec<&'a str>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    match value {
                        toml::Value::String(path) if key == "user_file" => found.push(path),
                        other => user_files(other, found),
                    }
                }
            }
            toml::Value::Array(values) => values.iter().for_each(|v| user_files(v, found)),
            _ => {}
        }
    }
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return false;
    };
    let table = toml::Value::Table(table);
    let mut found = Vec::new();
    user_files(&table, &mut found);
    let (tree, path) = &*TREE;
    let base = path.parent().expect("the config is in a directory");
    found.iter().any(|file| {
        base.join(file)
            .canonicalize()
            .is_ok_and(|file| !file.starts_with(tree.root()))
    })
}

/// Errors about the file as a whole, which no one line is to blame for.
fn is_whole_file(error: &portico::config::ConfigError) -> bool {
    error.key.as_deref() == Some("cgi") && error.message.contains("nothing to serve")
}

fuzz_target!(|data: &[u8]| {
    // The loader reads the file as UTF-8 before it parses it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if reads_outside_the_tree(text) {
        return;
    }
    let path = &TREE.1;
    let Err(error) = portico::config::load_text(path, text) else {
        return;
    };
    assert_eq!(error.file.as_ref(), Some(path), "{error}");
    let shown = error.to_string();
    assert!(shown.starts_with(&*path.to_string_lossy()), "{shown}");
    assert!(!error.message.is_empty(), "{shown}");
    assert!(error.key.as_ref().is_none_or(|k| !k.is_empty()), "{shown}");
    match error.line {
        Some(line) => {
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(&line),
                "line {line} of {lines}: {shown}"
            );
        }
        None => assert!(is_whole_file(&error), "no line: {shown}"),
    }
});
