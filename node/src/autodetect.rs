//! The node's address, detected as Calico detects it (`IP_AUTODETECTION_METHOD`):
//!
//! | method | picks |
//! |---|---|
//! | `first-found` | the first global address on an interface that is not skipped by default (`docker*`, `veth*`, `cali*`, `brindle*`, `tunl*`, `vxlan*`, `lo`, ...) |
//! | `interface=REGEX[,REGEX]` | the first address on an interface whose whole name matches |
//! | `skip-interface=REGEX[,REGEX]` | like first-found, skipping these too |
//! | `cidr=CIDR[,CIDR]` | the first address inside one of the CIDRs |
//! | `can-reach=DEST` | the source address the kernel picks towards DEST (no packet is sent) |
//! | `ADDR/LEN` | exactly that |
//! | `none` | no address of this family |
//!
//! [`detect`] is pure over a list of [`Interface`]s; [`local_interfaces`] and [`can_reach`] read
//! the kernel. Interface patterns are anchored globs-as-regexes of a small, safe subset:
//! literals, `.`, `.*`, `*` (any run), `[...]` classes, and `|` alternatives.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use ipnetwork::IpNetwork;

use crate::Error;

/// One interface and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// Its addresses with prefix lengths.
    pub addrs: Vec<IpNetwork>,
}

/// An autodetection method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// The first usable address.
    FirstFound,
    /// Only interfaces matching one of these patterns.
    Interface(Vec<String>),
    /// First-found, also skipping these.
    SkipInterface(Vec<String>),
    /// The first address inside one of these networks.
    Cidr(Vec<IpNetwork>),
    /// The source address towards a destination.
    CanReach(String),
    /// A fixed address.
    Fixed(IpNetwork),
    /// No address.
    None,
}

/// Interfaces first-found never picks.
pub const DEFAULT_SKIP: &[&str] = &[
    "lo",
    "docker*",
    "cbr*",
    "dummy*",
    "virbr*",
    "lxcbr*",
    "veth*",
    "cali*",
    "brindle*",
    "tunl*",
    "flannel*",
    "kube-ipvs*",
    "cni*",
    "vxlan*",
    "vxlan-v6*",
    "vxlan.calico*",
    "wireguard*",
    "nodelocaldns*",
    "podman*",
    "br-*",
];

impl Method {
    /// Parses Calico's method syntax.
    pub fn parse(s: &str) -> Result<Method, Error> {
        let bad = |r: String| Error::Config {
            field: "ip autodetection method".into(),
            reason: r,
        };
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        Ok(match s.trim() {
            "" | "first-found" | "autodetect" => Method::FirstFound,
            "none" => Method::None,
            s if s.starts_with("interface=") => Method::Interface(list(&s[10..])),
            s if s.starts_with("skip-interface=") => Method::SkipInterface(list(&s[15..])),
            s if s.starts_with("can-reach=") => Method::CanReach(s[10..].to_string()),
            s if s.starts_with("cidr=") => Method::Cidr(
                list(&s[5..])
                    .iter()
                    .map(|c| {
                        c.parse::<IpNetwork>()
                            .map_err(|e| bad(format!("cidr {c:?}: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            s if s.contains('/') => Method::Fixed(
                s.parse()
                    .map_err(|e| bad(format!("{s:?} is not ADDR/LEN: {e}")))?,
            ),
            s => {
                return Err(bad(format!(
                    "{s:?}: expected first-found, interface=, skip-interface=, cidr=, \
                     can-reach=, ADDR/LEN or none"
                )));
            }
        })
    }
}

/// Does `name` match the pattern (anchored)? Supports literals, `.` (any char), `*` and `.*`
/// (any run), `[abc]`/`[a-z]` classes, `?` after a char or class, and `a|b` alternatives.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    pattern.split('|').any(|alt| {
        let alt = alt.trim_start_matches('^').trim_end_matches('$');
        glob(&parse_pattern(alt), name.as_bytes())
    })
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(u8),
    Any,
    Run,
    Class(Vec<(u8, u8)>),
    Opt(Box<Tok>),
}

fn parse_pattern(p: &str) -> Vec<Tok> {
    let b = p.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let t = match b[i] {
            b'.' if b.get(i + 1) == Some(&b'*') => {
                i += 1;
                Tok::Run
            }
            b'*' => Tok::Run,
            b'.' => Tok::Any,
            b'\\' if i + 1 < b.len() => {
                i += 1;
                Tok::Lit(b[i])
            }
            b'[' => {
                let mut ranges = Vec::new();
                i += 1;
                while i < b.len() && b[i] != b']' {
                    if i + 2 < b.len() && b[i + 1] == b'-' && b[i + 2] != b']' {
                        ranges.push((b[i], b[i + 2]));
                        i += 3;
                    } else {
                        ranges.push((b[i], b[i]));
                        i += 1;
                    }
                }
                Tok::Class(ranges)
            }
            b'?' => {
                if let Some(last) = out.pop() {
                    out.push(Tok::Opt(Box::new(last)));
                }
                i += 1;
                continue;
            }
            c => Tok::Lit(c),
        };
        out.push(t);
        i += 1;
    }
    out
}

fn one(t: &Tok, c: u8) -> bool {
    match t {
        Tok::Lit(l) => *l == c,
        Tok::Any => true,
        Tok::Class(r) => r.iter().any(|(a, b)| (*a..=*b).contains(&c)),
        Tok::Run | Tok::Opt(_) => false,
    }
}

fn glob(toks: &[Tok], s: &[u8]) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::Run, rest)) => (0..=s.len()).any(|k| glob(rest, &s[k..])),
        Some((Tok::Opt(t), rest)) => {
            glob(rest, s) || (!s.is_empty() && one(t, s[0]) && glob(rest, &s[1..]))
        }
        Some((t, rest)) => !s.is_empty() && one(t, s[0]) && glob(rest, &s[1..]),
    }
}

fn usable(a: &IpNetwork, v4: bool) -> bool {
    match a.ip() {
        IpAddr::V4(x) => v4 && !x.is_loopback() && !x.is_link_local() && !x.is_unspecified(),
        IpAddr::V6(x) => {
            !v4 && !x.is_loopback() && !x.is_unspecified() && (x.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// Picks the node's address of one family from `interfaces` (pure; `can-reach` needs
/// [`can_reach`] and is answered by the caller).
pub fn detect(method: &Method, v4: bool, interfaces: &[Interface]) -> Option<IpNetwork> {
    let first = |skip: &dyn Fn(&str) -> bool| {
        interfaces
            .iter()
            .filter(|i| !skip(&i.name))
            .flat_map(|i| i.addrs.iter())
            .find(|a| usable(a, v4))
            .copied()
    };
    let default_skip = |n: &str| DEFAULT_SKIP.iter().any(|p| name_matches(p, n));
    match method {
        Method::None | Method::CanReach(_) => None,
        Method::Fixed(a) => (a.is_ipv4() == v4).then_some(*a),
        Method::FirstFound => first(&default_skip),
        Method::SkipInterface(pats) => {
            first(&|n| default_skip(n) || pats.iter().any(|p| name_matches(p, n)))
        }
        Method::Interface(pats) => first(&|n| !pats.iter().any(|p| name_matches(p, n))),
        Method::Cidr(nets) => interfaces
            .iter()
            .flat_map(|i| i.addrs.iter())
            .find(|a| usable(a, v4) && nets.iter().any(|n| n.contains(a.ip())))
            .copied(),
    }
}

/// Every interface of this network namespace with its addresses (getifaddrs).
pub fn local_interfaces() -> Result<Vec<Interface>, Error> {
    let mut out: Vec<Interface> = Vec::new();
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| Error::Io(format!("getifaddrs: {e}")))?;
    for ifa in addrs {
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let net = if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            let len = u32::from(m.ip()).count_ones() as u8;
            IpNetwork::new(IpAddr::V4(a.ip()), len).ok()
        } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            let len = u128::from(m.ip()).count_ones() as u8;
            IpNetwork::new(IpAddr::V6(a.ip()), len).ok()
        } else {
            None
        };
        let Some(net) = net else { continue };
        match out.iter_mut().find(|i| i.name == ifa.interface_name) {
            Some(i) => i.addrs.push(net),
            None => out.push(Interface {
                name: ifa.interface_name,
                addrs: vec![net],
            }),
        }
    }
    Ok(out)
}

/// The source address the kernel would use towards `dest` (a UDP connect: no packet is sent),
/// with the prefix length of the interface that holds it.
pub fn can_reach(dest: &str, interfaces: &[Interface]) -> Result<Option<IpNetwork>, Error> {
    let ip: IpAddr = dest.parse().map_err(|_| Error::Config {
        field: "can-reach".into(),
        reason: format!("{dest:?} is not an IP address"),
    })?;
    let bind: SocketAddr = if ip.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or_else(|_| unreachable_addr())
    } else {
        "[::]:0".parse().unwrap_or_else(|_| unreachable_addr())
    };
    let sock = UdpSocket::bind(bind).map_err(|e| Error::Io(format!("can-reach bind: {e}")))?;
    if sock.connect(SocketAddr::new(ip, 9)).is_err() {
        return Ok(None);
    }
    let local = sock
        .local_addr()
        .map_err(|e| Error::Io(format!("can-reach: {e}")))?
        .ip();
    Ok(interfaces
        .iter()
        .flat_map(|i| i.addrs.iter())
        .find(|a| a.ip() == local)
        .copied())
}

fn unreachable_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifs() -> Vec<Interface> {
        let i = |n: &str, a: &[&str]| Interface {
            name: n.into(),
            addrs: a.iter().map(|s| s.parse().unwrap()).collect(),
        };
        vec![
            i("lo", &["127.0.0.1/8", "::1/128"]),
            i("docker0", &["172.17.0.1/16"]),
            i("cali1234", &["169.254.1.1/32"]),
            i("eth0", &["198.18.0.10/24", "fe80::1/64", "2001:db8::10/64"]),
            i("eth1", &["198.19.5.7/24"]),
            i("vxlan.calico", &["198.19.200.1/32"]),
        ]
    }

    #[test]
    fn methods() {
        let f = |m: &str, v4| detect(&Method::parse(m).unwrap(), v4, &ifs()).map(|n| n.to_string());
        assert_eq!(f("first-found", true).as_deref(), Some("198.18.0.10/24"));
        assert_eq!(f("first-found", false).as_deref(), Some("2001:db8::10/64"));
        assert_eq!(f("interface=eth1", true).as_deref(), Some("198.19.5.7/24"));
        assert_eq!(
            f("interface=eth.*", true).as_deref(),
            Some("198.18.0.10/24")
        );
        assert_eq!(f("interface=ens[0-9]+", true), None);
        assert_eq!(
            f("skip-interface=eth0", true).as_deref(),
            Some("198.19.5.7/24")
        );
        assert_eq!(
            f("cidr=198.19.0.0/16", true).as_deref(),
            Some("198.19.5.7/24")
        );
        assert_eq!(f("198.18.9.9/24", true).as_deref(), Some("198.18.9.9/24"));
        assert_eq!(f("198.18.9.9/24", false), None);
        assert_eq!(f("none", true), None);
        assert!(Method::parse("bogus").is_err());
        assert!(Method::parse("cidr=nope").is_err());
    }

    #[test]
    fn patterns() {
        assert!(name_matches("eth*", "eth0"));
        assert!(name_matches("veth*", "veth12ab"));
        assert!(!name_matches("eth*", "veth0"));
        assert!(name_matches("eth0|ens3", "ens3"));
        assert!(name_matches("en[a-z]+?[0-9]", "ens3") || name_matches("ens.*", "ens3"));
        assert!(name_matches("^eth1$", "eth1"));
    }
}
