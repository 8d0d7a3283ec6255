//! What a trusted proxy in front of Portico says of the client: its address, whether it
//! came over HTTPS, and the host it asked for. From `Forwarded` (RFC 7239), else from
//! `X-Forwarded-For`, `-Proto` and `-Host`, and only on connections from `trusted_proxies`:
//! anyone else could write those headers to pose as another client.
//!
//! The client is the right-most address of the chain that is not itself a trusted proxy,
//! as nginx's realip module (`real_ip_recursive on`) and gunicorn's
//! `forwarded_allow_ips` have it: addresses to its left were written by the client and
//! prove nothing.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The networks whose connections are believed about the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    /// `"unix"`: whatever connects over Portico's unix sockets (a proxy on this host).
    unix: bool,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>, unix: bool) -> TrustedProxies {
        TrustedProxies { networks, unix }
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && !self.unix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether the peer of a connection is believed: by its address, or, over a unix
    /// socket (`peer` is `None`), when `"unix"` is listed.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            Some(ip) => self.contains(ip),
            None => self.unix,
        }
    }
}

/// What the proxy said; `None` where it said nothing believable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub client: Option<IpAddr>,
    pub https: Option<bool>,
    pub host: Option<String>,
}

/// Reads the headers of a request that came from `peer` (`None`: over a unix socket).
pub fn read(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &TrustedProxies) -> Forwarded {
    if !trusted.trusts(peer) {
        return Forwarded::default();
    }
    let all = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    };
    let elements = all("forwarded");
    let (chain, proto, host): (Vec<&str>, Option<&str>, Option<&str>) = if elements.is_empty() {
        (
            all("x-forwarded-for"),
            all("x-forwarded-proto").last().copied(),
            all("x-forwarded-host").last().copied(),
        )
    } else {
        let params: Vec<Vec<(String, &str)>> = elements.iter().map(|e| pairs(e)).collect();
        let last = |key: &str| {
            params
                .iter()
                .rev()
                .find_map(|p| p.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
        };
        let chain = params
            .iter()
            .filter_map(|p| p.iter().find(|(k, _)| k == "for").map(|(_, v)| *v))
            .collect();
        (chain, last("proto"), last("host"))
    };
    Forwarded {
        client: client(&chain, trusted),
        https: proto.map(|p| p.eq_ignore_ascii_case("https")),
        host: host.filter(|h| is_host(h)).map(str::to_owned),
    }
}

/// The right-most address that is no trusted proxy; the left-most when all are. A value
/// that is no address (`unknown`, an obfuscated `_name`) ends the walk: nothing to its
/// left can be checked.
fn client(chain: &[&str], trusted: &TrustedProxies) -> Option<IpAddr> {
    let mut found = None;
    for value in chain.iter().rev() {
        let ip = address(value)?;
        found = Some(ip);
        if !trusted.contains(ip) {
            break;
        }
    }
    found
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:80`.
fn address(value: &str) -> Option<IpAddr> {
    let value = value.trim_matches('"');
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse::<IpAddr>().ok();
    }
    let (host, _port) = value.rsplit_once(':')?;
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// RFC 7239 §4: `key=value` pairs separated by `;`, keys case-insensitive, values tokens
/// or quoted strings.
fn pairs(element: &str) -> Vec<(String, &str)> {
    element
        .split(';')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((
                key.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"'),
            ))
        })
        .collect()
}

/// A host (with an optional port) fit for SERVER_NAME: nothing a script could be fooled by.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect(), false)
    }

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client_and_only_trusted_peers_are_heard() {
        let proxies = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // (headers, peer, client, https, host)
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            IpAddr,
            Option<IpAddr>,
            Option<bool>,
            Option<&'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                vec![("x-forwarded-for", "203.0.113.7")],
                local,
                ip("203.0.113.7"),
                None,
                None,
            ),
            // A spoofed first entry: the proxy appended the real one.
            (
                vec![("x-forwarded-for", "6.6.6.6, 203.0.113.7")],
                local,
                ip("203.0.113.7"),
                None,
                None,
            ),
            // Through two trusted proxies.
            (
                vec![("x-forwarded-for", "203.0.113.7, 10.1.2.3")],
                local,
                ip("203.0.113.7"),
                None,
                None,
            ),
            (
                vec![("x-forwarded-for", "10.0.0.1, 10.1.2.3")],
                local,
                ip("10.0.0.1"),
                None,
                None,
            ),
            // Split over two fields.
            (
                vec![
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "203.0.113.7"),
                ],
                local,
                ip("203.0.113.7"),
                None,
                None,
            ),
            (
                vec![
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "example.org"),
                ],
                local,
                ip("203.0.113.7"),
                Some(true),
                Some("example.org"),
            ),
            // Not a trusted peer: nothing is believed.
            (
                vec![
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-proto", "https"),
                ],
                stranger,
                None,
                None,
                None,
            ),
            // RFC 7239, which wins over X-Forwarded-*.
            (
                vec![
                    (
                        "forwarded",
                        r#"for=6.6.6.6, for="[2001:db8::1]:4711";proto=https;host=example.org"#,
                    ),
                    ("x-forwarded-for", "1.1.1.1"),
                ],
                local,
                ip("2001:db8::1"),
                Some(true),
                Some("example.org"),
            ),
            (
                vec![("forwarded", "for=192.0.2.60:8080;proto=http")],
                local,
                ip("192.0.2.60"),
                Some(false),
                None,
            ),
            (vec![("forwarded", "for=unknown")], local, None, None, None),
            // A host that would put a newline or a path into SERVER_NAME is dropped.
            (
                vec![("x-forwarded-host", "evil/../x")],
                local,
                None,
                None,
                None,
            ),
        ];
        for (fields, peer, client, https, host) in cases {
            let got = read(&headers(&fields), Some(peer), &proxies);
            assert_eq!(
                got,
                Forwarded {
                    client,
                    https,
                    host: host.map(str::to_owned)
                },
                "{fields:?} from {peer}"
            );
        }
        assert_eq!(
            read(
                &headers(&[("x-forwarded-for", "203.0.113.7")]),
                Some(local),
                &TrustedProxies::default()
            ),
            Forwarded::default(),
            "no trusted proxies, nothing believed"
        );
    }
}
