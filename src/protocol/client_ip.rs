//! The client's IP address: the peer, or the first untrusted hop of `X-Forwarded-For`
//! when the peer is a trusted proxy.
//!
//! Only hops appended by proxies we trust can be believed, so the chain is walked from the
//! right: the peer vouches for the last entry, a trusted entry vouches for the one before
//! it, and the first untrusted entry is the client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::header::HeaderMap;

/// The `X-Forwarded-For` header name.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A configured trusted-proxy entry that is neither an IP address nor a CIDR network.
/// Raised at config load, never per request, so it carries the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ip network {0:?} (expected an address like 10.0.0.1 or ::1, or a network like 10.0.0.0/8)")]
pub struct IpNetError(pub String);

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`); a bare
/// address is a network of one (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The network address, host bits cleared.
    addr: IpAddr,
    /// Prefix length, at most 32 (IPv4) or 128 (IPv6).
    prefix: u8,
}

impl IpNet {
    /// A network from an address and prefix length; host bits are cleared.
    ///
    /// # Errors
    ///
    /// When the prefix is longer than the address (33+ for IPv4, 129+ for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpNetError> {
        let masked = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_u32(prefix)))
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_u128(prefix)))
            }
            _ => return Err(IpNetError(format!("{addr}/{prefix}"))),
        };
        Ok(Self {
            addr: masked,
            prefix,
        })
    }

    /// True when `ip` is inside the network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_u32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_u128(self.prefix) == u128::from(net)
            }
            // An IPv6 network can hold mapped IPv4 addresses (`::ffff:10.0.0.0/104`).
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                u128::from(ip.to_ipv6_mapped()) & mask_u128(self.prefix) == u128::from(net)
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let invalid = || IpNetError(s.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                (addr, Some(prefix.parse::<u8>().map_err(|_| invalid())?))
            }
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        Self::new(addr, prefix.unwrap_or(full)).map_err(|_| invalid())
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask_u32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// The configured trusted proxies (`trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusted proxies from networks already parsed.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Parses every entry (`"10.0.0.0/8"`, `"::1"`, ...).
    ///
    /// # Errors
    ///
    /// The first entry that is not an address or a network.
    pub fn parse<I, S>(entries: I) -> Result<Self, IpNetError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<Vec<IpNet>, _>>()?;
        Ok(Self { nets })
    }

    /// True when no proxy is trusted (then the peer is always the client).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// True when `ip` belongs to a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The configured networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// The client IP of a request: see [`resolve_client_ip`]; reads every
/// `X-Forwarded-For` header line of `headers`, in order.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.ip().to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    resolve_client_ip(
        peer,
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            // A value that is not visible ASCII cannot hold an address: it becomes a hop
            // that fails to parse, which stops the walk.
            .map(|value| value.to_str().unwrap_or("\u{0}")),
        trusted,
    )
}

/// The client IP given the peer address, the `X-Forwarded-For` values (header lines in
/// order, each a comma-separated list) and the trusted proxies.
///
/// - An untrusted peer is the client (its `X-Forwarded-For` could be forged).
/// - Otherwise the hops are walked from the right, skipping trusted ones; the first
///   untrusted hop is the client. When every hop is trusted, the leftmost one is.
/// - A hop that is not an address (`unknown`, garbage) ends the walk: the last address
///   known to be real (the trusted hop or peer to its right) is returned, since nothing
///   to its left can be believed.
///
/// Hops may carry a port (`1.2.3.4:5678`, `[2001:db8::1]:443`); empty entries are skipped.
pub fn resolve_client_ip<'a, I>(peer: IpAddr, forwarded_for: I, trusted: &TrustedProxies) -> IpAddr
where
    I: IntoIterator<Item = &'a str>,
    I::IntoIter: DoubleEndedIterator,
{
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut last_trusted = peer;
    for value in forwarded_for.into_iter().rev() {
        for hop in value.rsplit(',') {
            let hop = hop.trim();
            if hop.is_empty() {
                continue;
            }
            let Some(ip) = parse_hop(hop) else {
                return last_trusted;
            };
            if !trusted.contains(ip) {
                return ip;
            }
            last_trusted = ip;
        }
    }
    last_trusted
}

/// Parses one `X-Forwarded-For` entry: an address, optionally with a port or brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parsing_and_membership() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3/8", "10.9.9.9", true), // host bits are cleared
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("::1", "::1", true),
            ("::1", "::2", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::/0", "2001:db8::1", true),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true), // mapped IPv4
            ("::ffff:10.0.0.0/104", "10.1.1.1", true),
        ];
        for (net, addr, want) in cases {
            let parsed: IpNet = net.parse().unwrap();
            assert_eq!(parsed.contains(ip(addr)), *want, "{net} contains {addr}");
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "host",
            "1.2.3.4/-1",
            "1.2.3.4/+8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            "10.1.2.3/8".parse::<IpNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn client_ip_table() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8", "::1", "192.168.0.1"]).unwrap();
        // (name, peer, forwarded-for lines, expected client)
        let cases: &[(&str, &str, &[&str], &str)] = &[
            (
                "untrusted peer ignores xff",
                "8.8.8.8",
                &["1.1.1.1"],
                "8.8.8.8",
            ),
            ("trusted peer without xff", "10.0.0.1", &[], "10.0.0.1"),
            ("trusted peer, one hop", "10.0.0.1", &["1.1.1.1"], "1.1.1.1"),
            (
                "skips trusted hops from the right",
                "10.0.0.1",
                &["1.1.1.1, 2.2.2.2, 10.0.0.5, 192.168.0.1"],
                "2.2.2.2",
            ),
            (
                "spoofed left entries are not believed",
                "10.0.0.1",
                &["6.6.6.6, 3.3.3.3"],
                "3.3.3.3",
            ),
            (
                "all trusted gives leftmost",
                "10.0.0.1",
                &["10.0.0.9, 10.0.0.8"],
                "10.0.0.9",
            ),
            (
                "several header lines in order",
                "::1",
                &["4.4.4.4", "5.5.5.5, 10.1.1.1"],
                "5.5.5.5",
            ),
            (
                "ports and brackets",
                "10.0.0.1",
                &["[2001:db8::1]:443, 10.0.0.2:80"],
                "2001:db8::1",
            ),
            ("ipv4 with port", "10.0.0.1", &["1.2.3.4:5678"], "1.2.3.4"),
            (
                "garbage stops at last real address",
                "10.0.0.1",
                &["1.1.1.1, unknown, 10.0.0.7"],
                "10.0.0.7",
            ),
            (
                "garbage right after peer",
                "10.0.0.1",
                &["unknown"],
                "10.0.0.1",
            ),
            (
                "empty entries skipped",
                "10.0.0.1",
                &[" , 7.7.7.7 ,, "],
                "7.7.7.7",
            ),
            (
                "mapped peer is trusted",
                "::ffff:10.0.0.1",
                &["9.9.9.9"],
                "9.9.9.9",
            ),
            ("ipv6 client", "::1", &["2001:db8::42"], "2001:db8::42"),
        ];
        let mut names = std::collections::HashSet::new();
        for (name, peer, xff, want) in cases {
            assert!(names.insert(name), "duplicate case {name}");
            let got = resolve_client_ip(ip(peer), xff.iter().copied(), &trusted);
            assert_eq!(got, ip(want), "case {name}");

            let mut headers = HeaderMap::new();
            for line in *xff {
                headers.append(X_FORWARDED_FOR, line.parse().unwrap());
            }
            let socket = SocketAddr::new(ip(peer), 1234);
            assert_eq!(
                client_ip(socket, &headers, &trusted),
                ip(want),
                "case {name} (headers)"
            );
        }
    }

    #[test]
    fn no_trusted_proxies_means_peer() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, "1.1.1.1".parse().unwrap());
        let peer = SocketAddr::new(ip("10.0.0.1"), 1);
        assert_eq!(
            client_ip(peer, &headers, &TrustedProxies::default()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn non_ascii_header_value_stops_the_walk() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let mut headers = HeaderMap::new();
        headers.append(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"1.1.1.1\xff").unwrap(),
        );
        let peer = SocketAddr::new(ip("10.0.0.1"), 1);
        assert_eq!(client_ip(peer, &headers, &trusted), ip("10.0.0.1"));
    }
}
