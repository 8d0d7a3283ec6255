//! The scripts that run as plain CGI although a mount lists them as persistent: a script
//! that failed under its runner in a way it would not as a process of its own (it did not
//! compile there, or its worker died under it) must not fail there again on every
//! request. Each is remembered by its path with its file's modification time and size,
//! so that an edited script is tried in its runner again.
//!
//! Only the marking is here; deciding that a failure calls for it, and the log line, are
//! the gateway's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// What a file was when it was marked; `None` when it could not be read.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The scripts a runner could not host, shared by every request of a gateway.
#[derive(Default)]
pub struct Marks {
    scripts: Mutex<HashMap<PathBuf, Stamp>>,
}

impl Marks {
    /// Whether `path` runs as plain CGI: it was marked and its file has not changed since.
    /// A script never marked costs a lookup, no system call.
    pub fn is_marked(&self, path: &Path) -> bool {
        let Some(marked) = self.lock().get(path).copied() else {
            return false;
        };
        if stamp(path) == marked {
            return true;
        }
        self.lock().remove(path);
        false
    }

    /// Marks `path` as it is now; false if it was marked already.
    pub fn mark(&self, path: &Path) -> bool {
        let now = stamp(path);
        self.lock().insert(path.to_owned(), now).is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Stamp>> {
        self.scripts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_holds_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.pl");
        std::fs::write(&script, "print 1;\n").unwrap();
        let marks = Marks::default();
        assert!(!marks.is_marked(&script));
        assert!(marks.mark(&script));
        assert!(!marks.mark(&script), "marked twice");
        assert!(marks.is_marked(&script));
        // A different size is a change even within the clock's resolution.
        std::fs::write(&script, "print 12;\n").unwrap();
        assert!(!marks.is_marked(&script));
        assert!(!marks.is_marked(&script), "the mark is gone");
        assert!(marks.mark(&script));
        std::fs::remove_file(&script).unwrap();
        assert!(!marks.is_marked(&script), "a file gone is a change");
    }
}
