//! Source-address lists: `server.allow` and a user's `allow_from`. Each entry
//! is a CIDR network (IPv4 or IPv6) or a plain address (one host).

use std::net::IpAddr;

use ipnet::IpNet;

/// A list of networks; an address matches when any network contains it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceList(Vec<IpNet>);

impl SourceList {
    /// Parses every entry; `Err` holds the entries that are neither a CIDR
    /// network nor an address.
    pub fn parse(values: &[String]) -> Result<SourceList, Vec<String>> {
        let mut nets = Vec::with_capacity(values.len());
        let mut bad = Vec::new();
        for value in values {
            match parse_entry(value) {
                Some(net) => nets.push(net),
                None => bad.push(value.clone()),
            }
        }
        if bad.is_empty() {
            Ok(SourceList(nets))
        } else {
            Err(bad)
        }
    }

    /// True when `ip` is in one of the networks. An IPv4 client seen on an
    /// IPv6 socket (`::ffff:10.0.0.1`) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// True when the list has no entry (nothing matches).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a plain address as a one-host network.
/// Host bits after the prefix are ignored (`10.0.5.7/24` is `10.0.5.0/24`).
fn parse_entry(value: &str) -> Option<IpNet> {
    if value.contains('/') {
        value.parse::<IpNet>().ok().map(|net| net.trunc())
    } else {
        value.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> SourceList {
        let owned: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        SourceList::parse(&owned).expect("valid")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks_and_plain_addresses_match() {
        let l = list(&["10.0.5.0/24", "127.0.0.2", "2001:db8::/32", "::1"]);
        assert!(l.contains(ip("10.0.5.0")));
        assert!(l.contains(ip("10.0.5.255")));
        assert!(!l.contains(ip("10.0.6.1")));
        assert!(l.contains(ip("127.0.0.2")));
        assert!(!l.contains(ip("127.0.0.1")));
        assert!(!l.contains(ip("127.0.0.3")));
        assert!(l.contains(ip("2001:db8:ffff::1")));
        assert!(!l.contains(ip("2001:db9::1")));
        assert!(l.contains(ip("::1")));
        assert!(!l.contains(ip("::2")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let l = list(&["10.0.0.0/8"]);
        assert!(l.contains(ip("::ffff:10.1.2.3")));
        assert!(!l.contains(ip("::ffff:11.1.2.3")));
    }

    #[test]
    fn host_bits_are_ignored_and_edges_hold() {
        let l = list(&["10.0.5.7/24", "0.0.0.0/0"]);
        assert!(l.contains(ip("192.168.1.1")));
        let l = list(&["10.0.5.7/24"]);
        assert!(l.contains(ip("10.0.5.200")));
        let l = list(&["::/0"]);
        assert!(l.contains(ip("fe80::1")));
        assert!(!l.contains(ip("1.2.3.4")));
        assert!(!SourceList::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn bad_entries_are_all_reported() {
        let values: Vec<String> = [
            "10.0.0.0/8",
            "10.0.0.0/33",
            "host.example",
            "",
            "1.2.3.4/",
            "::1/129",
            " 1.2.3.4",
        ]
        .iter()
        .map(|v| (*v).to_owned())
        .collect();
        let bad = SourceList::parse(&values).expect_err("bad entries");
        assert_eq!(
            bad,
            [
                "10.0.0.0/33",
                "host.example",
                "",
                "1.2.3.4/",
                "::1/129",
                " 1.2.3.4"
            ]
        );
    }
}
