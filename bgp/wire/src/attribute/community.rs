//! Community values: COMMUNITIES (RFC 1997), EXTENDED_COMMUNITIES (RFC 4360) and
//! LARGE_COMMUNITIES (RFC 8092). Each is a list of fixed-size values; the attribute decoders
//! in `attribute/mod.rs` check the list lengths (RFC 7606 §7.8, §7.14, RFC 8092 §6).
//!
//! ```text
//!  COMMUNITIES:          | global admin (2) | local (2) |                      repeated
//!  EXTENDED_COMMUNITIES: | type (1) | subtype (1) | value (6) |                  repeated
//!  LARGE_COMMUNITIES:    | global admin (4) | local 1 (4) | local 2 (4) |       repeated
//! ```
//!
//! Pure: no I/O.

use std::fmt;
use std::net::Ipv4Addr;

/// An RFC 1997 community.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// RFC 1997 NO_EXPORT.
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// RFC 1997 NO_ADVERTISE.
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// RFC 1997 NO_EXPORT_SUBCONFED.
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// RFC 3765 NOPEER.
    pub const NO_PEER: Community = Community(0xFFFF_FF04);
    /// RFC 8326 GRACEFUL_SHUTDOWN.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// RFC 9494 LLGR_STALE.
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// RFC 9494 NO_LLGR.
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// RFC 7999 BLACKHOLE.
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);

    /// Build `asn:value`.
    pub fn new(asn: u16, value: u16) -> Community {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// An RFC 4360 extended community, kept as its 8 octets with typed accessors.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    /// Type high octet: 2-octet AS specific, transitive.
    pub const TYPE_AS2: u8 = 0x00;
    /// Type high octet: IPv4 address specific, transitive.
    pub const TYPE_IPV4: u8 = 0x01;
    /// Type high octet: 4-octet AS specific, transitive (RFC 5668).
    pub const TYPE_AS4: u8 = 0x02;
    /// Subtype: route target.
    pub const SUBTYPE_ROUTE_TARGET: u8 = 0x02;
    /// Subtype: route origin.
    pub const SUBTYPE_ROUTE_ORIGIN: u8 = 0x03;

    /// The type octet (including the IANA authority and transitive bits).
    pub fn kind(&self) -> u8 {
        self.0[0]
    }

    /// The subtype octet (meaningful for the "extended" types).
    pub fn subkind(&self) -> u8 {
        self.0[1]
    }

    /// True unless the Transitive bit (0x40 of the type, meaning non-transitive) is set.
    pub fn is_transitive(&self) -> bool {
        self.0[0] & 0x40 == 0
    }

    /// Route target `asn:value` with a 2-octet AS.
    pub fn route_target_as2(asn: u16, value: u32) -> Self {
        let [a, b] = asn.to_be_bytes();
        let [c, d, e, f] = value.to_be_bytes();
        ExtendedCommunity([Self::TYPE_AS2, Self::SUBTYPE_ROUTE_TARGET, a, b, c, d, e, f])
    }

    /// Route target `asn:value` with a 4-octet AS.
    pub fn route_target_as4(asn: u32, value: u16) -> Self {
        let [a, b, c, d] = asn.to_be_bytes();
        let [e, f] = value.to_be_bytes();
        ExtendedCommunity([Self::TYPE_AS4, Self::SUBTYPE_ROUTE_TARGET, a, b, c, d, e, f])
    }

    /// Route target `addr:value`.
    pub fn route_target_ipv4(addr: Ipv4Addr, value: u16) -> Self {
        let [a, b, c, d] = addr.octets();
        let [e, f] = value.to_be_bytes();
        ExtendedCommunity([
            Self::TYPE_IPV4,
            Self::SUBTYPE_ROUTE_TARGET,
            a,
            b,
            c,
            d,
            e,
            f,
        ])
    }
}

/// An RFC 8092 large community `global:local1:local2`.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (usually an AS).
    pub global_admin: u32,
    /// Local data part 1.
    pub local_data1: u32,
    /// Local data part 2.
    pub local_data2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}
