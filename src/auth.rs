//! HTTP Basic authentication of a mount (RFC 7617) against an htpasswd file, the way
//! Apache's mod_auth_basic with mod_authn_file guards a CGI directory: a request without
//! the right credentials gets 401 and never reaches the program; one with them runs with
//! REMOTE_USER and AUTH_TYPE set (RFC 3875 §4.1.1, §4.1.11).
//!
//! The file is read again when it changes, so `htpasswd` takes effect at once, as with
//! Apache. Hashes: bcrypt (`$2y$`), APR1-MD5 (`$apr1$`), SHA-512/256-crypt (`$6$`, `$5$`)
//! and `{SHA}`, as `htpasswd -B`, `-m`, `-2`, `-5` and `-s` write them.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};
use sha1::Digest;

use crate::error::Error;

/// One mount's guard: its realm and its users.
#[derive(Debug)]
pub struct BasicAuth {
    realm: String,
    user_file: PathBuf,
    /// The file as last read, with its modification time.
    users: Mutex<(Option<SystemTime>, Arc<Users>)>,
}

/// User name -> password hash.
pub type Users = HashMap<String, String>;

/// A bcrypt hash at `htpasswd -B`'s default cost, of a random password that was thrown
/// away; whatever its check says, an unknown user is refused.
const UNKNOWN_USER_HASH: &str = "$2y$05$0C7VI/E1QRikl7qhDrR5BOKVxnmL.BGfGN1npdUpYlm1ybthqKCxC";

impl BasicAuth {
    /// Reads `user_file` once now, so that a missing or unreadable one stops the start.
    pub fn new(realm: &str, user_file: &Path) -> io::Result<BasicAuth> {
        let modified = std::fs::metadata(user_file)?.modified().ok();
        let users = parse(&std::fs::read_to_string(user_file)?);
        Ok(BasicAuth {
            realm: realm.to_owned(),
            user_file: user_file.to_owned(),
            users: Mutex::new((modified, Arc::new(users))),
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The user whose credentials the request carries, if they are right; else
    /// `Error::Unauthorized`. Hashes are checked on the blocking pool: bcrypt takes
    /// milliseconds by design.
    pub async fn check(&self, headers: &HeaderMap) -> Result<String, Error> {
        let unauthorized = || Error::Unauthorized(self.realm.clone());
        let (user, password) = credentials(headers).ok_or_else(unauthorized)?;
        let hash = self.users().get(&user).cloned();
        let known = hash.is_some();
        // An unknown user's password is checked too, against a hash of the same kind as
        // most files hold, so that the time to answer does not tell which users exist.
        let hash = hash.unwrap_or_else(|| UNKNOWN_USER_HASH.to_owned());
        let right = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .unwrap_or(false);
        if !(known && right) {
            let why = if known {
                "wrong password"
            } else {
                "unknown user"
            };
            tracing::info!(realm = %self.realm, %user, "{why}");
            return Err(unauthorized());
        }
        Ok(user)
    }

    /// The users, read again if the file changed since; the last good read if it cannot be.
    fn users(&self) -> Arc<Users> {
        let mut cached = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let modified = std::fs::metadata(&self.user_file)
            .and_then(|meta| meta.modified())
            .ok();
        if modified.is_some() && modified != cached.0 {
            match std::fs::read_to_string(&self.user_file) {
                Ok(text) => *cached = (modified, Arc::new(parse(&text))),
                Err(error) => {
                    tracing::warn!(file = %self.user_file.display(), %error, "cannot read the user file")
                }
            }
        }
        cached.1.clone()
    }
}

/// `user:hash` lines; blank lines and `#` comments skipped, as Apache does.
pub fn parse(text: &str) -> Users {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(user, hash)| (user.to_owned(), hash.to_owned()))
        .collect()
}

/// RFC 7617 §2: `Authorization: Basic base64(user ":" password)`; the scheme is
/// case-insensitive and the user may not contain a colon.
pub fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(token.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `password` is the one `hash` (an htpasswd line's, any format above) was made of.
pub fn verify(password: &str, hash: &str) -> bool {
    // Every format is printable ASCII; crypt3_rs overflows on a salt byte below 0x20.
    if !hash.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    match hash.strip_prefix("{SHA}") {
        Some(digest) => {
            let ours = STANDARD.encode(sha1::Sha1::digest(password.as_bytes()));
            constant_time_eq(ours.as_bytes(), digest.as_bytes())
        }
        None => crypt3_rs::unix::verify(password, hash),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "password" in each format `htpasswd` writes (checked with `htpasswd -vb`).
    const HASHES: &[(&str, &str)] = &[
        (
            "bcrypt",
            "$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe",
        ),
        ("apr1", "$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00"),
        ("sha1", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
    ];

    #[test]
    fn every_htpasswd_format_verifies_its_password_only() {
        for (format, hash) in HASHES {
            assert!(verify("password", hash), "{format}");
            assert!(!verify("Password", hash), "{format}");
            assert!(!verify("", hash), "{format}");
        }
        assert!(!verify("password", "password"), "plain text is not a hash");
    }

    /// A hand-edited line may hold any bytes; crypt3_rs subtracts 0x20 from each salt
    /// character, which overflows below it (a panic with overflow checks on). Found by
    /// fuzz/htpasswd.
    #[test]
    fn a_hash_with_control_characters_is_refused_not_computed() {
        let sha256 = "WF5TSkP99DEFbN9uhsjV0ScQObSCFjSmBcU7QArChAA";
        for hash in [
            format!("$5$ab\0defghijklmnop${sha256}"),
            format!("$5$rounds=1000$ab\0d${sha256}"),
            "$apr1$ab\0d$vTImymR8D3mDb5nNbJD3f.".to_owned(),
            "{SHA}W6ph5Mm5Pz8G\ngiULbPgzG37mj9g=".to_owned(),
        ] {
            assert!(!verify("password", &hash), "{hash:?}");
        }
    }

    #[test]
    fn credentials_follow_rfc_7617() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let ok = |user: &str, password: &str| Some((user.to_owned(), password.to_owned()));
        // "Aladdin:open sesame" (RFC 7617 §2), a password with a colon, an empty one.
        assert_eq!(
            credentials(&headers("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")),
            ok("Aladdin", "open sesame")
        );
        assert_eq!(credentials(&headers("basic YTpiOmM=")), ok("a", "b:c"));
        assert_eq!(credentials(&headers("BASIC YTo=")), ok("a", ""));
        for bad in ["Bearer YTpi", "Basic", "Basic !!!", "Basic YWI="] {
            assert_eq!(credentials(&headers(bad)), None, "{bad}");
        }
        assert_eq!(credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn the_user_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "# users\n\nann:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
        let auth = BasicAuth::new("r", &file).unwrap();
        assert!(auth.users().contains_key("ann"));
        assert!(!auth.users().contains_key("bob"));
        std::fs::write(&file, "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(auth.users().contains_key("bob"));
        assert!(!auth.users().contains_key("ann"));
        assert!(BasicAuth::new("r", &dir.path().join("missing")).is_err());
    }
}
