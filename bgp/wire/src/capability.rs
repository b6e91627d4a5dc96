//! BGP capabilities (RFC 5492) carried in the OPEN optional parameter type 2: multiprotocol,
//! route refresh, extended next hop, extended message, graceful restart, 4-octet AS, ADD-PATH,
//! enhanced route refresh, long-lived graceful restart and FQDN. Anything else is preserved as
//! raw (code, value).
//!
//! ```text
//!  +------------------------------+
//!  | Capability Code (1 octet)    |
//!  +------------------------------+
//!  | Capability Length (1 octet)  |
//!  +------------------------------+
//!  | Capability Value (variable)  |
//!  +------------------------------+
//! ```
//!
//! Pure: no I/O.

use crate::error::Error;
use crate::family::{Afi, Family, Safi};
use crate::reader::Reader;

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// RFC 4760.
    pub const MULTIPROTOCOL: u8 = 1;
    /// RFC 2918.
    pub const ROUTE_REFRESH: u8 = 2;
    /// RFC 8950.
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// RFC 8654.
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// RFC 4724.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// RFC 6793.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// RFC 7911.
    pub const ADD_PATH: u8 = 69;
    /// RFC 7313.
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// RFC 9494.
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
    /// draft-walton-bgp-hostname-capability.
    pub const FQDN: u8 = 73;
}

/// One capability.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// RFC 4760 §8: AFI (2), reserved (1), SAFI (1).
    Multiprotocol(Family),
    /// RFC 2918: no value.
    RouteRefresh,
    /// RFC 8950 §3: NLRI AFI (2), NLRI SAFI (2), next-hop AFI (2), repeated.
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// RFC 8654: no value.
    ExtendedMessage,
    /// RFC 4724 §3.
    GracefulRestart(GracefulRestart),
    /// RFC 6793: the 4-octet AS number.
    FourOctetAs(u32),
    /// RFC 7911 §4: AFI (2), SAFI (1), send/receive (1), repeated.
    AddPath(Vec<AddPathFamily>),
    /// RFC 7313: no value.
    EnhancedRouteRefresh,
    /// RFC 9494 §3: AFI (2), SAFI (1), flags (1), long-lived stale time (3), repeated.
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    /// Hostname capability: hostname length (1), hostname, domain length (1), domain.
    Fqdn {
        /// Host name.
        hostname: String,
        /// Domain name.
        domain: String,
    },
    /// Any capability this crate does not decode, or a known one whose value is malformed in
    /// a way that is safe to ignore.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// One RFC 8950 tuple: NLRI of `nlri` may carry a next hop of `next_hop_afi`.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    /// NLRI family (the SAFI is 2 octets in this capability).
    pub nlri_afi: Afi,
    /// NLRI SAFI, 16 bits on the wire.
    pub nlri_safi: u16,
    /// Next hop address family.
    pub next_hop_afi: Afi,
}

/// RFC 4724 §3 graceful restart capability.
///
/// ```text
///  +--------------------------------------------------+
///  | Restart Flags (4 bits) | Restart Time (12 bits)  |
///  +--------------------------------------------------+
///  | AFI (2) | SAFI (1) | Flags for Address Family (1) |  repeated
///  +--------------------------------------------------+
/// ```
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// The four restart flag bits, right-aligned (bit 3 = R, bit 2 = N of RFC 8538).
    pub flags: u8,
    /// Restart time in seconds (0..=4095).
    pub restart_time: u16,
    /// Families with preserved forwarding state flags.
    pub families: Vec<GrFamily>,
}

impl GracefulRestart {
    /// Restart State (R) bit, right-aligned.
    pub const RESTART_STATE: u8 = 0x8;
    /// Graceful Notification (N) bit of RFC 8538, right-aligned.
    pub const NOTIFICATION: u8 = 0x4;

    /// True when the peer says it has restarted.
    pub fn restart_state(&self) -> bool {
        self.flags & Self::RESTART_STATE != 0
    }

    /// True when the peer supports RFC 8538 graceful NOTIFICATION.
    pub fn notification(&self) -> bool {
        self.flags & Self::NOTIFICATION != 0
    }
}

/// A family in the graceful restart capability.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrFamily {
    /// The family.
    pub family: Family,
    /// Per-family flags; bit 0x80 is "forwarding state preserved".
    pub flags: u8,
}

impl GrFamily {
    /// Forwarding state preserved bit.
    pub const FORWARDING: u8 = 0x80;

    /// True when forwarding state was preserved for this family.
    pub fn forwarding(&self) -> bool {
        self.flags & Self::FORWARDING != 0
    }
}

/// RFC 7911 send/receive field.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathMode(pub u8);

impl AddPathMode {
    /// Able to receive multiple paths.
    pub const RECEIVE: AddPathMode = AddPathMode(1);
    /// Able to send multiple paths.
    pub const SEND: AddPathMode = AddPathMode(2);
    /// Both.
    pub const BOTH: AddPathMode = AddPathMode(3);

    /// True when the receive bit is set.
    pub fn receives(&self) -> bool {
        self.0 & 1 != 0
    }

    /// True when the send bit is set.
    pub fn sends(&self) -> bool {
        self.0 & 2 != 0
    }
}

/// One ADD-PATH tuple.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// The family.
    pub family: Family,
    /// Send, receive or both.
    pub mode: AddPathMode,
}

/// One RFC 9494 tuple.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LlgrFamily {
    /// The family.
    pub family: Family,
    /// Flags; 0x80 is "forwarding state preserved".
    pub flags: u8,
    /// Long-lived stale time in seconds (24 bits).
    pub stale_time: u32,
}

fn bad_capability(code: u8, at: usize, what: &str) -> Error {
    Error::reset(
        2,
        0,
        Vec::new(),
        format!("capability {code} at byte {at}: {what}"),
    )
}

impl Capability {
    /// A short name for status output: `multiprotocol ipv4-unicast`, `route-refresh`, ...
    pub fn name(&self) -> String {
        match self {
            Capability::Multiprotocol(f) if *f == Family::IPV4_UNICAST => {
                "multiprotocol ipv4-unicast".into()
            }
            Capability::Multiprotocol(f) if *f == Family::IPV6_UNICAST => {
                "multiprotocol ipv6-unicast".into()
            }
            Capability::Multiprotocol(f) => format!("multiprotocol {f}"),
            Capability::RouteRefresh => "route-refresh".into(),
            Capability::ExtendedNextHop(_) => "extended-nexthop".into(),
            Capability::ExtendedMessage => "extended-message".into(),
            Capability::GracefulRestart(_) => "graceful-restart".into(),
            Capability::FourOctetAs(_) => "4-octet-as".into(),
            Capability::AddPath(_) => "add-path".into(),
            Capability::EnhancedRouteRefresh => "enhanced-route-refresh".into(),
            Capability::LongLivedGracefulRestart(_) => "long-lived-graceful-restart".into(),
            Capability::Fqdn { .. } => "fqdn".into(),
            Capability::Unknown { code, .. } => format!("unknown {code}"),
        }
    }

    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Capability::Fqdn { .. } => code::FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Decode the capabilities filling one optional parameter of type 2.
    pub(crate) fn decode_all(mut r: Reader<'_>, out: &mut Vec<Capability>) -> Result<(), Error> {
        while !r.is_empty() {
            let at = r.offset();
            let (Some(code), Some(len)) = (r.u8(), r.u8()) else {
                return Err(bad_capability(0, at, "truncated capability header"));
            };
            let v = r
                .sub(usize::from(len))
                .ok_or_else(|| bad_capability(code, at, "value overruns the parameter"))?;
            out.push(Capability::decode_value(code, v, at)?);
        }
        Ok(())
    }

    fn decode_value(code: u8, mut v: Reader<'_>, at: usize) -> Result<Capability, Error> {
        let len = v.len();
        let wrong_len = || bad_capability(code, at, &format!("bad length {len}"));
        let empty = |c: Capability| if len == 0 { Ok(c) } else { Err(wrong_len()) };
        match code {
            code::MULTIPROTOCOL => {
                if len != 4 {
                    return Err(wrong_len());
                }
                let (Some(afi), Some(_), Some(safi)) = (v.u16(), v.u8(), v.u8()) else {
                    return Err(wrong_len());
                };
                Ok(Capability::Multiprotocol(Family::new(Afi(afi), Safi(safi))))
            }
            code::ROUTE_REFRESH => empty(Capability::RouteRefresh),
            code::EXTENDED_MESSAGE => empty(Capability::ExtendedMessage),
            code::ENHANCED_ROUTE_REFRESH => empty(Capability::EnhancedRouteRefresh),
            code::EXTENDED_NEXT_HOP => {
                if !len.is_multiple_of(6) {
                    return Err(wrong_len());
                }
                let mut t = Vec::with_capacity(len / 6);
                while let (Some(a), Some(s), Some(n)) = (v.u16(), v.u16(), v.u16()) {
                    t.push(ExtendedNextHop {
                        nlri_afi: Afi(a),
                        nlri_safi: s,
                        next_hop_afi: Afi(n),
                    });
                }
                Ok(Capability::ExtendedNextHop(t))
            }
            code::GRACEFUL_RESTART => {
                let head = v.u16().ok_or_else(wrong_len)?;
                if !v.len().is_multiple_of(4) {
                    return Err(wrong_len());
                }
                let mut families = Vec::with_capacity(v.len() / 4);
                while let (Some(a), Some(s), Some(f)) = (v.u16(), v.u8(), v.u8()) {
                    families.push(GrFamily {
                        family: Family::new(Afi(a), Safi(s)),
                        flags: f,
                    });
                }
                Ok(Capability::GracefulRestart(GracefulRestart {
                    flags: u8::try_from(head >> 12).unwrap_or(0),
                    restart_time: head & 0x0fff,
                    families,
                }))
            }
            code::FOUR_OCTET_AS => {
                if len != 4 {
                    return Err(wrong_len());
                }
                Ok(Capability::FourOctetAs(v.u32().ok_or_else(wrong_len)?))
            }
            code::ADD_PATH => {
                if !len.is_multiple_of(4) {
                    return Err(wrong_len());
                }
                let mut t = Vec::with_capacity(len / 4);
                while let (Some(a), Some(s), Some(m)) = (v.u16(), v.u8(), v.u8()) {
                    t.push(AddPathFamily {
                        family: Family::new(Afi(a), Safi(s)),
                        mode: AddPathMode(m),
                    });
                }
                Ok(Capability::AddPath(t))
            }
            code::LONG_LIVED_GRACEFUL_RESTART => {
                if !len.is_multiple_of(7) {
                    return Err(wrong_len());
                }
                let mut t = Vec::with_capacity(len / 7);
                while let (Some(a), Some(s), Some(f), Some(st)) =
                    (v.u16(), v.u8(), v.u8(), v.array::<3>())
                {
                    t.push(LlgrFamily {
                        family: Family::new(Afi(a), Safi(s)),
                        flags: f,
                        stale_time: u32::from_be_bytes([0, st[0], st[1], st[2]]),
                    });
                }
                Ok(Capability::LongLivedGracefulRestart(t))
            }
            code::FQDN => {
                let raw = v.rest();
                let mut read_str = || -> Option<String> {
                    let n = v.u8()?;
                    let b = v.take(usize::from(n))?;
                    String::from_utf8(b.to_vec()).ok()
                };
                match (read_str(), read_str()) {
                    (Some(hostname), Some(domain)) if v.is_empty() => {
                        Ok(Capability::Fqdn { hostname, domain })
                    }
                    // A malformed hostname capability is harmless: keep it raw.
                    _ => Ok(Capability::Unknown {
                        code,
                        value: raw.to_vec(),
                    }),
                }
            }
            _ => Ok(Capability::Unknown {
                code,
                value: v.rest().to_vec(),
            }),
        }
    }

    /// Append code, length and value. Fails when the value exceeds 255 octets.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.code());
        let len_at = out.len();
        out.push(0);
        match self {
            Capability::Multiprotocol(f) => {
                out.extend_from_slice(&f.afi.0.to_be_bytes());
                out.push(0);
                out.push(f.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(t) => {
                for e in t {
                    out.extend_from_slice(&e.nlri_afi.0.to_be_bytes());
                    out.extend_from_slice(&e.nlri_safi.to_be_bytes());
                    out.extend_from_slice(&e.next_hop_afi.0.to_be_bytes());
                }
            }
            Capability::GracefulRestart(gr) => {
                let head = (u16::from(gr.flags & 0x0f) << 12) | (gr.restart_time & 0x0fff);
                out.extend_from_slice(&head.to_be_bytes());
                for f in &gr.families {
                    out.extend_from_slice(&f.family.afi.0.to_be_bytes());
                    out.push(f.family.safi.0);
                    out.push(f.flags);
                }
            }
            Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Capability::AddPath(t) => {
                for e in t {
                    out.extend_from_slice(&e.family.afi.0.to_be_bytes());
                    out.push(e.family.safi.0);
                    out.push(e.mode.0);
                }
            }
            Capability::LongLivedGracefulRestart(t) => {
                for e in t {
                    out.extend_from_slice(&e.family.afi.0.to_be_bytes());
                    out.push(e.family.safi.0);
                    out.push(e.flags);
                    let st = (e.stale_time & 0x00ff_ffff).to_be_bytes();
                    out.extend_from_slice(st.get(1..).unwrap_or_default());
                }
            }
            Capability::Fqdn { hostname, domain } => {
                for s in [hostname, domain] {
                    let n = u8::try_from(s.len())
                        .map_err(|_| Error::encode("FQDN capability name longer than 255"))?;
                    out.push(n);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            Capability::Unknown { value, .. } => out.extend_from_slice(value),
        }
        let len = out.len().saturating_sub(len_at + 1);
        let len = u8::try_from(len).map_err(|_| {
            Error::encode(format!("capability {} value of {len} octets", self.code()))
        })?;
        if let Some(b) = out.get_mut(len_at) {
            *b = len;
        }
        Ok(())
    }
}
