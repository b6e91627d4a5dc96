//! Address families: AFI (IANA "Address Family Numbers"), SAFI (IANA "SAFI Values") and the
//! pair of them. Unknown values are preserved, so a capability or attribute for a family this
//! crate does not model still round-trips.
//!
//! Pure: no I/O.

use std::fmt;

/// Address Family Identifier (RFC 4760 §3). Unknown values are kept as they are.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    /// IPv4.
    pub const IPV4: Afi = Afi(1);
    /// IPv6.
    pub const IPV6: Afi = Afi(2);
    /// Layer-2 VPN (EVPN, VPLS); not decoded by this crate, preserved.
    pub const L2VPN: Afi = Afi(25);
}

/// Subsequent Address Family Identifier (RFC 4760 §3). Unknown values are kept as they are.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast forwarding.
    pub const UNICAST: Safi = Safi(1);
    /// Multicast RPF (same NLRI encoding as unicast).
    pub const MULTICAST: Safi = Safi(2);
    /// MPLS-labeled VPN; not decoded by this crate, preserved.
    pub const MPLS_VPN: Safi = Safi(128);
}

/// An (AFI, SAFI) pair.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
}

impl Family {
    /// IPv4 unicast, the family of the classic UPDATE NLRI fields.
    pub const IPV4_UNICAST: Family = Family::new(Afi::IPV4, Safi::UNICAST);
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family::new(Afi::IPV6, Safi::UNICAST);
    /// IPv4 multicast.
    pub const IPV4_MULTICAST: Family = Family::new(Afi::IPV4, Safi::MULTICAST);
    /// IPv6 multicast.
    pub const IPV6_MULTICAST: Family = Family::new(Afi::IPV6, Safi::MULTICAST);

    /// Build a family from its parts.
    pub const fn new(afi: Afi, safi: Safi) -> Family {
        Family { afi, safi }
    }

    /// True when this crate decodes the family's NLRI into prefixes (IPv4/IPv6, unicast or
    /// multicast); other families are carried as raw attributes.
    pub fn is_prefix_family(&self) -> bool {
        matches!(self.afi, Afi::IPV4 | Afi::IPV6)
            && matches!(self.safi, Safi::UNICAST | Safi::MULTICAST)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "afi {}/safi {}", self.afi.0, self.safi.0)
    }
}
