//! A toxic's client targeting: the `clients` list beside `attributes` (`["10.1.0.0/16",
//! "127.0.0.2", "::1"]`). A toxic that has one applies only to connections whose client
//! address matches an entry.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// One entry: an address and a prefix length (32 or 128 for a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // Digits only: no sign, no spaces.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&n| n <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            // A v4 client seen through a dual-stack socket (::ffff:a.b.c.d).
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// The `clients` of a toxic, as given (the JSON shows the strings back unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clients {
    given: Arc<[String]>,
    nets: Arc<[Net]>,
}

impl Clients {
    /// Parses every entry; the error is the 400 message and names the bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Clients, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.as_ref();
            let net = Net::parse(e).ok_or_else(|| {
                format!("clients: {e:?} is not an IP address or CIDR (such as 10.1.0.0/16 or ::1)")
            })?;
            nets.push(net);
        }
        Ok(Clients {
            given: entries.iter().map(|e| e.as_ref().to_owned()).collect(),
            nets: nets.into(),
        })
    }

    /// The entries as given.
    pub fn entries(&self) -> &[String] {
        &self.given
    }

    /// Whether a connection from `client` is targeted.
    pub fn matches(&self, client: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(client))
    }
}

impl fmt::Display for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given.join(","))
    }
}

/// Whether a toxic with targeting `clients` applies to a connection from `client`: always
/// without targeting; with it, only to a known, matching client address.
pub fn targets(clients: Option<&Clients>, client: Option<IpAddr>) -> bool {
    match (clients, client) {
        (None, _) => true,
        (Some(c), Some(ip)) => c.matches(ip),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_prefixes_match() {
        let c = Clients::parse(&["10.1.0.0/16", "127.0.0.2", "::1", "fe80::/10"]).unwrap();
        assert!(c.matches(ip("10.1.200.3")));
        assert!(!c.matches(ip("10.2.0.1")));
        assert!(c.matches(ip("127.0.0.2")));
        assert!(!c.matches(ip("127.0.0.1")));
        assert!(c.matches(ip("::1")));
        assert!(c.matches(ip("fe80::1234")));
        assert!(!c.matches(ip("fec0::1")));
        assert!(c.matches(ip("::ffff:127.0.0.2")), "v4-mapped");
        assert!(!c.matches(ip("::2")));
        let odd = Clients::parse(&["192.168.1.128/25"]).unwrap();
        assert!(odd.matches(ip("192.168.1.200")));
        assert!(!odd.matches(ip("192.168.1.127")));
        let all = Clients::parse(&["0.0.0.0/0", "::/0"]).unwrap();
        assert!(all.matches(ip("8.8.8.8")) && all.matches(ip("2001:db8::1")));
        assert_eq!(c.entries()[0], "10.1.0.0/16");
    }

    #[test]
    fn malformed_entries_are_named() {
        for bad in [
            "",
            "10.1.0.0/33",
            "::1/129",
            "10.1.0.0/",
            "10.1.0.0/+8",
            "10.1.0.0/ 8",
            "localhost",
            "10.1.0",
            "1.2.3.4/8/8",
            "[::1]",
            "10.0.0.1:80",
        ] {
            let e = Clients::parse(&["127.0.0.1", bad]).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
            assert!(e.starts_with("clients: "), "{e}");
        }
        assert!(Clients::parse::<&str>(&[]).is_ok());
    }

    #[test]
    fn no_targeting_applies_everywhere() {
        let c = Clients::parse(&["127.0.0.2"]).unwrap();
        assert!(targets(None, None));
        assert!(targets(None, Some(ip("1.2.3.4"))));
        assert!(targets(Some(&c), Some(ip("127.0.0.2"))));
        assert!(!targets(Some(&c), Some(ip("127.0.0.1"))));
        assert!(!targets(Some(&c), None));
    }
}
