//! Path attributes (RFC 4271 §4.3, §5) as typed values: decoding of one attribute with the
//! RFC 7606 per-attribute error treatment, encoding with the Extended Length flag only when
//! the value exceeds 255 octets, and the re-advertisement rules for unknown attributes.
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |O|T|P|E|  0    |  Type code    |   O optional, T transitive, P partial, E extended length
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  | Length (1 octet, or 2 with E) |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  | Value ...
//! ```
//!
//! Pure: no I/O.

pub mod as_path;
pub mod community;
pub mod mp;

use std::net::Ipv4Addr;

use crate::context::SessionContext;
use crate::error::Error;
use crate::reader::Reader;

pub use as_path::{AsPath, AsSegment, SegmentType};
pub use community::{Community, ExtendedCommunity, LargeCommunity};
use mp::MpDecoded;
pub use mp::{MpReach, MpUnreach, NextHop};

/// Attribute flag bits.
pub mod flags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: an optional transitive attribute passed on by a speaker that did not know it.
    pub const PARTIAL: u8 = 0x20;
    /// The length field has 2 octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod code {
    /// RFC 4271.
    pub const ORIGIN: u8 = 1;
    /// RFC 4271.
    pub const AS_PATH: u8 = 2;
    /// RFC 4271.
    pub const NEXT_HOP: u8 = 3;
    /// RFC 4271.
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// RFC 4271.
    pub const LOCAL_PREF: u8 = 5;
    /// RFC 4271.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// RFC 4271.
    pub const AGGREGATOR: u8 = 7;
    /// RFC 1997.
    pub const COMMUNITIES: u8 = 8;
    /// RFC 4456.
    pub const ORIGINATOR_ID: u8 = 9;
    /// RFC 4456.
    pub const CLUSTER_LIST: u8 = 10;
    /// RFC 4760.
    pub const MP_REACH_NLRI: u8 = 14;
    /// RFC 4760.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// RFC 4360.
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// RFC 6793.
    pub const AS4_PATH: u8 = 17;
    /// RFC 6793.
    pub const AS4_AGGREGATOR: u8 = 18;
    /// RFC 8092.
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// 0: learned from an IGP.
    Igp,
    /// 1: learned from EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

/// AGGREGATOR / AS4_AGGREGATOR value (RFC 4271 §5.1.7, RFC 6793).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The aggregating AS (AS_TRANS in a 2-octet AGGREGATOR when it does not fit).
    pub asn: u32,
    /// The aggregating speaker's BGP identifier.
    pub address: Ipv4Addr,
}

/// An attribute this crate does not decode, kept as received.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags as received (the Extended Length bit is recomputed on encode).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value octets.
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// The attribute as it must be passed to other peers (RFC 4271 §5): optional transitive
    /// attributes get the Partial bit; optional non-transitive ones are dropped (`None`).
    pub fn for_readvertise(&self) -> Option<RawAttribute> {
        if self.flags & flags::OPTIONAL == 0 || self.flags & flags::TRANSITIVE == 0 {
            return None;
        }
        Some(RawAttribute {
            flags: self.flags | flags::PARTIAL,
            ..self.clone()
        })
    }
}

/// One path attribute.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathAttribute {
    /// ORIGIN (type 1, well-known mandatory): 1 octet.
    Origin(Origin),
    /// AS_PATH (type 2, well-known mandatory).
    AsPath(AsPath),
    /// NEXT_HOP (type 3, well-known mandatory for IPv4 NLRI): 4 octets.
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC (type 4, optional non-transitive): 4 octets.
    MultiExitDisc(u32),
    /// LOCAL_PREF (type 5, well-known): 4 octets.
    LocalPref(u32),
    /// ATOMIC_AGGREGATE (type 6, well-known discretionary): empty.
    AtomicAggregate,
    /// AGGREGATOR (type 7, optional transitive): AS (2 or 4 octets per session) + address.
    Aggregator(Aggregator),
    /// COMMUNITIES (type 8, optional transitive).
    Communities(Vec<Community>),
    /// ORIGINATOR_ID (type 9, optional non-transitive): 4 octets.
    OriginatorId(Ipv4Addr),
    /// CLUSTER_LIST (type 10, optional non-transitive): list of 4-octet cluster ids.
    ClusterList(Vec<Ipv4Addr>),
    /// MP_REACH_NLRI (type 14, optional non-transitive).
    MpReach(MpReach),
    /// MP_UNREACH_NLRI (type 15, optional non-transitive).
    MpUnreach(MpUnreach),
    /// EXTENDED_COMMUNITIES (type 16, optional transitive).
    ExtendedCommunities(Vec<ExtendedCommunity>),
    /// AS4_PATH (type 17, optional transitive): always 4-octet ASNs.
    As4Path(AsPath),
    /// AS4_AGGREGATOR (type 18, optional transitive): 4-octet AS + address.
    As4Aggregator(Aggregator),
    /// LARGE_COMMUNITIES (type 32, optional transitive).
    LargeCommunities(Vec<LargeCommunity>),
    /// Anything else, kept raw.
    Unknown(RawAttribute),
}

/// What RFC 7606 says to do when an attribute of a type is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treatment {
    Withdraw,
    Discard,
    /// Session reset with this UPDATE subcode.
    Reset(u8),
}

/// RFC 7606 §7 per-attribute treatment of a malformed value.
pub(crate) fn treatment(type_code: u8) -> Treatment {
    match type_code {
        code::ATOMIC_AGGREGATE | code::AGGREGATOR | code::AS4_PATH | code::AS4_AGGREGATOR => {
            Treatment::Discard
        }
        code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => Treatment::Reset(9),
        _ => Treatment::Withdraw,
    }
}

/// A readable name for a type code, for error reasons.
pub fn type_name(type_code: u8) -> &'static str {
    match type_code {
        code::ORIGIN => "ORIGIN",
        code::AS_PATH => "AS_PATH",
        code::NEXT_HOP => "NEXT_HOP",
        code::MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        code::LOCAL_PREF => "LOCAL_PREF",
        code::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        code::AGGREGATOR => "AGGREGATOR",
        code::COMMUNITIES => "COMMUNITIES",
        code::ORIGINATOR_ID => "ORIGINATOR_ID",
        code::CLUSTER_LIST => "CLUSTER_LIST",
        code::MP_REACH_NLRI => "MP_REACH_NLRI",
        code::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        code::EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        code::AS4_PATH => "AS4_PATH",
        code::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        code::LARGE_COMMUNITIES => "LARGE_COMMUNITIES",
        _ => "unknown attribute",
    }
}

/// The Optional and Transitive bits a known attribute must carry, or `None` for unknown types.
pub(crate) fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = flags::TRANSITIVE;
    const OPT_NON_TRANS: u8 = flags::OPTIONAL;
    const OPT_TRANS: u8 = flags::OPTIONAL | flags::TRANSITIVE;
    match type_code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => Some(WELL_KNOWN),
        code::MULTI_EXIT_DISC
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => Some(OPT_NON_TRANS),
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::EXTENDED_COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::LARGE_COMMUNITIES => Some(OPT_TRANS),
        _ => None,
    }
}

/// Build the finding (or reset) for a malformed attribute of `type_code`.
pub(crate) fn malformed(
    type_code: u8,
    at: usize,
    raw: &[u8],
    what: &str,
    reset_subcode: u8,
) -> Error {
    let reason = format!(
        "{} (type {type_code}) at byte {at}: {what}",
        type_name(type_code)
    );
    match treatment(type_code) {
        Treatment::Withdraw => Error::withdraw(reason),
        Treatment::Discard => Error::discard(reason),
        Treatment::Reset(sub) => Error::reset(
            3,
            if reset_subcode == 0 {
                sub
            } else {
                reset_subcode
            },
            raw.to_vec(),
            reason,
        ),
    }
}

fn fixed<const N: usize>(mut v: Reader<'_>) -> Option<[u8; N]> {
    if v.len() != N {
        return None;
    }
    v.array::<N>()
}

fn list<T, const N: usize>(
    mut v: Reader<'_>,
    allow_empty: bool,
    f: impl Fn([u8; N]) -> T,
) -> Option<Vec<T>> {
    if !v.len().is_multiple_of(N) || (!allow_empty && v.is_empty()) {
        return None;
    }
    let mut out = Vec::with_capacity(v.len() / N);
    while let Some(a) = v.array::<N>() {
        out.push(f(a));
    }
    Some(out)
}

impl PathAttribute {
    /// The type code.
    pub fn type_code(&self) -> u8 {
        match self {
            PathAttribute::Origin(_) => code::ORIGIN,
            PathAttribute::AsPath(_) => code::AS_PATH,
            PathAttribute::NextHop(_) => code::NEXT_HOP,
            PathAttribute::MultiExitDisc(_) => code::MULTI_EXIT_DISC,
            PathAttribute::LocalPref(_) => code::LOCAL_PREF,
            PathAttribute::AtomicAggregate => code::ATOMIC_AGGREGATE,
            PathAttribute::Aggregator(_) => code::AGGREGATOR,
            PathAttribute::Communities(_) => code::COMMUNITIES,
            PathAttribute::OriginatorId(_) => code::ORIGINATOR_ID,
            PathAttribute::ClusterList(_) => code::CLUSTER_LIST,
            PathAttribute::MpReach(_) => code::MP_REACH_NLRI,
            PathAttribute::MpUnreach(_) => code::MP_UNREACH_NLRI,
            PathAttribute::ExtendedCommunities(_) => code::EXTENDED_COMMUNITIES,
            PathAttribute::As4Path(_) => code::AS4_PATH,
            PathAttribute::As4Aggregator(_) => code::AS4_AGGREGATOR,
            PathAttribute::LargeCommunities(_) => code::LARGE_COMMUNITIES,
            PathAttribute::Unknown(r) => r.type_code,
        }
    }

    /// The flags this attribute is sent with (Extended Length excluded).
    pub fn flags(&self) -> u8 {
        match self {
            PathAttribute::Unknown(r) => r.flags & !flags::EXTENDED_LENGTH,
            other => expected_flags(other.type_code()).unwrap_or(0),
        }
    }

    /// The attribute as it must be passed to another peer: unknown optional transitive
    /// attributes get the Partial bit, unknown optional non-transitive ones are dropped. Known
    /// attributes are returned unchanged (the core decides about MED, LOCAL_PREF and so on).
    pub fn for_readvertise(&self) -> Option<PathAttribute> {
        match self {
            PathAttribute::Unknown(r) => r.for_readvertise().map(PathAttribute::Unknown),
            other => Some(other.clone()),
        }
    }

    /// Decode one attribute value. `flags` and `type_code` come from the header, `raw` is
    /// the whole attribute (for NOTIFICATION data). Returns a finding or reset as `Err`.
    pub(crate) fn decode(
        attr_flags: u8,
        type_code: u8,
        v: Reader<'_>,
        raw: &[u8],
        ctx: &SessionContext,
    ) -> Result<PathAttribute, Error> {
        let at = v
            .offset()
            .saturating_sub(if attr_flags & flags::EXTENDED_LENGTH != 0 {
                4
            } else {
                3
            });
        let bad = |what: &str| malformed(type_code, at, raw, what, 0);
        let bad_len = || bad(&format!("bad length {}", v.len()));
        let Some(expected) = expected_flags(type_code) else {
            if attr_flags & flags::OPTIONAL == 0 {
                return Err(Error::reset(
                    3,
                    2,
                    raw.to_vec(),
                    format!("unrecognized well-known attribute type {type_code} at byte {at}"),
                ));
            }
            return Ok(PathAttribute::Unknown(RawAttribute {
                flags: attr_flags & !flags::EXTENDED_LENGTH,
                type_code,
                value: v.rest().to_vec(),
            }));
        };
        if attr_flags & (flags::OPTIONAL | flags::TRANSITIVE) != expected {
            return Err(malformed(
                type_code,
                at,
                raw,
                &format!("flags {attr_flags:#04x} conflict with the type"),
                4,
            ));
        }
        let ipv4 = Ipv4Addr::from;
        let attr = match type_code {
            code::ORIGIN => match fixed::<1>(v).ok_or_else(bad_len)? {
                [0] => PathAttribute::Origin(Origin::Igp),
                [1] => PathAttribute::Origin(Origin::Egp),
                [2] => PathAttribute::Origin(Origin::Incomplete),
                [x] => return Err(bad(&format!("undefined value {x}"))),
            },
            code::AS_PATH => {
                PathAttribute::AsPath(AsPath::decode(v, ctx.four_octet_as).map_err(|e| bad(&e))?)
            }
            code::AS4_PATH => {
                if ctx.four_octet_as {
                    return Err(bad("AS4_PATH received on a 4-octet AS session"));
                }
                let p = AsPath::decode(v, true).map_err(|e| bad(&e))?;
                if p.segments.iter().any(|s| s.kind.is_confed()) {
                    return Err(bad("confederation segment in AS4_PATH"));
                }
                PathAttribute::As4Path(p)
            }
            code::NEXT_HOP => PathAttribute::NextHop(ipv4(fixed::<4>(v).ok_or_else(bad_len)?)),
            code::MULTI_EXIT_DISC => {
                PathAttribute::MultiExitDisc(u32::from_be_bytes(fixed::<4>(v).ok_or_else(bad_len)?))
            }
            code::LOCAL_PREF => {
                PathAttribute::LocalPref(u32::from_be_bytes(fixed::<4>(v).ok_or_else(bad_len)?))
            }
            code::ATOMIC_AGGREGATE => {
                if !v.is_empty() {
                    return Err(bad_len());
                }
                PathAttribute::AtomicAggregate
            }
            code::AGGREGATOR => {
                let agg = if ctx.four_octet_as {
                    fixed::<8>(v).map(|[a, b, c, d, e, f, g, h]| Aggregator {
                        asn: u32::from_be_bytes([a, b, c, d]),
                        address: Ipv4Addr::new(e, f, g, h),
                    })
                } else {
                    fixed::<6>(v).map(|[a, b, e, f, g, h]| Aggregator {
                        asn: u32::from(u16::from_be_bytes([a, b])),
                        address: Ipv4Addr::new(e, f, g, h),
                    })
                };
                PathAttribute::Aggregator(agg.ok_or_else(bad_len)?)
            }
            code::AS4_AGGREGATOR => {
                if ctx.four_octet_as {
                    return Err(bad("AS4_AGGREGATOR received on a 4-octet AS session"));
                }
                let agg = fixed::<8>(v).map(|[a, b, c, d, e, f, g, h]| Aggregator {
                    asn: u32::from_be_bytes([a, b, c, d]),
                    address: Ipv4Addr::new(e, f, g, h),
                });
                PathAttribute::As4Aggregator(agg.ok_or_else(bad_len)?)
            }
            code::COMMUNITIES => PathAttribute::Communities(
                list(v, false, |b: [u8; 4]| Community(u32::from_be_bytes(b)))
                    .ok_or_else(bad_len)?,
            ),
            code::ORIGINATOR_ID => {
                PathAttribute::OriginatorId(ipv4(fixed::<4>(v).ok_or_else(bad_len)?))
            }
            code::CLUSTER_LIST => {
                PathAttribute::ClusterList(list(v, false, ipv4).ok_or_else(bad_len)?)
            }
            code::EXTENDED_COMMUNITIES => PathAttribute::ExtendedCommunities(
                list(v, true, ExtendedCommunity).ok_or_else(bad_len)?,
            ),
            code::LARGE_COMMUNITIES => PathAttribute::LargeCommunities(
                list(v, false, |b: [u8; 12]| {
                    let [a, b2, c, d, e, f, g, h, i, j, k, l] = b;
                    LargeCommunity {
                        global_admin: u32::from_be_bytes([a, b2, c, d]),
                        local_data1: u32::from_be_bytes([e, f, g, h]),
                        local_data2: u32::from_be_bytes([i, j, k, l]),
                    }
                })
                .ok_or_else(bad_len)?,
            ),
            code::MP_REACH_NLRI => match MpReach::decode(v, raw, ctx)? {
                MpDecoded::Known(m) => PathAttribute::MpReach(m),
                MpDecoded::Opaque => PathAttribute::Unknown(RawAttribute {
                    flags: attr_flags & !flags::EXTENDED_LENGTH,
                    type_code,
                    value: v.rest().to_vec(),
                }),
                MpDecoded::NotEnabled(f) => {
                    return Err(Error::discard(format!(
                        "MP_REACH_NLRI (type 14) at byte {at}: {f} not enabled on the session"
                    )));
                }
            },
            code::MP_UNREACH_NLRI => match MpUnreach::decode(v, raw, ctx)? {
                MpDecoded::Known(m) => PathAttribute::MpUnreach(m),
                MpDecoded::Opaque => PathAttribute::Unknown(RawAttribute {
                    flags: attr_flags & !flags::EXTENDED_LENGTH,
                    type_code,
                    value: v.rest().to_vec(),
                }),
                MpDecoded::NotEnabled(f) => {
                    return Err(Error::discard(format!(
                        "MP_UNREACH_NLRI (type 15) at byte {at}: {f} not enabled on the session"
                    )));
                }
            },
            _ => PathAttribute::Unknown(RawAttribute {
                flags: attr_flags & !flags::EXTENDED_LENGTH,
                type_code,
                value: v.rest().to_vec(),
            }),
        };
        Ok(attr)
    }

    /// Append flags, type, length and value. The Extended Length flag is set only when the
    /// value exceeds 255 octets. Fails when the value exceeds 65,535 octets.
    pub fn encode(&self, ctx: &SessionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        out.push(self.flags());
        out.push(self.type_code());
        out.push(0);
        let value_at = out.len();
        self.encode_value(ctx, out);
        let len = out.len() - value_at;
        if len <= 255 {
            if let Some(b) = out.get_mut(value_at - 1) {
                *b = u8::try_from(len).unwrap_or(0);
            }
        } else {
            let len16 = u16::try_from(len).map_err(|_| {
                out.truncate(start);
                Error::encode(format!(
                    "{} value of {len} octets exceeds 65,535",
                    type_name(self.type_code())
                ))
            })?;
            let [hi, lo] = len16.to_be_bytes();
            if let Some(b) = out.get_mut(start) {
                *b |= flags::EXTENDED_LENGTH;
            }
            if let Some(b) = out.get_mut(value_at - 1) {
                *b = hi;
            }
            out.insert(value_at, lo);
        }
        Ok(())
    }

    fn encode_value(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        match self {
            PathAttribute::Origin(o) => out.push(match o {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            }),
            PathAttribute::AsPath(p) => p.encode(ctx.four_octet_as, out),
            PathAttribute::As4Path(p) => p.encode(true, out),
            PathAttribute::NextHop(a) | PathAttribute::OriginatorId(a) => {
                out.extend_from_slice(&a.octets())
            }
            PathAttribute::MultiExitDisc(v) | PathAttribute::LocalPref(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            PathAttribute::AtomicAggregate => {}
            PathAttribute::Aggregator(a) => {
                if ctx.four_octet_as {
                    out.extend_from_slice(&a.asn.to_be_bytes());
                } else {
                    let asn = u16::try_from(a.asn).unwrap_or(crate::open::AS_TRANS);
                    out.extend_from_slice(&asn.to_be_bytes());
                }
                out.extend_from_slice(&a.address.octets());
            }
            PathAttribute::As4Aggregator(a) => {
                out.extend_from_slice(&a.asn.to_be_bytes());
                out.extend_from_slice(&a.address.octets());
            }
            PathAttribute::Communities(c) => {
                for x in c {
                    out.extend_from_slice(&x.0.to_be_bytes());
                }
            }
            PathAttribute::ClusterList(c) => {
                for x in c {
                    out.extend_from_slice(&x.octets());
                }
            }
            PathAttribute::ExtendedCommunities(c) => {
                for x in c {
                    out.extend_from_slice(&x.0);
                }
            }
            PathAttribute::LargeCommunities(c) => {
                for x in c {
                    out.extend_from_slice(&x.global_admin.to_be_bytes());
                    out.extend_from_slice(&x.local_data1.to_be_bytes());
                    out.extend_from_slice(&x.local_data2.to_be_bytes());
                }
            }
            PathAttribute::MpReach(m) => m.encode_value(ctx, out),
            PathAttribute::MpUnreach(m) => m.encode_value(ctx, out),
            PathAttribute::Unknown(r) => out.extend_from_slice(&r.value),
        }
    }
}
