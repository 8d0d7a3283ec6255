//! A request's id: named by every log line about the request (its access line, its
//! script's or application's stderr lines), given to the program as UNIQUE_ID (the name
//! Apache's mod_unique_id gives it), and returned as X-Request-Id when the config asks, so
//! that one request's lines can be joined across a proxy, Portico, the program and the
//! client. A trusted proxy's own id for the request is kept (`RequestId::given`).

use std::fmt;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    /// 64 random bits, shown as 16 hex digits.
    Ours(u64),
    /// The id a trusted proxy sent with the request.
    Given(Arc<str>),
}

/// The longest id a proxy may give: it goes into every log line of the request.
const MAX_GIVEN: usize = 128;

impl RequestId {
    pub fn new() -> RequestId {
        RequestId(Repr::Ours(fastrand::u64(..)))
    }

    /// A proxy's id, when it is 1 to 128 visible ASCII characters: it reaches log lines,
    /// the environment and a response header as it is, so nothing else is taken.
    pub fn given(text: &str) -> Option<RequestId> {
        let fits =
            (1..=MAX_GIVEN).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        fits.then(|| RequestId(Repr::Given(text.into())))
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::new()
    }
}

impl std::str::FromStr for RequestId {
    type Err = ();

    /// The id as `Display` wrote it: 16 hex digits are one of Portico's own.
    fn from_str(text: &str) -> Result<RequestId, ()> {
        match u64::from_str_radix(text, 16) {
            Ok(n) if text.len() == 16 => Ok(RequestId(Repr::Ours(n))),
            _ => RequestId::given(text).ok_or(()),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Ours(n) => write!(f, "{n:016x}"),
            Repr::Given(text) => f.write_str(text),
        }
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

    #[test]
    fn a_given_id_is_kept_only_when_it_is_visible_ascii_of_a_sane_length() {
        let uuid = "6f1c2a9e-8d3b-4c1e-9a7f-2b5d8e0c4a11";
        assert_eq!(RequestId::given(uuid).unwrap().to_string(), uuid);
        assert_eq!(uuid.parse::<RequestId>().unwrap().to_string(), uuid);
        for bad in ["", "a b", "a\nSet-Cookie: x", "é", &"x".repeat(129)] {
            assert!(RequestId::given(bad).is_none(), "{bad:?}");
        }
    }
}
