//! Prefixes and NLRI entries (RFC 4271 §4.3, RFC 4760 §5, RFC 7911 §3): decoding with host bits
//! zeroed, encoding with the minimum number of octets, optional ADD-PATH path identifiers.
//!
//! ```text
//!  +---------------------------+
//!  | Path Identifier (4 octets)|   only when ADD-PATH is negotiated for the family/direction
//!  +---------------------------+
//!  | Length (1 octet, bits)    |
//!  +---------------------------+
//!  | Prefix (ceil(len/8) octets, trailing bits ignored)
//!  +---------------------------+
//! ```
//!
//! Pure: no I/O.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::Error;
use crate::family::Afi;
use crate::reader::Reader;

/// An IP prefix with its host bits zeroed. Ordered IPv4 before IPv6, then by address, then by
/// length (the order a derived `Ord` would give, computed on integers: prefixes key every RIB).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    /// IPv4 network and length (0..=32).
    V4(Ipv4Addr, u8),
    /// IPv6 network and length (0..=128).
    V6(Ipv6Addr, u8),
}

impl Ord for Prefix {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Prefix::V4(a, l), Prefix::V4(b, m)) => (u32::from(*a), *l).cmp(&(u32::from(*b), *m)),
            (Prefix::V6(a, l), Prefix::V6(b, m)) => (u128::from(*a), *l).cmp(&(u128::from(*b), *m)),
            (Prefix::V4(..), Prefix::V6(..)) => std::cmp::Ordering::Less,
            (Prefix::V6(..), Prefix::V4(..)) => std::cmp::Ordering::Greater,
        }
    }
}

impl PartialOrd for Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Prefix {
    /// An IPv4 prefix with host bits cleared, or `None` when `len > 32`.
    pub fn v4(addr: Ipv4Addr, len: u8) -> Option<Prefix> {
        if len > 32 {
            return None;
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        Some(Prefix::V4(Ipv4Addr::from(u32::from(addr) & mask), len))
    }

    /// An IPv6 prefix with host bits cleared, or `None` when `len > 128`.
    pub fn v6(addr: Ipv6Addr, len: u8) -> Option<Prefix> {
        if len > 128 {
            return None;
        }
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Some(Prefix::V6(Ipv6Addr::from(u128::from(addr) & mask), len))
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        match self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => *l,
        }
    }

    /// True for the default route (length 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address family of the prefix.
    pub fn afi(&self) -> Afi {
        match self {
            Prefix::V4(..) => Afi::IPV4,
            Prefix::V6(..) => Afi::IPV6,
        }
    }

    /// Octets this prefix takes on the wire (length byte included, path id excluded).
    pub fn wire_len(&self) -> usize {
        1 + usize::from(self.len()).div_ceil(8)
    }

    /// Append the length byte and the significant octets.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let n = usize::from(self.len()).div_ceil(8);
        out.push(self.len());
        match self {
            Prefix::V4(a, _) => out.extend_from_slice(a.octets().get(..n).unwrap_or_default()),
            Prefix::V6(a, _) => out.extend_from_slice(a.octets().get(..n).unwrap_or_default()),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(a, l) => write!(f, "{a}/{l}"),
            Prefix::V6(a, l) => write!(f, "{a}/{l}"),
        }
    }
}

/// One NLRI entry: a prefix and, when ADD-PATH applies, its path identifier.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    /// RFC 7911 path identifier; `Some` exactly when ADD-PATH is negotiated for the family
    /// in the direction of travel.
    pub path_id: Option<u32>,
    /// The prefix.
    pub prefix: Prefix,
}

impl Nlri {
    /// An entry without a path identifier.
    pub fn new(prefix: Prefix) -> Nlri {
        Nlri {
            path_id: None,
            prefix,
        }
    }

    /// An entry with a path identifier.
    pub fn with_path_id(prefix: Prefix, path_id: u32) -> Nlri {
        Nlri {
            path_id: Some(path_id),
            prefix,
        }
    }

    /// Octets on the wire, given whether path ids are sent.
    pub fn wire_len(&self, add_path: bool) -> usize {
        self.prefix.wire_len() + if add_path { 4 } else { 0 }
    }

    /// Append the entry. With `add_path`, a missing path id is sent as 0.
    pub fn encode(&self, add_path: bool, out: &mut Vec<u8>) {
        if add_path {
            out.extend_from_slice(&self.path_id.unwrap_or(0).to_be_bytes());
        }
        self.prefix.encode(out);
    }
}

impl From<Prefix> for Nlri {
    fn from(p: Prefix) -> Nlri {
        Nlri::new(p)
    }
}

/// Decode a run of NLRI entries filling `r` entirely.
///
/// `field` names the field for error reasons. A prefix length above the family maximum or a
/// prefix overrunning the field is a session reset 3/10 Invalid Network Field (RFC 4271 §6.3,
/// RFC 7606 §5.3).
pub(crate) fn decode_nlri(
    mut r: Reader<'_>,
    afi: Afi,
    add_path: bool,
    field: &str,
    out: &mut Vec<Nlri>,
) -> Result<(), Error> {
    let max_bits: u8 = if afi == Afi::IPV6 { 128 } else { 32 };
    // A /24 takes 4 octets; reserve roughly to avoid regrowth on big UPDATEs.
    out.reserve(r.len() / if add_path { 8 } else { 4 });
    while !r.is_empty() {
        let at = r.offset();
        let path_id = if add_path {
            Some(
                r.u32()
                    .ok_or_else(|| invalid_network(field, at, "truncated path identifier"))?,
            )
        } else {
            None
        };
        let len = r
            .u8()
            .ok_or_else(|| invalid_network(field, at, "missing prefix length"))?;
        if len > max_bits {
            return Err(invalid_network(
                field,
                at,
                &format!("prefix length {len} exceeds {max_bits}"),
            ));
        }
        let n = usize::from(len).div_ceil(8);
        let bytes = r
            .take(n)
            .ok_or_else(|| invalid_network(field, at, "prefix overruns the field"))?;
        let prefix = if afi == Afi::IPV6 {
            let mut o = [0u8; 16];
            if let Some(dst) = o.get_mut(..n) {
                dst.copy_from_slice(bytes);
            }
            Prefix::v6(Ipv6Addr::from(o), len)
        } else {
            let mut o = [0u8; 4];
            if let Some(dst) = o.get_mut(..n) {
                dst.copy_from_slice(bytes);
            }
            Prefix::v4(Ipv4Addr::from(o), len)
        };
        // `len` was checked against the maximum, so the constructor cannot fail.
        if let Some(prefix) = prefix {
            out.push(Nlri { path_id, prefix });
        }
    }
    Ok(())
}

fn invalid_network(field: &str, at: usize, what: &str) -> Error {
    Error::reset(3, 10, Vec::new(), format!("{field} at byte {at}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_order_is_the_octet_order() {
        let key = |p: &Prefix| match *p {
            Prefix::V4(a, l) => (0u8, a.octets().to_vec(), l),
            Prefix::V6(a, l) => (1u8, a.octets().to_vec(), l),
        };
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut v = Vec::new();
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let l4 = (x % 33) as u8;
            v.push(Prefix::v4(Ipv4Addr::from((x >> 16) as u32), l4).expect("v4"));
            let l6 = (x % 129) as u8;
            let a6 = (u128::from(x) << 64) | u128::from(x >> 3);
            v.push(Prefix::v6(Ipv6Addr::from(a6), l6).expect("v6"));
        }
        for a in &v {
            for b in v.iter().take(50) {
                assert_eq!(a.cmp(b), key(a).cmp(&key(b)), "{a:?} {b:?}");
            }
        }
    }
}
