//! What Portico's fuzz targets share: an allocator that measures what a call allocates
//! (for "never allocates beyond the declared bounds"), the check every target makes of
//! bytes headed for a client or a C string, and the fixed file trees that the router and
//! config targets resolve paths against.

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// The system allocator, measuring the allocations made inside `measure`. A target that
/// measures installs it as its `#[global_allocator]`.
pub struct Measuring;

static MEASURING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if MEASURING.load(Relaxed) {
        LARGEST.fetch_max(size, Relaxed);
        TOTAL.fetch_add(size, Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; `note` only counts.
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What a call allocated, in bytes: the largest single allocation (or reallocation, by
/// its new size) and the sum of them all.
#[derive(Debug, Clone, Copy)]
pub struct Allocated {
    pub largest: usize,
    pub total: usize,
}

/// Runs `f`, measuring what it allocates. Zero unless the target's global allocator is
/// `Measuring`. The fuzz targets run on one thread, so nothing else is counted.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Allocated) {
    LARGEST.store(0, Relaxed);
    TOTAL.store(0, Relaxed);
    MEASURING.store(true, Relaxed);
    let result = f();
    MEASURING.store(false, Relaxed);
    let allocated = Allocated {
        largest: LARGEST.load(Relaxed),
        total: TOTAL.load(Relaxed),
    };
    (result, allocated)
}

/// CR and LF end a header line in some client (a bare CR in old ones); NUL cuts a C
/// string short. None of them may reach a response head.
pub fn has_line_break_or_nul(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// A file tree made once per fuzzing process and removed when it ends.
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// The canonical root of the tree: what config paths are relative to.
    pub fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().expect("the temp dir exists")
    }

    fn file(&self, rel: &str, text: &str, mode: u32) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("a relative path has a parent"))
            .expect("create the directory");
        std::fs::write(&path, text).expect("write the file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("set the mode");
    }

    fn link(&self, target: &str, rel: &str) {
        symlink(target, self.root().join(rel)).expect("make the symlink");
    }
}

/// "password" in the htpasswd formats the fixed trees' user file holds, each made by the
/// tool named, at the lowest cost it takes (the fuzz targets check many passwords).
pub const PASSWORD_HASHES: &[(&str, &str)] = &[
    // htpasswd -nbB -C 4 u password
    (
        "bcrypt",
        "$2y$04$fQp0n5Ves6Paq7WtQAXb4.6cwMoNxXbLlWSEOeu/KBhMH5N4YC.XC",
    ),
    // htpasswd -nbm u password
    ("apr1", "$apr1$A7kJl7T0$vTImymR8D3mDb5nNbJD3f."),
    // htpasswd -nbs u password
    ("sha1", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
    // htpasswd -nb -2 -r 1000 u password
    (
        "sha256",
        "$5$rounds=1000$IiSJrVDjPMd6.Ln2$WF5TSkP99DEFbN9uhsjV0ScQObSCFjSmBcU7QArChAA",
    ),
    // htpasswd -nb -5 -r 1000 u password
    (
        "sha512",
        "$6$rounds=1000$V2R/YXH.inpNv6Hz$lkAv2QnYzjD9k66j3C6FaX3jFQuxE1kn2FhonZRJowmZBrd9c9F0y1dcXVIaIIkk91MasMGFVrDJxDJtris5l1",
    ),
    // htpasswd -nbd u password (DES crypt: only the first 8 bytes of a password count)
    ("crypt", "6CutqHkCJlarM"),
];

/// The tree the router resolves paths in: a CGI directory with scripts, a subdirectory,
/// symlinks that stay inside and ones that leave, and files outside it; a document root
/// for the FastCGI mounts. `config.toml` at its root mounts them.
pub fn router_tree() -> Tree {
    let tree = Tree {
        dir: tempfile::tempdir().expect("make a temp dir"),
    };
    let script = "#!/bin/sh\n";
    tree.file("bin/hello.sh", script, 0o755);
    tree.file("bin/nph-raw", script, 0o755);
    tree.file("bin/app.pl", script, 0o644);
    tree.file("bin/plain.txt", "text\n", 0o644);
    tree.file("bin/my script.sh", script, 0o755);
    tree.file("bin/sub/deep.sh", script, 0o755);
    tree.file("bin/.hidden.sh", script, 0o755);
    tree.file("bin/a\\b.sh", script, 0o755);
    tree.file("outside.sh", script, 0o755);
    tree.file("secret/x.sh", script, 0o755);
    tree.file("www/index.php", "<?php\n", 0o644);
    // Links that stay inside the mount...
    tree.link("hello.sh", "bin/alias.sh");
    tree.link("../hello.sh", "bin/sub/up-alias.sh");
    tree.link("sub", "bin/subdir");
    tree.link(".", "bin/self");
    // ... and links that leave it, or go nowhere.
    tree.link("../outside.sh", "bin/escape.sh");
    tree.link("..", "bin/up");
    tree.link("../../secret", "bin/sub/secret");
    tree.link("/", "bin/root");
    tree.link("missing", "bin/dangling");
    tree.link("loop", "bin/loop");
    tree.file(
        "config.toml",
        r#"
[[cgi]]
mount = "/cgi-bin"
dir = "bin"
interpreters = { ".pl" = "perl" }

[[cgi]]
mount = "/"
dir = "bin/sub"

[[cgi]]
mount = "/one"
script = "bin/hello.sh"

[[fastcgi]]
mount = "/php"
upstream = "tcp:127.0.0.1:9"
root = "www"
split_path_info = ".php"

[[fastcgi]]
mount = "/files"
upstream = "unix:/nonexistent.sock"
root = "www"

[[fastcgi]]
mount = "/app"
upstream = "tcp:127.0.0.1:9"
script = "www/index.php"
"#,
        0o644,
    );
    tree
}

/// The tree config files are read in: `conf/` for the file itself, and next to it what
/// `conf/*.toml` name (`../cgi-bin` with the FastCGI examples, `../apps`, `../htdocs`,
/// `../logs`, a user file), so that the repository's configs validate whole.
pub fn config_tree() -> Tree {
    let tree = Tree {
        dir: tempfile::tempdir().expect("make a temp dir"),
    };
    let script = "#!/bin/sh\n";
    for program in [
        "hello-fcgi.py",
        "hello-fcgi.pl",
        "hello-fcgi-c",
        "hello.sh",
        "hello.py",
    ] {
        tree.file(&format!("cgi-bin/{program}"), script, 0o755);
    }
    tree.file("apps/hello_wsgi.py", "app = None\n", 0o644);
    tree.file("htdocs/index.html", "hi\n", 0o644);
    tree.file("logs/.keep", "", 0o644);
    tree.file("venv/bin/python", script, 0o755);
    let users: String = PASSWORD_HASHES
        .iter()
        .map(|(kind, hash)| format!("{kind}:{hash}\n"))
        .collect();
    tree.file("conf/htpasswd", &users, 0o644);
    tree
}

/// Where a config target's text is said to come from: relative paths are relative to it.
pub fn config_path(tree: &Tree) -> PathBuf {
    tree.root().join("conf").join("portico.toml")
}

/// Whether `path` has a `..` or `.` component, or a NUL byte.
pub fn is_unclean(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::path::Component;
    path.as_os_str().as_bytes().contains(&0)
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
}
