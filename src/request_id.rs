//! A request's id: named by every log line about the request (its access line, its
//! script's or application's stderr lines), given to the program as UNIQUE_ID (the name
//! Apache's mod_unique_id gives it), and returned as X-Request-Id when the config asks, so
//! that one request's lines can be joined across Portico, the program and the client.

use std::fmt;

/// 64 random bits, shown as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId(u64);

impl RequestId {
    pub fn new() -> RequestId {
        RequestId(fastrand::u64(..))
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::new()
    }
}

impl std::str::FromStr for RequestId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<RequestId, Self::Err> {
        u64::from_str_radix(text, 16).map(RequestId)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_hex_digits_and_differ() {
        let ids: Vec<String> = (0..1000).map(|_| RequestId::new().to_string()).collect();
        assert!(
            ids.iter()
                .all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(ids[0].parse::<RequestId>().unwrap().to_string(), ids[0]);
    }
}
