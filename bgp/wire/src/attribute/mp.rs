//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4) for IPv4 and IPv6 unicast/multicast,
//! including IPv6 next hops of 16 (global) or 32 (global + link-local) octets (RFC 2545 §3)
//! and IPv4 NLRI with an IPv6 next hop (RFC 8950).
//!
//! ```text
//!  MP_REACH_NLRI                               MP_UNREACH_NLRI
//!  +---------------------------------+         +---------------------------------+
//!  | AFI (2) | SAFI (1)              |         | AFI (2) | SAFI (1)              |
//!  +---------------------------------+         +---------------------------------+
//!  | Next hop length (1)             |         | Withdrawn routes (variable)     |
//!  +---------------------------------+         +---------------------------------+
//!  | Next hop (variable)             |
//!  +---------------------------------+
//!  | Reserved (1)                    |
//!  +---------------------------------+
//!  | NLRI (variable)                 |
//!  +---------------------------------+
//! ```
//!
//! Pure: no I/O.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::context::SessionContext;
use crate::family::{Afi, Family, Safi};
use crate::nlri::{Nlri, decode_nlri};
use crate::reader::Reader;

/// The next hop of an MP_REACH_NLRI.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// 4 octets (IPv4 family).
    V4(Ipv4Addr),
    /// 16 octets, or 32 with a link-local address (IPv6 family, or IPv4 per RFC 8950).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, when sent.
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    /// Octets on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            NextHop::V4(_) => 4,
            NextHop::V6 {
                link_local: None, ..
            } => 16,
            NextHop::V6 {
                link_local: Some(_),
                ..
            } => 32,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            NextHop::V4(a) => out.extend_from_slice(&a.octets()),
            NextHop::V6 { global, link_local } => {
                out.extend_from_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.extend_from_slice(&ll.octets());
                }
            }
        }
    }
}

/// MP_REACH_NLRI for a family whose NLRI are prefixes.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family of the NLRI.
    pub family: Family,
    /// Next hop.
    pub next_hop: NextHop,
    /// Announced NLRI.
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI. `withdrawn` is empty in an End-of-RIB marker, which is also recognised
/// for families whose NLRI this crate does not decode.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family of the NLRI.
    pub family: Family,
    /// Withdrawn NLRI.
    pub withdrawn: Vec<Nlri>,
}

/// What decoding an MP attribute produced.
pub(crate) enum MpDecoded<T> {
    /// A decoded attribute.
    Known(T),
    /// A family this crate does not decode: keep the attribute raw.
    Opaque,
    /// A family not enabled on the session: discard.
    NotEnabled(Family),
}

/// Errors are session resets (RFC 7606 §7.11, §5.3).
type MpResult<T> = Result<MpDecoded<T>, crate::error::Error>;

fn header(r: &mut Reader<'_>) -> Option<Family> {
    let afi = r.u16()?;
    let safi = r.u8()?;
    Some(Family::new(Afi(afi), Safi(safi)))
}

fn optional_error(at: usize, data: &[u8], what: String) -> crate::error::Error {
    crate::error::Error::reset(
        3,
        9,
        data.to_vec(),
        format!("MP attribute at byte {at}: {what}"),
    )
}

impl MpReach {
    pub(crate) fn decode(mut r: Reader<'_>, raw: &[u8], ctx: &SessionContext) -> MpResult<MpReach> {
        let at = r.offset();
        let family = header(&mut r)
            .ok_or_else(|| optional_error(at, raw, "MP_REACH_NLRI shorter than 5".into()))?;
        if !ctx.families.contains(&family) {
            return Ok(MpDecoded::NotEnabled(family));
        }
        if !family.is_prefix_family() {
            return Ok(MpDecoded::Opaque);
        }
        let nh_len = r
            .u8()
            .ok_or_else(|| optional_error(at, raw, "MP_REACH_NLRI shorter than 5".into()))?;
        let nh = r
            .take(usize::from(nh_len))
            .ok_or_else(|| optional_error(at, raw, format!("next hop length {nh_len} overruns")))?;
        let v6 =
            |b: &[u8]| -> Option<Ipv6Addr> { <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from) };
        let next_hop = match (family.afi, nh) {
            (Afi::IPV4, [a, b, c, d]) => Some(NextHop::V4(Ipv4Addr::new(*a, *b, *c, *d))),
            (_, b) if b.len() == 16 => v6(b).map(|global| NextHop::V6 {
                global,
                link_local: None,
            }),
            (_, b) if b.len() == 32 => match (
                v6(b.get(..16).unwrap_or_default()),
                v6(b.get(16..).unwrap_or_default()),
            ) {
                (Some(global), Some(ll)) => Some(NextHop::V6 {
                    global,
                    link_local: Some(ll),
                }),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| {
            optional_error(
                at,
                raw,
                format!("next hop length {nh_len} invalid for {family}"),
            )
        })?;
        r.u8()
            .ok_or_else(|| optional_error(at, raw, "missing reserved octet".into()))?;
        let mut nlri = Vec::new();
        decode_nlri(
            r,
            family.afi,
            ctx.add_path_rx(family),
            "MP_REACH_NLRI NLRI",
            &mut nlri,
        )?;
        Ok(MpDecoded::Known(MpReach {
            family,
            next_hop,
            nlri,
        }))
    }

    pub(crate) fn encode_value(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.0.to_be_bytes());
        out.push(self.family.safi.0);
        out.push(u8::try_from(self.next_hop.wire_len()).unwrap_or(0));
        self.next_hop.encode(out);
        out.push(0);
        let ap = ctx.add_path_tx(self.family);
        for n in &self.nlri {
            n.encode(ap, out);
        }
    }
}

impl MpUnreach {
    pub(crate) fn decode(
        mut r: Reader<'_>,
        raw: &[u8],
        ctx: &SessionContext,
    ) -> MpResult<MpUnreach> {
        let at = r.offset();
        let family = header(&mut r)
            .ok_or_else(|| optional_error(at, raw, "MP_UNREACH_NLRI shorter than 3".into()))?;
        if !ctx.families.contains(&family) {
            return Ok(MpDecoded::NotEnabled(family));
        }
        if !family.is_prefix_family() {
            // An empty one is an End-of-RIB marker, meaningful for any family.
            if r.is_empty() {
                return Ok(MpDecoded::Known(MpUnreach {
                    family,
                    withdrawn: Vec::new(),
                }));
            }
            return Ok(MpDecoded::Opaque);
        }
        let mut withdrawn = Vec::new();
        decode_nlri(
            r,
            family.afi,
            ctx.add_path_rx(family),
            "MP_UNREACH_NLRI withdrawn routes",
            &mut withdrawn,
        )?;
        Ok(MpDecoded::Known(MpUnreach { family, withdrawn }))
    }

    pub(crate) fn encode_value(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.0.to_be_bytes());
        out.push(self.family.safi.0);
        let ap = ctx.add_path_tx(self.family);
        for n in &self.withdrawn {
            n.encode(ap, out);
        }
    }
}
