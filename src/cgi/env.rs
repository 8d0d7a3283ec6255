//! A script's environment as `execve` takes it (RFC 3875 §4: the meta-variables are
//! passed in the environment): the base every script starts from (PATH, `env.pass`,
//! `env.set`), converted once at start, and one request's environment, its meta-variables
//! (built by `crate::meta`) first, in one buffer of NUL-terminated strings.

use std::ffi::{CStr, CString, OsString, c_char};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// The environment every script starts from (PATH, `env.pass`, `env.set`), converted once.
pub struct BaseEnv {
    /// Each variable's name, and its `NAME=value` entry with its NUL.
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl BaseEnv {
    pub fn new(vars: &[(OsString, OsString)]) -> io::Result<BaseEnv> {
        let entries = vars
            .iter()
            .map(|(name, value)| {
                let mut entry = CStrings::default();
                entry.push(&[name.as_bytes(), b"=", value.as_bytes()])?;
                Ok((name.as_bytes().to_vec(), entry.bytes))
            })
            .collect::<io::Result<_>>()?;
        Ok(BaseEnv { entries })
    }

    /// One script's environment: the meta-variables, then the base variables they do not
    /// name (meta-variables win a clash).
    pub fn with_meta(&self, meta: &[(String, OsString)]) -> io::Result<CStrings> {
        let bytes = meta
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum::<usize>()
            + self.entries.iter().map(|(_, e)| e.len()).sum::<usize>();
        let mut env = CStrings::with_capacity(meta.len() + self.entries.len(), bytes);
        for (name, value) in meta {
            env.push(&[name.as_bytes(), b"=", value.as_bytes()])?;
        }
        for (name, entry) in &self.entries {
            if !meta.iter().any(|(n, _)| n.as_bytes() == name.as_slice()) {
                env.starts.push(env.bytes.len());
                env.bytes.extend_from_slice(entry);
            }
        }
        Ok(env)
    }
}

/// NUL-terminated strings for `execve` (an argv or an environment) in one buffer: a
/// script's environment is a few dozen variables, built for every request.
#[derive(Default)]
pub struct CStrings {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl CStrings {
    pub(super) fn with_capacity(strings: usize, bytes: usize) -> CStrings {
        CStrings {
            bytes: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(strings),
        }
    }

    /// Appends one string made of `parts`; none may contain NUL.
    pub(super) fn push(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if parts.iter().any(|part| part.contains(&0)) {
            return Err(nul_error());
        }
        self.starts.push(self.bytes.len());
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self.bytes.push(0);
        Ok(())
    }

    pub(super) fn first(&self) -> Option<&CStr> {
        CStr::from_bytes_until_nul(&self.bytes).ok()
    }

    /// The NULL-terminated pointer array `execve` takes; valid while `self` is.
    pub(super) fn pointers(&self) -> Vec<*const c_char> {
        let base = self.bytes.as_ptr();
        self.starts
            .iter()
            // SAFETY: every start is an offset inside `bytes`.
            .map(|&start| unsafe { base.add(start) }.cast::<c_char>())
            .chain([std::ptr::null()])
            .collect()
    }
}

pub(super) fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| nul_error())
}

fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "NUL byte in a command or environment",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(env: &CStrings) -> Vec<String> {
        env.bytes
            .split(|&b| b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect()
    }

    #[test]
    fn meta_variables_come_first_and_win_a_clash_with_the_base() {
        let base = BaseEnv::new(&[
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("SERVER_NAME".into(), "from-base".into()),
        ])
        .unwrap();
        let meta = [
            ("SERVER_NAME".to_owned(), OsString::from("example.org")),
            ("QUERY_STRING".to_owned(), OsString::from("a=1")),
        ];
        let env = base.with_meta(&meta).unwrap();
        assert_eq!(
            entries(&env),
            [
                "SERVER_NAME=example.org",
                "QUERY_STRING=a=1",
                "PATH=/usr/bin:/bin"
            ]
        );
        assert_eq!(env.pointers().len(), 4, "three entries and the NULL");
    }

    #[test]
    fn a_nul_byte_is_refused() {
        let base = BaseEnv::new(&[]).unwrap();
        let meta = [("BAD".to_owned(), OsString::from("a\0b"))];
        assert_eq!(
            base.with_meta(&meta).err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
    }
}
