//! The htpasswd reader (`auth::parse`), the Authorization header it is checked against
//! (`auth::credentials`, RFC 7617 §2) and the hash check (`auth::verify`), on any bytes:
//! never a panic; every user read is a `user:hash` line of the file, not a comment, and
//! has no colon; a user from the header has no colon either; a password checks against
//! "password"'s hashes only when it is "password" (DES crypt and bcrypt, which look at the
//! first 8 and 72 bytes only, are checked for panics alone).
//!
//! The first byte picks the input's role: the file (checking "password" against every
//! hash it holds that is cheap to compute), or the header's value.

#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use portico::auth;
use portico_fuzz::PASSWORD_HASHES;

/// Work factors past which one check takes more than a few milliseconds: a file's hashes
/// are the operator's, so an expensive one is no finding, only a slow fuzzer.
const MAX_ROUNDS: u64 = 5000;
const MAX_BCRYPT_COST: u64 = 6;

/// Whether checking a password against `hash` is cheap enough to do for every input.
fn is_cheap(hash: &str) -> bool {
    let number = |s: &str| {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    };
    if let Some(rest) = hash.find("rounds=").map(|i| &hash[i + 7..]) {
        return number(rest).is_some_and(|n| n <= MAX_ROUNDS);
    }
    if let Some(rest) = hash.strip_prefix("$sha1$") {
        return number(rest).is_some_and(|n| n <= MAX_ROUNDS);
    }
    if let Some(rest) = hash.strip_prefix("$2") {
        let cost = rest.split('$').nth(1).unwrap_or_default();
        return cost.len() == 2 && number(cost).is_some_and(|n| n <= MAX_BCRYPT_COST);
    }
    // BSDi extended DES: `_`, then the rounds as four base-64 digits, least significant first.
    if let Some(rest) = hash.strip_prefix('_') {
        const DIGITS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let rounds = rest
            .bytes()
            .take(4)
            .enumerate()
            .try_fold(0u64, |sum, (i, c)| {
                let digit = DIGITS.iter().position(|&d| d == c)? as u64;
                Some(sum + (digit << (6 * i)))
            });
        return rounds.is_some_and(|n| n <= MAX_ROUNDS);
    }
    true
}

fn check_file(text: &str) {
    let users = auth::parse(text);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (user, hash) in &users {
        assert!(!user.contains(':'), "user {user:?}");
        let line = format!("{user}:{hash}");
        assert!(
            lines.contains(&line.as_str()),
            "{line:?} is no line of the file"
        );
        assert!(!line.starts_with('#'), "a comment read as {line:?}");
        if is_cheap(hash) {
            auth::verify("password", hash);
        }
    }
}

fn check_header(value: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let Some((user, password)) = auth::credentials(&headers) else {
        return;
    };
    assert!(!user.contains(':'), "user {user:?}");
    for (kind, hash) in PASSWORD_HASHES {
        let right = auth::verify(&password, hash);
        if !matches!(*kind, "crypt" | "bcrypt") {
            assert_eq!(right, password == "password", "{kind}: {password:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&role, rest)) = data.split_first() else {
        return;
    };
    if role % 2 == 0 {
        // An htpasswd file is read as UTF-8 (`read_to_string`); other bytes are refused
        // before the reader sees them.
        if let Ok(text) = std::str::from_utf8(rest) {
            check_file(text);
        }
    } else {
        check_header(rest);
    }
});
